"""The Python API: list_user_sessions, revoke_session, revoke_user_sessions (and a*)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import RequestFactory
from django.test.utils import override_settings

import django_secure_sessions
from django_secure_sessions import (
    SessionInfo,
    alist_user_sessions,
    arevoke_session,
    arevoke_user_sessions,
    list_user_sessions,
    revoke_session,
    revoke_user_sessions,
)
from django_secure_sessions.backends.base import SESSION_ID_LENGTH, USER_ID_KEY, SecureSessionBase
from django_secure_sessions.signals import session_revoked
from tests.marks import async_test
from tests.sessions import (
    CHROME_ON_WINDOWS,
    SAFARI_ON_IPHONE,
    START,
    Storage,
    StoreClass,
    capture,
    loaded,
    saved,
    user_id,
)


@pytest.fixture
def revocations() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``session_revoked`` sent during the test."""
    with capture(session_revoked) as sent:
        yield sent


def logged_in(
    store_class: StoreClass, user: AbstractBaseUser, user_agent: str = CHROME_ON_WINDOWS
) -> SecureSessionBase:
    """A session of ``user``, logged in from 198.51.100.7 with ``user_agent``."""
    store = saved(store_class, user=user)
    store.record_login()
    store.bind_client("198.51.100.7", user_agent)
    store.save()
    return store


def is_live(store_class: StoreClass, session: SecureSessionBase) -> bool:
    return loaded(store_class, session.session_key).session_key is not None


def test_the_api_is_importable_from_the_package_root() -> None:
    assert {
        "SessionInfo",
        "list_user_sessions",
        "revoke_session",
        "revoke_user_sessions",
        "alist_user_sessions",
        "arevoke_session",
        "arevoke_user_sessions",
    } <= set(django_secure_sessions.__all__)


# -- list_user_sessions -----------------------------------------------------------------


def test_list_user_sessions_describes_the_users_live_sessions_most_recent_first(
    store_class: StoreClass,
    user: AbstractBaseUser,
    make_user: Callable[..., AbstractBaseUser],
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(START, tick=False)
    first = logged_in(store_class, user, CHROME_ON_WINDOWS)
    expiring = store_class()
    expiring[USER_ID_KEY] = user_id(user)
    expiring.set_expiry(60)
    expiring.save()
    time_machine.shift(100)
    second = logged_in(store_class, user, SAFARI_ON_IPHONE)
    logged_in(store_class, make_user())  # someone else's
    saved(store_class, {"cart": ["book"]})  # anonymous

    sessions = list_user_sessions(user)

    assert [info.id for info in sessions] == [second.session_id, first.session_id]
    at = START + timedelta(seconds=100)
    assert sessions[0] == SessionInfo(
        id=second.session_id or "",
        user_id=user_id(user),
        created=at,
        last_activity=at,
        last_auth=at,
        expires=at + timedelta(seconds=1800),  # the idle timeout, before the cookie age
        absolute_expiry=at + timedelta(seconds=43200),
        ip="198.51.100.7",
        user_agent=SAFARI_ON_IPHONE,
        browser="Mobile Safari",
        os="iOS",
        device="iPhone",
    )
    assert not sessions[0].is_current
    assert (sessions[1].browser, sessions[1].os) == ("Chrome", "Windows")

    time_machine.shift(100)
    loaded(store_class, first.session_key).touch()  # the first one is used again

    assert [info.id for info in list_user_sessions(user.pk)] == [
        first.session_id,
        second.session_id,
    ]


def test_list_user_sessions_of_a_user_without_sessions_is_empty(
    store_class: StoreClass, user: AbstractBaseUser, make_user: Callable[..., AbstractBaseUser]
) -> None:
    logged_in(store_class, make_user())

    assert list_user_sessions(user) == []


def test_list_user_sessions_leaves_out_sessions_past_a_timeout(
    store_class: StoreClass, user: AbstractBaseUser, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(START, tick=False)
    idle = logged_in(store_class, user)
    time_machine.shift(1000)
    active = logged_in(store_class, user)
    time_machine.shift(900)  # the first is past its idle timeout, the second isn't

    assert [info.id for info in list_user_sessions(user)] == [active.session_id]
    assert not is_live(store_class, idle)


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_redis_listing_prunes_expired_index_entries(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(START, tick=False)
    live = logged_in(store_class, user)
    expiring = store_class()
    expiring[USER_ID_KEY] = user_id(user)
    expiring.set_expiry(60)
    expiring.save()
    time_machine.shift(120)
    assert storage.user_index(user_id(user)) == {live.session_id, expiring.session_id}

    assert [info.id for info in list_user_sessions(user)] == [live.session_id]

    assert storage.user_index(user_id(user)) == {live.session_id}


# -- revoke_session ---------------------------------------------------------------------


def test_revoke_session(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    revocations: list[dict[str, Any]],
) -> None:
    session = logged_in(store_class, user)
    other = logged_in(store_class, user)

    assert revoke_session(session.session_id or "") is True
    assert revoke_session(session.session_id or "") is False

    assert not is_live(store_class, session)
    assert is_live(store_class, other)
    assert storage.session_ids() == {other.session_id}
    assert [
        {k: v for k, v in sent.items() if k not in {"signal", "sender"}} for sent in revocations
    ] == [
        {
            "request": None,
            "user_id": user_id(user),
            "session_id": session.session_id,
            "reason": "api",
        }
    ]


def test_revoke_session_with_a_reason_and_a_request(
    store_class: StoreClass,
    user: AbstractBaseUser,
    rf: RequestFactory,
    revocations: list[dict[str, Any]],
) -> None:
    session = logged_in(store_class, user)
    request = rf.post("/admin/")

    assert revoke_session(session.session_id or "", reason="admin", request=request)

    assert [(r["reason"], r["request"]) for r in revocations] == [("admin", request)]


def test_revoking_never_signals_or_logs_the_key(
    store_class: StoreClass,
    user: AbstractBaseUser,
    revocations: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = logged_in(store_class, user)
    others = [logged_in(store_class, user) for _ in range(2)]
    keys = [s.session_key or "" for s in [session, *others]]

    with caplog.at_level(logging.DEBUG, logger="django_secure_sessions"):
        revoke_session(session.session_id or "")
        revoke_user_sessions(user)

    assert len(revocations) == 3
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) >= 3  # each revocation is logged
    for key in keys:
        assert not any(key in repr(sent) for sent in revocations)
        assert not any(key in message for message in logged)


MALFORMED_IDS = {
    "empty": "",
    "short": "abc",
    "one-hex-digit-short": "a" * (SESSION_ID_LENGTH - 1),
    "one-hex-digit-long": "a" * (SESSION_ID_LENGTH + 1),
    "uppercase": "A" * 40,
    "not-hex": "g" * 40,
    "glob": "*" * 40,
    "path": "../" * 13 + "x",
    "10-kb": "a" * 10240,
    "non-ascii": "é" * 40,
}


@pytest.mark.parametrize("session_id", MALFORMED_IDS.values(), ids=MALFORMED_IDS.keys())
def test_revoke_session_with_a_malformed_id_is_false_without_a_round_trip(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser, session_id: str
) -> None:
    session = logged_in(store_class, user)

    with storage.round_trips() as trips:
        assert revoke_session(session_id) is False

    assert trips.total == 0
    assert is_live(store_class, session)


def test_revoke_session_with_the_key_instead_of_the_id_revokes_nothing(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    session = logged_in(store_class, user)

    assert revoke_session(session.session_key or "") is False
    assert revoke_session("0" * 40) is False  # well formed, unknown

    assert is_live(store_class, session)


# -- revoke_user_sessions ---------------------------------------------------------------

KEEPS: dict[str, Callable[[SecureSessionBase], Any]] = {
    "session": lambda session: session,
    "session-id": lambda session: session.session_id,
    "list": lambda session: [session.session_id, "f" * 40],
    "none": lambda session: None,
}


@pytest.mark.parametrize("keep", KEEPS.values(), ids=KEEPS.keys())
def test_revoke_user_sessions_keeps_the_one_asked_for(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    make_user: Callable[..., AbstractBaseUser],
    keep: Callable[[SecureSessionBase], Any],
) -> None:
    current = logged_in(store_class, user)
    others = [logged_in(store_class, user) for _ in range(3)]
    bystander = logged_in(store_class, make_user())
    kept = keep(current)

    count = revoke_user_sessions(user, keep=kept)

    assert count == (4 if kept is None else 3)
    assert not any(is_live(store_class, other) for other in others)
    assert is_live(store_class, current) is (kept is not None)
    assert is_live(store_class, bystander)
    survivors = {bystander.session_id} | ({current.session_id} if kept is not None else set())
    assert storage.session_ids() == survivors


def test_revoke_user_sessions_signals_each_with_the_reason(
    store_class: StoreClass,
    user: AbstractBaseUser,
    rf: RequestFactory,
    revocations: list[dict[str, Any]],
) -> None:
    current = logged_in(store_class, user)
    others = [logged_in(store_class, user) for _ in range(2)]
    request = rf.post("/account/sessions/revoke-others/")

    count = revoke_user_sessions(user, keep=current, reason="user", request=request)

    assert count == 2
    assert sorted(
        (r["session_id"], r["user_id"], r["reason"], r["request"]) for r in revocations
    ) == sorted((o.session_id, user_id(user), "user", request) for o in others)


def test_revoke_user_sessions_of_a_user_without_sessions_is_zero(
    store_class: StoreClass, user: AbstractBaseUser, revocations: list[dict[str, Any]]
) -> None:
    assert revoke_user_sessions(user) == 0
    assert revocations == []


def test_the_cost_of_listing_and_revoking_does_not_grow_with_other_users_sessions(
    store_class: StoreClass, storage: Storage, make_user: Callable[..., AbstractBaseUser]
) -> None:
    def costs(user: AbstractBaseUser) -> list[tuple[int, int]]:
        for _ in range(3):
            logged_in(store_class, user)
        measured = []
        for action in (list_user_sessions, revoke_user_sessions):
            with storage.round_trips() as trips:
                action(user)
            # An EVAL follows the first EVALSHA of a script on a server that has not
            # cached it yet: each primary of a cluster caches its own.
            total = trips.total - trips.commands["eval"]
            measured.append((total, sum(trips.script_commands.values())))
        return measured

    costs(make_user())  # Redis caches its scripts on first use (EVALSHA, then EVAL)
    alone = costs(make_user())
    crowd = [make_user() for _ in range(20)]
    for number in range(200):
        saved(store_class, user=crowd[number % 20])

    assert costs(make_user()) == alone
    assert len(storage.session_ids()) == 200


def test_the_number_of_queries_is_bounded(
    store_class: StoreClass,
    user: AbstractBaseUser,
    make_user: Callable[..., AbstractBaseUser],
    django_assert_max_num_queries: Any,
) -> None:
    crowd = [make_user() for _ in range(20)]
    for number in range(200):
        saved(store_class, user=crowd[number % 20])
    for _ in range(3):
        logged_in(store_class, user)

    with django_assert_max_num_queries(1):
        assert len(list_user_sessions(user)) == 3
    # In tests, the transaction of revoke_user_sessions is a savepoint (2 queries).
    with django_assert_max_num_queries(4):
        assert revoke_user_sessions(user) == 3


# -- configuration --------------------------------------------------------------------

CALLS: dict[str, Callable[[AbstractBaseUser], object]] = {
    "list_user_sessions": list_user_sessions,
    "revoke_session": lambda user: revoke_session("0" * 40),
    "revoke_user_sessions": revoke_user_sessions,
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "djangos_engine",
    ["django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cache"],
)
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_the_api_needs_one_of_our_engines(
    user: AbstractBaseUser, djangos_engine: str, call: Callable[[AbstractBaseUser], object]
) -> None:
    with (
        override_settings(SESSION_ENGINE=djangos_engine),
        pytest.raises(ImproperlyConfigured, match=r"django_secure_sessions\.backends"),
    ):
        call(user)


# -- async ------------------------------------------------------------------------------


@async_test
async def test_async_api(
    store_class: StoreClass, user: AbstractBaseUser, revocations: list[dict[str, Any]]
) -> None:
    sessions = []
    for _ in range(3):
        session = store_class()
        await session.aset(USER_ID_KEY, user_id(user))
        await session.asave()
        sessions.append(session)
    current, revoked, other = sessions

    assert {info.id for info in await alist_user_sessions(user)} == {s.session_id for s in sessions}
    assert revoked.session_id is not None
    assert await arevoke_session(revoked.session_id) is True
    assert await arevoke_session(revoked.session_id) is False
    assert await arevoke_user_sessions(user, keep=current, reason="user") == 1

    assert [info.id for info in await alist_user_sessions(user)] == [current.session_id]
    assert [(r["session_id"], r["reason"]) for r in revocations] == [
        (revoked.session_id, "api"),
        (other.session_id, "user"),
    ]


@pytest.mark.parametrize("engine", ["db"], indirect=True)
def test_db_listing_and_revoking_use_the_user_index(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    for _ in range(3):
        logged_in(store_class, user)
    with storage.round_trips() as trips:
        list_user_sessions(user)
        revoke_user_sessions(user)
    statements = [sql for sql in trips.queries if sql.split()[0] in {"SELECT", "DELETE"}]

    assert len(statements) >= 2
    for sql in statements:
        assert "secure_sess_user_expiry" in query_plan(sql), sql


def query_plan(sql: str) -> str:
    """How the database runs ``sql``, when it may use an index (forcing the index
    that a big table would get: on a small one, a scan is cheaper)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(str(row) for row in cursor.fetchall())
