"""The clock of a test server, which the tests move forward instead of waiting.

The server (tests/e2e/server.py; tests/live_server.py with ``LIVE_CLOCK=1``) starts it
before anything else; from then on every ``time.time()`` and ``datetime.now()`` of the
server process, in all its threads, ticks as usual, plus however far the tests have moved
it through ``advance_clock`` (a view of tests/e2e/server_urls.py and tests/urls.py).
Redis keeps its own clock: the engine compares the expiry it stores with the time it is
given, so the session timeouts follow this clock on both engines.
"""

from __future__ import annotations

import time

import time_machine
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

_traveller: time_machine.Traveller | None = None


def start() -> None:
    global _traveller  # noqa: PLW0603 - one clock per server process
    _traveller = time_machine.travel(time.time(), tick=True).start()


@csrf_exempt
@require_POST
def advance_clock(request: HttpRequest) -> HttpResponse:
    """Move the clock ``seconds`` (a form field) forward; the answer comes once it has."""
    if _traveller is None:
        return HttpResponse("The clock was not started.", status=409)
    _traveller.shift(int(request.POST["seconds"]))
    return HttpResponse(status=204)
