"""The Python API: list and revoke sessions on whichever engine is configured."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from importlib import import_module
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.http import HttpRequest

from . import signals
from .backends.base import SESSION_ID_LENGTH, SecureSessionBase, SessionInfo

logger = logging.getLogger("django_secure_sessions")

_SESSION_ID_RE: Final = re.compile(f"[0-9a-f]{{{SESSION_ID_LENGTH}}}")

Keep = str | SessionBase | Iterable[str | SessionBase] | None


def session_store_class() -> type[SecureSessionBase]:
    """The configured engine's ``SessionStore``; it must be one of ours."""
    store: Any = import_module(settings.SESSION_ENGINE).SessionStore
    if not (isinstance(store, type) and issubclass(store, SecureSessionBase)):
        raise ImproperlyConfigured(
            f"SESSION_ENGINE = {settings.SESSION_ENGINE!r} is not a django-secure-sessions "
            "engine; use 'django_secure_sessions.backends.db' or '.redis'."
        )
    return store


def user_id_of(user: Model | Any) -> str:
    """A user's id as sessions keep it: what ``login()`` stores in the session."""
    if isinstance(user, Model):
        return str(user._meta.pk.value_to_string(user))
    return str(user)


def _kept_ids(keep: Keep) -> list[str]:
    if keep is None:
        return []
    items = [keep] if isinstance(keep, (str, SessionBase)) else list(keep)
    ids = []
    for item in items:
        session_id = item.session_id if isinstance(item, SecureSessionBase) else item
        if isinstance(session_id, str):
            ids.append(session_id)
    return ids


def announce_revoked(
    request: HttpRequest | None, user_id: str | None, session_id: str, reason: str
) -> None:
    signals.session_revoked.send(
        sender=session_store_class(),  # the engine's class, as for every session signal
        request=request,
        user_id=user_id,
        session_id=session_id,
        reason=reason,
    )
    logger.info("Session %s of user %s revoked (%s)", session_id, user_id, reason)


def list_user_sessions(user: Model | Any) -> list[SessionInfo]:
    """The live sessions of ``user`` (a user or their primary key), most recent first."""
    return session_store_class().user_sessions(user_id_of(user))


def revoke_session(
    session_id: str, *, reason: str = "api", request: HttpRequest | None = None
) -> bool:
    """End the session whose public id is ``session_id``; False if there was none."""
    if not isinstance(session_id, str) or not _SESSION_ID_RE.fullmatch(session_id):
        return False  # not an id we could have made: no storage round trip
    meta = session_store_class().remove_session(session_id)
    if meta is None:
        return False
    announce_revoked(request, meta.user_id, session_id, reason)
    return True


def revoke_user_sessions(
    user: Model | Any,
    *,
    keep: Keep = None,
    reason: str = "api",
    request: HttpRequest | None = None,
) -> int:
    """End every session of ``user`` but those in ``keep``; return how many ended.

    ``keep`` is a session (e.g. ``request.session``), a public session id, or an
    iterable of either.
    """
    return len(_revoke_user_sessions(user, keep=keep, reason=reason, request=request))


def _revoke_user_sessions(
    user: Model | Any,
    *,
    keep: Keep = None,
    reason: str = "api",
    request: HttpRequest | None = None,
) -> list[str]:
    """``revoke_user_sessions()``, returning the public ids of the sessions ended."""
    user_id = user_id_of(user)
    revoked = session_store_class().remove_user_sessions(user_id, _kept_ids(keep))
    for session_id in revoked:
        announce_revoked(request, user_id, session_id, reason)
    return revoked


alist_user_sessions = sync_to_async(list_user_sessions)
arevoke_session = sync_to_async(revoke_session)
arevoke_user_sessions = sync_to_async(revoke_user_sessions)
