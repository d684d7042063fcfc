"""Signal handlers connected when the app is ready."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from .backends.base import SecureSessionBase
from .binding import client_ip, request_user_agent

DISPATCH_PREFIX = "django_secure_sessions."


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Stamp the login time and bind the session to this client.

    Django has already rotated the key (``login`` calls ``cycle_key``); this records
    when the user authenticated and from where, for timeouts, binding and re-auth.
    """
    session = getattr(request, "session", None)
    if request is None or not isinstance(session, SecureSessionBase):
        return
    session.record_login()
    # A login outside an HTTP request (the test client's force_login(), a script) has
    # no client to bind to: the session's first request binds it instead.
    if "REMOTE_ADDR" in request.META:
        session.bind_client(client_ip(request), request_user_agent(request))


def connect() -> None:
    user_logged_in.connect(record_login, dispatch_uid=DISPATCH_PREFIX + "record_login")
