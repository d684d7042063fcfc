"""The pure timeout rules of ``django_secure_sessions.timeouts``, at each edge."""

from __future__ import annotations

import pytest

from django_secure_sessions.backends.base import SessionMeta
from django_secure_sessions.timeouts import activity_due, deadline, end_reason

LOGIN = 1_900_000_000  # epoch seconds
IDLE = 1800
ABSOLUTE = 43200


def session(
    *, last_activity: int = LOGIN, absolute_expiry: int | None = LOGIN + ABSOLUTE
) -> SessionMeta:
    """The meta of a session logged in at LOGIN."""
    return SessionMeta(
        user_id="7",
        created=LOGIN,
        last_activity=last_activity,
        last_auth=LOGIN,
        absolute_expiry=absolute_expiry,
    )


# -- end_reason ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0, None), (IDLE - 1, None), (IDLE, "idle"), (IDLE + 1, "idle")],
)
def test_idle_timeout_edge(elapsed: int, expected: str | None) -> None:
    assert end_reason(session(), LOGIN + elapsed, IDLE) == expected


def test_idle_timeout_counts_from_the_last_activity() -> None:
    meta = session(last_activity=LOGIN + 1000)

    assert end_reason(meta, LOGIN + 1000 + IDLE - 1, IDLE) is None
    assert end_reason(meta, LOGIN + 1000 + IDLE + 1, IDLE) == "idle"


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(ABSOLUTE - 1, None), (ABSOLUTE, "absolute"), (ABSOLUTE + 1, "absolute")],
)
def test_absolute_timeout_edge_despite_recent_activity(elapsed: int, expected: str | None) -> None:
    meta = session(last_activity=LOGIN + elapsed - 1)  # active a second ago

    assert end_reason(meta, LOGIN + elapsed, IDLE) == expected


def test_absolute_timeout_wins_when_both_have_passed() -> None:
    meta = session(last_activity=LOGIN, absolute_expiry=LOGIN + 600)

    assert end_reason(meta, LOGIN + IDLE + 1, IDLE) == "absolute"


def test_no_idle_timeout() -> None:
    assert end_reason(session(), LOGIN + ABSOLUTE - 1, None) is None
    assert end_reason(session(), LOGIN + ABSOLUTE, None) == "absolute"


def test_no_absolute_timeout() -> None:
    meta = session(last_activity=LOGIN + 10 * ABSOLUTE, absolute_expiry=None)

    assert end_reason(meta, LOGIN + 10 * ABSOLUTE + IDLE - 1, IDLE) is None
    assert end_reason(meta, LOGIN + 10 * ABSOLUTE + IDLE, IDLE) == "idle"


def test_no_timeout_at_all() -> None:
    assert end_reason(session(absolute_expiry=None), LOGIN + 10**9, None) is None


def test_an_anonymous_session_never_times_out_here() -> None:
    # Its cookie age ends it (SessionMeta.expires); the timeouts are for logins.
    anonymous = SessionMeta(created=LOGIN, last_activity=LOGIN)

    assert end_reason(anonymous, LOGIN + 10**9, IDLE) is None


# -- deadline ------------------------------------------------------------------------


def test_deadline_is_the_idle_end_while_it_comes_first() -> None:
    assert deadline(session(last_activity=LOGIN + 60), IDLE) == LOGIN + 60 + IDLE


def test_deadline_never_passes_the_absolute_expiry() -> None:
    meta = session(last_activity=LOGIN + ABSOLUTE - 60)

    assert deadline(meta, IDLE) == LOGIN + ABSOLUTE


def test_deadline_without_idle_timeout_is_the_absolute_expiry() -> None:
    assert deadline(session(), None) == LOGIN + ABSOLUTE


def test_deadline_without_absolute_timeout_is_the_idle_end() -> None:
    assert deadline(session(absolute_expiry=None), IDLE) == LOGIN + IDLE


def test_no_deadline_without_timeouts_or_user() -> None:
    assert deadline(session(absolute_expiry=None), None) is None
    assert deadline(SessionMeta(created=LOGIN, last_activity=LOGIN), IDLE) is None


def test_deadline_is_where_end_reason_starts_answering() -> None:
    for meta in (session(), session(last_activity=LOGIN + ABSOLUTE - 5)):
        limit = deadline(meta, IDLE)
        assert limit is not None
        assert end_reason(meta, limit - 1, IDLE) is None
        assert end_reason(meta, limit, IDLE) is not None


# -- activity_due ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "due"), [(0, False), (59, False), (60, True), (61, True), (3600, True)]
)
def test_activity_is_written_at_most_once_per_resolution(elapsed: int, due: bool) -> None:
    assert activity_due(session(), LOGIN + elapsed, 60) is due


def test_a_zero_resolution_writes_every_request() -> None:
    assert activity_due(session(), LOGIN, 0) is True
