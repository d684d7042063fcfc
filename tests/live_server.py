"""Serves the suite's project for tests through a real server: ``python -m
tests.live_server FD``, with ``DJANGO_SETTINGS_MODULE=tests.live_settings``.

It migrates its (fresh) database, creates the accounts ``USERS`` with ``PASSWORD``, then
serves on the listening socket ``FD`` (tests/served.py): one thread per connection, or all
on one thread with ``LIVE_THREADED=0``. With ``LIVE_CLOCK=1`` it runs on the clock that
the tests move (tests/clock.py, through ``POST /clock/``).
"""

from __future__ import annotations

import os
import socket
import sys

from tests import clock
from tests.served import serve

USERS = (
    *("ada", "grace", "edsger", "barbara", "margaret"),
    *("alan", "donald", "frances", "john", "radia"),
)
PASSWORD = "correct horse battery staple"


def main() -> None:
    listener = socket.socket(fileno=int(sys.argv[1]))
    if os.environ.get("LIVE_CLOCK") == "1":
        clock.start()  # first: everything after it runs on the clock the tests move
    import django
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    for username in USERS:
        get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    serve(listener, threaded=os.environ.get("LIVE_THREADED", "1") != "0")


if __name__ == "__main__":
    main()
