"""Views for the tests that go through the whole middleware stack (see tests/urls.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse

from django_secure_sessions import revoke_session
from django_secure_sessions.backends.base import SecureSessionBase


@login_required
def whoami(request: HttpRequest) -> HttpResponse:
    """The signed-in user's name; anonymous visitors are sent to log in."""
    return HttpResponse(request.user.get_username())


@login_required
async def async_whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(user.get_username())


def poll(request: HttpRequest) -> HttpResponse:
    """What a page polls in the background: who is signed in, if anyone."""
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


def add_to_cart(request: HttpRequest) -> HttpResponse:
    """A view that changes the session (anonymous or not)."""
    cart = [*request.session.get("cart", []), "book"]
    request.session["cart"] = cart
    return HttpResponse(",".join(cart))


NOTE_PREFIX = "note_"


def _notes(request: HttpRequest) -> JsonResponse:
    session = request.session
    notes = {k[len(NOTE_PREFIX) :]: v for k, v in session.items() if k.startswith(NOTE_PREFIX)}
    user = request.user
    return JsonResponse(
        {"user": user.get_username() if user.is_authenticated else "", "notes": notes}
    )


def notes(request: HttpRequest) -> JsonResponse:
    """What a page reads in the background: who is signed in, and their notes."""
    return _notes(request)


def write_note(request: HttpRequest, name: str) -> HttpResponse:
    """An XHR that saves one key of a signed-in user's session (``?value=``); what the
    session holds then, once saved (the answer is sent only if the save succeeded)."""
    if not request.user.is_authenticated:
        return HttpResponse("anonymous", status=403)
    request.session[f"{NOTE_PREFIX}{name}"] = request.GET["value"]
    return _notes(request)


def revoke_own_session(request: HttpRequest) -> HttpResponse:
    """A request during which its own session is revoked, as by an administrator at
    that very moment: after the middleware loaded the session, before it records the
    request's activity."""
    session = request.session
    assert isinstance(session, SecureSessionBase)
    assert session.session_id is not None
    revoke_session(session.session_id)
    return HttpResponse("still answered")
