"""The management commands (SPEC §8) on both engines: what they print, their exit
status, and what they leave in storage and in the browsers of the users concerned."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore as DjangoDbStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.test.utils import override_settings
from django.urls import path
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions import list_user_sessions
from django_secure_sessions.backends import routing
from django_secure_sessions.backends.base import USER_ID_KEY, session_id_for_key
from django_secure_sessions.backends.db import SessionStore as DbSessionStore
from django_secure_sessions.backends.db import using_database
from django_secure_sessions.models import SecureSession
from django_secure_sessions.signals import session_revoked
from django_secure_sessions.timeouts import EXPIRY_GRACE
from tests.sessions import Storage, StoreClass

START = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
REPOSITORY = Path(__file__).resolve().parent.parent
DJANGO_DB_ENGINE = "django.contrib.sessions.backends.db"
DJANGO_CACHE_ENGINE = "django.contrib.sessions.backends.cache"


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "")


urlpatterns = [path("whoami/", whoami)]

pytestmark = pytest.mark.urls(__name__)


def run(name: str, *args: str) -> str:
    """What the command prints on stdout (it raises CommandError on failure)."""
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def fails(name: str, *args: str) -> CommandError:
    """The error a failing command exits with."""
    with pytest.raises(CommandError) as failure:
        run(name, *args)
    return failure.value


def signed_in_as(client: Client) -> str:
    response = client.get("/whoami/")
    assert response.status_code == 200
    return response.content.decode()


def browser(user: User) -> Client:
    client = Client()
    client.force_login(user)
    assert signed_in_as(client) == user.get_username()
    return client


def key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def same_cookie_as(client: Client) -> Client:
    """Another browser with the same session cookie (a look that leaves ``client`` be:
    a request with an unknown session deletes its cookie)."""
    other = Client()
    other.cookies[settings.SESSION_COOKIE_NAME] = key_of(client)
    return other


@pytest.fixture
def revoked() -> Iterator[list[dict[str, Any]]]:
    """The session_revoked signals sent during the test."""
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    session_revoked.connect(receiver)
    yield received
    session_revoked.disconnect(receiver)


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> time_machine.TimeMachineFixture:
    time_machine.move_to(START, tick=False)
    return time_machine


# -- fault injection --------------------------------------------------------------------


class _Undo(Exception):
    pass


@contextmanager
def dropped_session_table() -> Iterator[None]:
    """Fault injection for the db engine: its table is gone (dropped in a savepoint,
    restored when the block ends)."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DROP TABLE {connection.ops.quote_name(SecureSession._meta.db_table)}"
                )
            yield
            raise _Undo
    except _Undo:
        pass


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@contextmanager
def unreachable_redis() -> Iterator[None]:
    """Fault injection for the redis engine: the session cache points at a port where
    nothing listens."""
    cache = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}
    with override_settings(CACHES={"default": cache}):
        yield


BROKEN_STORAGE: dict[str, Callable[[], Any]] = {
    "db": dropped_session_table,
    "redis": unreachable_redis,
}


# -- clearsecuresessions ------------------------------------------------------------------


def session_of(store_class: StoreClass, user: User, *, expiry: int | None = None) -> str:
    """A stored session signed in as ``user``; its key."""
    store = store_class()
    store[USER_ID_KEY] = str(user.pk)
    store.set_expiry(expiry)
    store.save()
    assert store.session_key is not None
    return store.session_key


def make_expired_and_live(
    store_class: StoreClass,
    make_user: Callable[..., User],
    frozen: time_machine.TimeMachineFixture,
    seconds_apart: int = 0,
) -> dict[User, tuple[str, str]]:
    """Five users, each with one session that has expired and one that hasn't, made
    ``seconds_apart`` from one user to the next: (expired key, live key) by user."""
    sessions = {}
    for _ in range(5):
        user = make_user()
        sessions[user] = (session_of(store_class, user, expiry=60), session_of(store_class, user))
        frozen.shift(seconds_apart)
    frozen.shift(60 + EXPIRY_GRACE + 1)
    return sessions


@pytest.fixture
def expired_and_live(
    store_class: StoreClass, make_user: Callable[..., User], frozen: time_machine.TimeMachineFixture
) -> dict[User, tuple[str, str]]:
    return make_expired_and_live(store_class, make_user, frozen)


def stored(storage: Storage, users: Iterable[User]) -> set[str]:
    """The session ids stored for these users (expired or not)."""
    return set().union(*(storage.user_index(str(user.pk)) for user in users))


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("options", "said"),
    [((), "Removed no expired sessions."), (("--dry-run",), "Would remove no expired sessions.")],
)
def test_clearsecuresessions_says_when_nothing_had_expired(
    store_class: StoreClass, user: User, options: tuple[str, ...], said: str
) -> None:
    session_of(store_class, user)

    assert run("clearsecuresessions", *options).splitlines() == [said]


@pytest.mark.usefixtures("engine")
def test_clearsecuresessions_removes_what_expired_and_keeps_the_rest(
    expired_and_live: dict[User, tuple[str, str]], storage: Storage
) -> None:
    output = run("clearsecuresessions")

    assert output.splitlines()[-1] == "Removed 5 expired entries in all."
    live = {session_id_for_key(live_key) for _, live_key in expired_and_live.values()}
    assert stored(storage, expired_and_live) == live
    for user, (_, live_key) in expired_and_live.items():
        assert [info.id for info in list_user_sessions(user)] == [session_id_for_key(live_key)]


def test_clearsecuresessions_reports_each_batch(
    store_class: StoreClass,
    make_user: Callable[..., User],
    frozen: time_machine.TimeMachineFixture,
    storage: Storage,
) -> None:
    sessions = make_expired_and_live(store_class, make_user, frozen, seconds_apart=7)

    output = run("clearsecuresessions", "--batch-size", "2")

    assert output.splitlines() == [
        "Removed 2 expired entries (2 so far).",
        "Removed 2 expired entries (4 so far).",
        "Removed 1 expired entry (5 so far).",
        "Removed 5 expired entries in all.",
    ]
    live = {session_id_for_key(live_key) for _, live_key in sessions.values()}
    assert stored(storage, sessions) == live


@pytest.mark.parametrize("engine", ["db"], indirect=True)
def test_db_batches_take_every_session_that_expired_in_the_same_second(
    store_class: StoreClass,
    make_user: Callable[..., User],
    frozen: time_machine.TimeMachineFixture,
    storage: Storage,
) -> None:
    users = [make_user() for _ in range(5)]
    for number, user in enumerate(users):
        if number >= 3:  # three expire in the same second, then one every 7 seconds
            frozen.shift(7)
        session_of(store_class, user, expiry=60)
    frozen.shift(60 + EXPIRY_GRACE + 1)

    output = run("clearsecuresessions", "--batch-size", "2")

    assert output.splitlines() == [
        "Removed 3 expired entries (3 so far).",
        "Removed 2 expired entries (5 so far).",
        "Removed 5 expired entries in all.",
    ]
    assert stored(storage, users) == set()


def cleanup_setting() -> str:
    """What the db engine's cleanup changes for its own batches: SQLite's page cache,
    PostgreSQL's synchronous_commit."""
    query = "PRAGMA cache_size" if connection.vendor == "sqlite" else "SHOW synchronous_commit"
    with connection.cursor() as cursor:
        cursor.execute(query)
        (value,) = cursor.fetchone()
    return str(value)


@pytest.mark.parametrize("engine", ["db"], indirect=True)
@pytest.mark.parametrize("project_cache", [None, -200_000], ids=["default-cache", "large-cache"])
def test_db_cleanup_leaves_the_connection_as_it_found_it(
    expired_and_live: dict[User, tuple[str, str]], storage: Storage, project_cache: int | None
) -> None:
    # In the test's transaction, as inside any caller's: PostgreSQL's durability is
    # never relaxed there (it would cover the caller's own writes). On SQLite, a cache
    # the project set larger is kept, and the one the cleanup enlarged is given back.
    if project_cache is not None and connection.vendor != "sqlite":
        pytest.skip("a page cache the project set: SQLite only")
    with sqlite_page_cache(project_cache):
        before = cleanup_setting()

        run("clearsecuresessions", "--batch-size", "2")

        assert cleanup_setting() == before
    live = {session_id_for_key(live_key) for _, live_key in expired_and_live.values()}
    assert stored(storage, expired_and_live) == live


@contextmanager
def sqlite_page_cache(size: int | None) -> Iterator[None]:
    """SQLite's page cache set to ``size`` as a project would (None: left as it is),
    then put back for the tests that share the connection."""
    if size is None:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (previous,) = cursor.fetchone()
        cursor.execute(f"PRAGMA cache_size = {size}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {previous}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ["db"], indirect=True)
def test_db_cleanup_in_autocommit_removes_what_expired_and_leaves_the_connection_as_it_was(
    expired_and_live: dict[User, tuple[str, str]], storage: Storage
) -> None:
    before = cleanup_setting()

    output = run("clearsecuresessions", "--batch-size", "2")

    assert output.splitlines()[-1] == "Removed 5 expired entries in all."
    assert cleanup_setting() == before
    live = {session_id_for_key(live_key) for _, live_key in expired_and_live.values()}
    assert stored(storage, expired_and_live) == live


@pytest.mark.usefixtures("engine")
def test_clearsecuresessions_dry_run_counts_and_changes_nothing(
    expired_and_live: dict[User, tuple[str, str]], storage: Storage
) -> None:
    before = storage.dump()

    output = run("clearsecuresessions", "--dry-run", "--batch-size", "2")

    assert output.splitlines() == ["Would remove 5 expired entries in all."]
    assert storage.dump() == before


@pytest.mark.usefixtures("engine")
def test_clearsecuresessions_twice_removes_nothing_the_second_time(
    expired_and_live: dict[User, tuple[str, str]], storage: Storage
) -> None:
    run("clearsecuresessions")
    after_first = storage.dump()

    output = run("clearsecuresessions")

    assert output.splitlines() == ["Removed no expired sessions."]
    assert storage.dump() == after_first


@pytest.mark.parametrize("arguments", [[], ["--dry-run"]], ids=["remove", "dry-run"])
def test_clearsecuresessions_exits_with_a_clear_message_when_storage_fails(
    engine: str, arguments: list[str]
) -> None:
    with BROKEN_STORAGE[engine]():
        error = fails("clearsecuresessions", *arguments)

    assert error.returncode == 1
    assert str(error).startswith("The session storage failed (")
    assert str(error).endswith("it is safe to run the command again.")


@pytest.mark.parametrize("value", ["0", "-3", "many"])
@pytest.mark.usefixtures("engine")
def test_clearsecuresessions_refuses_a_batch_size_that_is_not_positive(value: str) -> None:
    error = fails("clearsecuresessions", "--batch-size", value)

    assert "--batch-size" in str(error)
    assert f"must be a positive integer, not {value!r}" in str(error)


def test_a_failing_command_prints_one_line_and_exits_1_without_a_traceback() -> None:
    """Through manage.py: a database without the session table (never migrated)."""
    result = subprocess.run(
        [sys.executable, "-m", "django", "clearsecuresessions", "--settings", "tests.settings"],
        cwd=REPOSITORY,
        env={**os.environ, "DATABASE_URL": "sqlite://"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("CommandError: The session storage failed (OperationalError")
    assert "Traceback" not in result.stderr


# -- revokesessions -------------------------------------------------------------------------


@pytest.fixture
def three_users(
    engine: str, make_user: Callable[..., User]
) -> tuple[dict[User, list[Client]], Client]:
    """alice with two browsers, bob and carol with one each; and an anonymous session
    (a cart): (browsers by user, the anonymous browser)."""
    alice, bob, carol = (make_user(username=name) for name in ("alice", "bob", "carol"))
    browsers = {
        alice: [browser(alice), browser(alice)],
        bob: [browser(bob)],
        carol: [browser(carol)],
    }
    shopper = Client()
    session = shopper.session
    session["cart"] = ["book"]
    session.save()
    return browsers, shopper


def signed_in(browsers: dict[User, list[Client]]) -> dict[str, list[str]]:
    return {
        user.get_username(): [signed_in_as(b) for b in clients]
        for user, clients in browsers.items()
    }


def test_revokesessions_signs_out_the_named_users_only(
    three_users: tuple[dict[User, list[Client]], Client], revoked: list[dict[str, Any]]
) -> None:
    browsers, _ = three_users
    alice, bob, carol = browsers
    ended = {session_id_for_key(key_of(b)) for user in (alice, bob) for b in browsers[user]}

    output = run("revokesessions", "--user", "alice", "--user", "bob")

    assert output.splitlines() == [
        "alice: revoked 2 sessions.",
        "bob: revoked 1 session.",
        "Revoked 3 sessions in all.",
    ]
    assert signed_in(browsers) == {"alice": ["", ""], "bob": [""], "carol": ["carol"]}
    assert list_user_sessions(alice) == list_user_sessions(bob) == []
    assert len(list_user_sessions(carol)) == 1
    assert {(event["session_id"], event["reason"]) for event in revoked} == {
        (session_id, "command") for session_id in ended
    }
    assert {event["request"] for event in revoked} == {None}


def test_revokesessions_by_user_id_signs_out_those_users_only(
    three_users: tuple[dict[User, list[Client]], Client],
) -> None:
    browsers, _ = three_users
    _, bob, carol = browsers

    output = run("revokesessions", "--user-id", str(bob.pk), "--user-id", str(carol.pk))

    assert output.splitlines() == [
        "bob: revoked 1 session.",
        "carol: revoked 1 session.",
        "Revoked 2 sessions in all.",
    ]
    assert signed_in(browsers) == {"alice": ["alice", "alice"], "bob": [""], "carol": [""]}


@pytest.mark.parametrize("user_id", ["999999", "abc"])
def test_revokesessions_with_an_unknown_user_id_revokes_nobody(
    three_users: tuple[dict[User, list[Client]], Client], storage: Storage, user_id: str
) -> None:
    browsers, _ = three_users
    before = storage.session_ids()

    error = fails("revokesessions", "--user-id", str(next(iter(browsers)).pk), "--user-id", user_id)

    assert str(error) == f"No user with id: {user_id}. Nothing was revoked."
    assert storage.session_ids() == before


def test_commands_print_nothing_with_verbosity_0_and_still_act(
    three_users: tuple[dict[User, list[Client]], Client],
) -> None:
    browsers, _ = three_users

    outputs = [
        run("revokesessions", "--user", "alice", "-v", "0"),
        run("clearsecuresessions", "-v", "0"),
        run("importsessions", "--from", "db", "-v", "0"),
    ]

    assert outputs == ["", "", ""]
    assert signed_in(browsers) == {"alice": ["", ""], "bob": ["bob"], "carol": ["carol"]}


def test_revokesessions_all_signs_everybody_out(
    three_users: tuple[dict[User, list[Client]], Client],
    storage: Storage,
    revoked: list[dict[str, Any]],
) -> None:
    browsers, shopper = three_users

    output = run("revokesessions", "--all", "--batch-size", "2")

    assert output.splitlines() == [
        "Revoked 2 sessions so far.",
        "Revoked 4 sessions so far.",
        "Revoked 5 sessions so far.",
        "Revoked 5 sessions in all.",
    ]
    assert signed_in(browsers) == {"alice": ["", ""], "bob": [""], "carol": [""]}
    assert shopper.session.get("cart") is None
    assert storage.session_ids() == set()
    assert len(revoked) == 5
    assert {event["reason"] for event in revoked} == {"command"}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["--user", "alice", "--user", "carol"],
            [
                "alice: would revoke 2 sessions.",
                "carol: would revoke 1 session.",
                "Would revoke 3 sessions in all.",
            ],
        ),
        (["--all"], ["Would revoke 5 sessions in all."]),
    ],
    ids=["users", "all"],
)
def test_revokesessions_dry_run_shows_what_it_would_revoke_and_changes_nothing(
    three_users: tuple[dict[User, list[Client]], Client],
    storage: Storage,
    revoked: list[dict[str, Any]],
    arguments: list[str],
    expected: list[str],
) -> None:
    browsers, shopper = three_users
    before = storage.session_ids()

    output = run("revokesessions", *arguments, "--dry-run")

    assert output.splitlines() == expected
    assert storage.session_ids() == before
    assert signed_in(browsers) == {"alice": ["alice", "alice"], "bob": ["bob"], "carol": ["carol"]}
    assert shopper.session.get("cart") == ["book"]
    assert revoked == []


def test_revokesessions_with_an_unknown_user_revokes_nobody(
    three_users: tuple[dict[User, list[Client]], Client],
    storage: Storage,
    revoked: list[dict[str, Any]],
) -> None:
    browsers, _ = three_users
    before = storage.session_ids()

    error = fails("revokesessions", "--user", "alice", "--user", "mallory", "--user", "bob")

    assert error.returncode == 1
    assert str(error) == "No such user: mallory. Nothing was revoked."
    assert storage.session_ids() == before
    assert signed_in(browsers) == {"alice": ["alice", "alice"], "bob": ["bob"], "carol": ["carol"]}
    assert revoked == []


@pytest.mark.parametrize(
    "arguments", [[], ["--user", "alice", "--all"]], ids=["nobody", "users-and-all"]
)
@pytest.mark.usefixtures("engine")
def test_revokesessions_needs_users_or_all_but_not_both(arguments: list[str]) -> None:
    error = fails("revokesessions", *arguments)

    assert "--user" in str(error)
    assert "--all" in str(error)


def test_revokesessions_exits_with_a_clear_message_when_storage_fails(
    three_users: tuple[dict[User, list[Client]], Client], engine: str
) -> None:
    with BROKEN_STORAGE[engine]():
        error = fails("revokesessions", "--all")

    assert error.returncode == 1
    assert str(error).startswith("The session storage failed (")


# -- importsessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class DjangoSessions:
    """Sessions of Django's own db engine: a signed-in browser, an anonymous cart and
    an expired session (its key)."""

    user: User
    browser: Client
    cart: str
    expired: str


def stored_id(store_class: StoreClass, key: str) -> str | None:
    """The public id of the session a cookie of Django's engine leads to: that of its own
    key, or on Redis Cluster that of the new key it was imported under (a load follows
    the alias, as a request would: tests/test_cluster.py)."""
    store = store_class(key)
    store.load()
    return store.session_id


@pytest.fixture
def django_db_sessions(
    settings: SettingsWrapper, engine: str, make_user: Callable[..., User]
) -> DjangoSessions:
    """Sessions made while Django's db engine was SESSION_ENGINE; then ours is."""
    ours = settings.SESSION_ENGINE
    settings.SESSION_ENGINE = DJANGO_DB_ENGINE
    user = make_user()
    signed_in_browser = browser(user)
    cart = DjangoDbStore()
    cart["cart"] = ["book"]
    cart.save()
    expired = DjangoDbStore()
    expired[USER_ID_KEY] = str(user.pk)
    expired.set_expiry(datetime.now(tz=timezone.utc) - timedelta(hours=1))
    expired.save()
    settings.SESSION_ENGINE = ours
    assert cart.session_key is not None
    assert expired.session_key is not None
    # A client keeps the middleware it was first served with (Django's engine): the
    # browser after the switch is a new client with the same cookie.
    after_switch = same_cookie_as(signed_in_browser)
    return DjangoSessions(user, after_switch, cart.session_key, expired.session_key)


def test_importsessions_from_db_keeps_every_browser_signed_in(
    django_db_sessions: DjangoSessions, store_class: StoreClass
) -> None:
    user, signed_in_browser = django_db_sessions.user, django_db_sessions.browser

    output = run("importsessions", "--from", "db")

    assert output.splitlines() == ["Imported 2 sessions from Django's db engine."]
    # The same cookie, now read by our engine: still signed in.
    assert signed_in_as(signed_in_browser) == user.get_username()
    assert [info.id for info in list_user_sessions(user)] == [
        session_id_for_key(key_of(signed_in_browser))
    ]
    assert store_class(django_db_sessions.cart).get("cart") == ["book"]
    assert not store_class().exists(django_db_sessions.expired)


def test_importsessions_twice_imports_nothing_the_second_time(
    django_db_sessions: DjangoSessions, storage: Storage
) -> None:
    run("importsessions")
    after_first = storage.session_ids()

    output = run("importsessions")

    assert output.splitlines() == [
        "Imported 0 sessions from Django's db engine; 2 already imported."
    ]
    assert storage.session_ids() == after_first
    assert signed_in_as(django_db_sessions.browser) == django_db_sessions.user.get_username()


def test_importsessions_dry_run_counts_and_stores_nothing(
    django_db_sessions: DjangoSessions, storage: Storage
) -> None:
    output = run("importsessions", "--dry-run")

    assert output.splitlines() == ["Would import 2 sessions from Django's db engine."]
    assert storage.session_ids() == set()
    assert signed_in_as(same_cookie_as(django_db_sessions.browser)) == ""


def test_importsessions_from_cache_keeps_every_browser_signed_in(
    settings: SettingsWrapper,
    engine: str,
    redis_client: redis.Redis,
    make_user: Callable[..., User],
    store_class: StoreClass,
) -> None:
    """Django's cache engine on the django-redis cache ``default``."""
    if engine == "redis" and routing.enabled():
        pytest.skip("Django's cache engine can't run on Redis Cluster (django-redis can't)")
    ours = settings.SESSION_ENGINE
    settings.SESSION_ENGINE = DJANGO_CACHE_ENGINE
    user = make_user()
    signed_in_browser = browser(user)
    settings.SESSION_ENGINE = ours
    assert signed_in_as(same_cookie_as(signed_in_browser)) == ""  # not imported yet

    assert run("importsessions", "--from", "cache", "--dry-run").splitlines() == [
        "Would import 1 session from Django's cache engine."
    ]
    assert list_user_sessions(user) == []
    output = run("importsessions", "--from", "cache")

    assert output.splitlines() == ["Imported 1 session from Django's cache engine."]
    assert signed_in_as(same_cookie_as(signed_in_browser)) == user.get_username()
    assert run("importsessions", "--from", "cache").splitlines() == [
        "Imported 0 sessions from Django's cache engine; 1 already imported."
    ]


def test_importsessions_refuses_what_our_engines_would_refuse(
    django_db_sessions: DjangoSessions,
    settings: SettingsWrapper,
    storage: Storage,
    store_class: StoreClass,
) -> None:
    ours = settings.SESSION_ENGINE
    settings.SESSION_ENGINE = DJANGO_DB_ENGINE
    leaky = DjangoDbStore()
    leaky["card_number"] = "4111 1111 1111 1111"  # Django's engine stores anything
    leaky.save()
    settings.SESSION_ENGINE = ours
    assert leaky.session_key is not None
    errors = StringIO()

    dry = run("importsessions", "--dry-run")
    call_command("importsessions", stdout=StringIO(), stderr=errors)
    again = run("importsessions", "--dry-run")

    assert dry.splitlines() == [
        "Would import 2 sessions from Django's db engine; 1 refused (see above)."
    ]
    assert errors.getvalue().splitlines() == [
        "Refused a session: Refusing to store 'card_number' in the session: it matches "
        "SECURE_SESSIONS_FORBIDDEN_KEYS. Keep secrets and personal data out of session state."
    ]
    assert storage.session_ids() == {
        stored_id(store_class, key_of(django_db_sessions.browser)),
        stored_id(store_class, django_db_sessions.cart),
    }
    assert stored_id(store_class, leaky.session_key) is None
    assert again.splitlines() == [
        "Would import 0 sessions from Django's db engine; 2 already imported; 1 refused "
        "(see above)."
    ]


def test_importsessions_refuses_a_key_that_djangos_engines_do_not_make(
    settings: SettingsWrapper, storage: Storage, user: User
) -> None:
    """Django's table takes any key; ours take only the shape of the keys Django makes
    (on Redis Cluster, also one of ours: with a routing tag, which is not this user's)."""
    Session.objects.create(
        session_key="ABCD" + "a" * 28,
        session_data=DjangoDbStore().encode({USER_ID_KEY: str(user.pk)}),
        expire_date=datetime.now(tz=timezone.utc) + timedelta(hours=1),
    )
    errors = StringIO()

    call_command("importsessions", stdout=StringIO(), stderr=errors)

    assert errors.getvalue().splitlines() == [
        "Refused a session: its key is not one that Django's engines make."
    ]
    assert storage.session_ids() == set()
    assert list_user_sessions(user) == []


@pytest.mark.usefixtures("engine")
def test_importsessions_needs_one_of_our_engines(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = DJANGO_DB_ENGINE

    error = fails("importsessions")

    assert "is not a django-secure-sessions engine" in str(error)


# -- -v 2 and --database --------------------------------------------------------------------


def public_ids(clients: Iterable[Client]) -> list[str]:
    return [
        session_id_for_key(client.cookies[settings.SESSION_COOKIE_NAME].value) for client in clients
    ]


def test_revokesessions_lists_each_session_by_public_id_with_verbosity_2(
    three_users: tuple[dict[User, list[Client]], Client],
) -> None:
    browsers, _ = three_users
    alice = next(user for user in browsers if user.username == "alice")
    keys = [client.cookies[settings.SESSION_COOKIE_NAME].value for client in browsers[alice]]

    output = run("revokesessions", "--user", "alice", "-v", "2")

    lines = output.splitlines()
    assert sorted(lines[:2]) == sorted(
        f"  revoked session {i}" for i in public_ids(browsers[alice])
    )
    assert lines[2:] == ["alice: revoked 2 sessions.", "Revoked 2 sessions in all."]
    assert not any(key in output for key in keys)


def test_revokesessions_all_lists_each_session_and_its_user_with_verbosity_2(
    three_users: tuple[dict[User, list[Client]], Client],
) -> None:
    browsers, shopper = three_users
    expected = {
        f"  revoked session {session_id} of user {user.pk}"
        for user, clients in browsers.items()
        for session_id in public_ids(clients)
    } | {f"  revoked session {public_ids([shopper])[0]} of user None"}

    output = run("revokesessions", "--all", "-v", "2")

    assert {line for line in output.splitlines() if line.startswith("  ")} == expected


def test_importsessions_lists_each_session_by_public_id_with_verbosity_2(
    settings: SettingsWrapper, engine: str, store_class: StoreClass
) -> None:
    settings.SESSION_ENGINE = DJANGO_DB_ENGINE
    django_session = DjangoDbStore()
    django_session["cart"] = ["book"]
    django_session.create()
    key = django_session.session_key
    assert key is not None
    settings.SESSION_ENGINE = f"django_secure_sessions.backends.{engine}"

    first = run("importsessions", "-v", "2")
    second = run("importsessions", "-v", "2")

    here = stored_id(store_class, key)  # on Cluster, not the id of Django's key
    assert first.splitlines()[0] == f"  session {here}: imported"
    assert second.splitlines()[0] == f"  session {here}: already imported"
    assert key not in first + second


@pytest.mark.django_db(databases=["default", "other"])
@pytest.mark.parametrize("engine", ["db"], indirect=True)
def test_revokesessions_and_clearsecuresessions_work_on_the_database_named(
    engine: str, make_user: Callable[..., User]
) -> None:
    make_user(username="alice")
    elsewhere = User.objects.db_manager("other").create_user("alice")
    with using_database("other"):
        store = DbSessionStore()
        store[USER_ID_KEY] = str(elsewhere.pk)
        store.save()
    here = browser(User.objects.get(username="alice"))

    output = run("revokesessions", "--user", "alice", "--database", "other", "-v", "2")

    assert output.splitlines() == [
        f"  revoked session {store.session_id}",
        "alice: revoked 1 session.",
        "Revoked 1 session in all.",
    ]
    assert SecureSession.objects.using("other").count() == 0
    assert signed_in_as(here) == "alice"  # the default database's session is untouched
    assert run("clearsecuresessions", "--database", "other") == "Removed no expired sessions.\n"


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_clearsecuresessions_refuses_a_database_on_the_redis_engine(engine: str) -> None:
    error = fails("clearsecuresessions", "--database", "other")

    assert "the Redis engine keeps them in the cache" in str(error)
