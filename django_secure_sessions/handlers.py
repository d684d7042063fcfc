"""Signal handlers connected when the app is ready."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from .backends.base import SecureSessionBase
from .binding import client_ip

DISPATCH_PREFIX = "django_secure_sessions."


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Stamp the login time and bind the session to this client.

    Django has already rotated the key (``login`` calls ``cycle_key``); this records
    when the user authenticated and from where, for timeouts, binding and re-auth.
    """
    session = getattr(request, "session", None)
    if request is not None and isinstance(session, SecureSessionBase):
        session.record_login(client_ip(request), str(request.META.get("HTTP_USER_AGENT", "")))


def connect() -> None:
    user_logged_in.connect(record_login, dispatch_uid=DISPATCH_PREFIX + "record_login")
