"""Serves the example project for the end-to-end tests: ``python -m tests.e2e.server FD``.

Started by tests/e2e/conftest.py with ``DJANGO_SETTINGS_MODULE=tests.e2e.server_settings``.
It migrates a fresh database, creates the accounts the tests sign in with (``ACCOUNTS``),
then serves on the listening socket ``FD``: the test process bound it to a free port on
127.0.0.1 and handed it down, so connections wait in its backlog until the server is
ready (tests/served.py).
"""

from __future__ import annotations

import socket
import sys

from tests import clock
from tests.served import serve

ADMIN = "admin"
# One account per test, so that tests run in any order: what one does to its user (a new
# password, sessions revoked) can't surprise another.
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
PASSWORD = "correct horse battery staple"


def create_accounts() -> None:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user_model.objects.create_superuser(ADMIN, f"{ADMIN}@example.com", PASSWORD)
    for username in USERS:
        user_model.objects.create_user(username, f"{username}@example.com", PASSWORD)


def main() -> None:
    listener = socket.socket(fileno=int(sys.argv[1]))
    clock.start()  # first: everything after it runs on the clock the tests move
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    create_accounts()
    serve(listener)


if __name__ == "__main__":
    main()
