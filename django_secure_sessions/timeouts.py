"""When a session ends, and when its activity is worth writing down.

Pure functions over a session's meta and the current time (epoch seconds), shared by
the engines (which refuse an ended session at load) and the middleware (which reports
it); tests call them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from .backends.base import SessionMeta

EndReason = Literal["absolute", "idle"]

# How long storage keeps a session's record after the session ended. The record is
# unusable then (every load checks the deadlines first), but a request that arrives
# just after the end is told why (``session_expired``), and its cookie is deleted.
EXPIRY_GRACE: Final = 60


def end_reason(meta: SessionMeta, now: int, idle_timeout: int | None) -> EndReason | None:
    """Why an authenticated session has ended at ``now``, or None if it hasn't.

    The absolute timeout is checked first: it is the one that activity can't push back.
    """
    if meta.user_id is None:
        return None
    if meta.absolute_expiry is not None and now >= meta.absolute_expiry:
        return "absolute"
    if idle_timeout is not None and now >= meta.last_activity + idle_timeout:
        return "idle"
    return None


def deadline(meta: SessionMeta, idle_timeout: int | None) -> int | None:
    """When an authenticated session ends if no further activity is recorded."""
    if meta.user_id is None:
        return None
    limits = [meta.absolute_expiry]
    if idle_timeout is not None:
        limits.append(meta.last_activity + idle_timeout)
    return min((limit for limit in limits if limit is not None), default=None)


def activity_due(meta: SessionMeta, now: int, resolution: int) -> bool:
    """Whether this request's activity should be written (at most once per resolution)."""
    return now - meta.last_activity >= resolution
