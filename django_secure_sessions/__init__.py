"""django-secure-sessions: OWASP session management best practices as Django defaults."""

from importlib.metadata import PackageNotFoundError, version

from .api import (
    alist_user_sessions,
    arevoke_session,
    arevoke_user_sessions,
    list_user_sessions,
    revoke_session,
    revoke_user_sessions,
)
from .backends.base import SessionInfo

try:
    __version__ = version("django-secure-sessions")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "SessionInfo",
    "alist_user_sessions",
    "arevoke_session",
    "arevoke_user_sessions",
    "list_user_sessions",
    "revoke_session",
    "revoke_user_sessions",
]
