"""The Redis engine on Redis Cluster: what only the cluster mode has (routing tags, walks
over every primary, sessions of Django's engines imported under new keys). The rest of the Redis
part of the suite runs on the cluster too, with ``REDIS_CLUSTER=1`` (tests/redis_server.py);
these tests are skipped, saying why, in the other modes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import cast

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.db import SessionStore as DjangoDbStore
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client, override_settings
from pytest_django.fixtures import Settings as SettingsWrapper
from redis.cluster import RedisCluster

from django_secure_sessions import list_user_sessions, revoke_user_sessions
from django_secure_sessions.backends import aliases, routing
from django_secure_sessions.backends.base import USER_ID_KEY, session_id_for_key
from django_secure_sessions.signals import session_rotated
from tests.marks import async_test
from tests.redis_server import RedisClusterServers
from tests.sessions import (
    START,
    Storage,
    StoreClass,
    admin_login,
    capture,
    loaded,
    redis_index_names,
    redis_session_name,
    saved,
    session_key_of,
    user_id,
)

REDIS_ENGINE = "django_secure_sessions.backends.redis"
DJANGO_DB_ENGINE = "django.contrib.sessions.backends.db"
SUSPICIOUS = "django.security.SuspiciousSession"


@pytest.fixture
def cluster(
    redis_cluster: RedisClusterServers | None, settings: SettingsWrapper, db: None
) -> RedisCluster:
    """The suite's cluster, emptied, with the Redis engine; skipped outside the cluster
    mode."""
    if redis_cluster is None:
        pytest.skip("only in the cluster mode of the suite (REDIS_CLUSTER=1)")
    if redis_cluster.unavailable is not None:
        pytest.skip(f"REDIS CLUSTER NOT AVAILABLE: {redis_cluster.unavailable}")
    settings.SESSION_ENGINE = REDIS_ENGINE
    client = redis_cluster.client()
    client.flushdb()
    return client


@pytest.fixture
def store_class(cluster: RedisCluster) -> StoreClass:
    from django_secure_sessions.backends.redis import SessionStore

    return SessionStore


@pytest.fixture
def storage(cluster: RedisCluster) -> Storage:
    return Storage("redis", cluster)


def slot_of_session(cluster: RedisCluster, session_id: str | None) -> int:
    assert session_id is not None
    slot: int = cluster.keyslot(redis_session_name(session_id))  # type: ignore[no-untyped-call]
    return slot


def index_slot(cluster: RedisCluster, user: AbstractBaseUser) -> int:
    (index,) = redis_index_names(user_id(user))
    slot: int = cluster.keyslot(index)  # type: ignore[no-untyped-call]
    return slot


def primary_of(cluster: RedisCluster, name: str) -> str:
    node = cluster.get_node_from_key(name)  # type: ignore[no-untyped-call]
    return str(node.name)


def test_a_users_sessions_share_the_slot_of_the_users_index(
    cluster: RedisCluster, store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    stores = [saved(store_class, {"n": n}, user=user) for n in range(3)]

    assert {slot_of_session(cluster, store.session_id) for store in stores} == {
        index_slot(cluster, user)
    }
    assert storage.user_index(user_id(user)) == {store.session_id for store in stores}
    # The tag is the user's, derived with SECRET_KEY, never the raw id; 128+ random bits.
    for store in stores:
        key = store.session_key
        assert key is not None
        assert routing.key_tag(key) == routing.user_tag(user_id(user)) != user_id(user)
        assert len(key) - routing.TAG_LENGTH == routing.RANDOM_LENGTH == 28  # ~144 bits
    assert revoke_user_sessions(user) == 3
    assert storage.session_ids() == set()


def test_anonymous_sessions_spread_over_the_primaries(
    cluster: RedisCluster, store_class: StoreClass
) -> None:
    stores = [saved(store_class, {"n": n}) for n in range(30)]

    primaries = {
        primary_of(cluster, redis_session_name(store.session_id or "")) for store in stores
    }
    assert len(primaries) == len(cluster.get_primaries()) == 3  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("key", ["zzzz" + "a" * 28, "abcd" + "a" * 28])
def test_a_key_of_djangos_engines_costs_one_round_trip_the_look_for_its_alias(
    store_class: StoreClass, storage: Storage, key: str
) -> None:
    """Even one that starts with four hex digits: a routing tag is in capitals."""
    loaded(store_class, key)  # its primary has the script cached from now on
    store = store_class(key)

    with storage.round_trips() as trips:
        data = dict(store.items())

    assert (data, store.session_key) == ({}, None)
    assert (trips.commands, trips.total) == ({"evalsha": 1}, 1)
    assert storage.dump() == {}  # looking wrote nothing


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"KEY_PREFIX": "{shop}"}, "has a brace"),
        ({"LOCATION": "redis://127.0.0.1:7000/3"}, "names a database"),
    ],
)
def test_a_cache_entry_a_cluster_cannot_serve_is_a_clear_error(
    store_class: StoreClass, settings: SettingsWrapper, entry: dict[str, str], problem: str
) -> None:
    # Check secure_sessions.E007 says so too (tests/test_checks.py); this is for a project
    # that skips the checks.
    cache = {**settings.CACHES["default"], **entry}
    with (
        override_settings(CACHES={"default": cache}),
        pytest.raises(ImproperlyConfigured, match=problem),
    ):
        saved(store_class)


def test_a_login_moves_the_session_to_a_key_with_the_users_tag(
    cluster: RedisCluster, storage: Storage, make_user: Callable[..., AbstractBaseUser]
) -> None:
    admin = make_user(is_staff=True, is_superuser=True)
    client = Client()
    client.get("/cart/add/")  # an anonymous session, under a random tag
    anonymous_key = session_key_of(client)

    with capture(session_rotated) as rotations:
        admin_login(client, admin)  # rotates the key, then puts the user id in the data

    key = session_key_of(client)
    assert routing.key_tag(key) == routing.user_tag(user_id(admin))
    assert storage.session_ids() == storage.user_index(user_id(admin)) == {session_id_for_key(key)}
    # Login's own rotation, then the move to the user's tag at the response's save.
    assert len(rotations) == 2
    assert rotations[0]["previous_session_id"] == session_id_for_key(anonymous_key)
    assert rotations[-1]["session_id"] == session_id_for_key(key)
    assert client.get("/admin/").status_code == 200
    assert [info.id for info in list_user_sessions(admin)] == [session_id_for_key(key)]


def test_a_session_whose_user_changes_without_a_new_key_moves_to_the_new_users_slot(
    cluster: RedisCluster,
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    alice, bob = make_user(), make_user()
    store = loaded(store_class, saved(store_class, {"cart": ["book"]}, user=alice).session_key)
    old_key, old_id = store.session_key, store.session_id

    store[USER_ID_KEY] = user_id(bob)  # no cycle_key(): the key is alice's
    with capture(session_rotated) as rotations:
        store.save()

    assert store.session_key is not None
    assert store.session_key != old_key
    assert routing.key_tag(store.session_key) == routing.user_tag(user_id(bob))
    assert storage.user_index(user_id(alice)) == set()
    assert storage.user_index(user_id(bob)) == {store.session_id}
    assert storage.session_ids() == {store.session_id}
    assert loaded(store_class, old_key).session_key is None
    assert loaded(store_class, store.session_key)["cart"] == ["book"]
    assert [(r["previous_session_id"], r["session_id"]) for r in rotations] == [
        (old_id, store.session_id)
    ]


def test_a_session_revoked_before_its_move_is_not_brought_back(
    cluster: RedisCluster,
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    alice, bob = make_user(), make_user()
    store = loaded(store_class, saved(store_class, user=alice).session_key)
    assert revoke_user_sessions(alice) == 1  # by a concurrent request, say

    store[USER_ID_KEY] = user_id(bob)
    with pytest.raises(UpdateError):
        store.save()

    assert storage.session_ids() == set()
    assert storage.user_index(user_id(bob)) == set()


@async_test
async def test_async_a_session_whose_user_changes_moves_and_a_revoked_one_stays_revoked(
    cluster: RedisCluster,
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    from asgiref.sync import sync_to_async

    alice, bob, carol = await sync_to_async(lambda: [make_user() for _ in range(3)])()
    moved = store_class()
    await moved.aset(USER_ID_KEY, user_id(alice))
    await moved.asave()
    await moved.aset(USER_ID_KEY, user_id(bob))
    await moved.asave()
    assert moved.session_key is not None
    assert routing.key_tag(moved.session_key) == routing.user_tag(user_id(bob))

    revoked = store_class()
    await revoked.aset(USER_ID_KEY, user_id(carol))
    await revoked.asave()
    await sync_to_async(revoke_user_sessions)(carol)
    await revoked.aset(USER_ID_KEY, user_id(alice))
    with pytest.raises(UpdateError):
        await revoked.asave()

    assert storage.session_ids() == {moved.session_id}
    assert storage.user_index(user_id(bob)) == {moved.session_id}


def test_after_a_secret_rotation_the_users_old_sessions_are_still_listed_and_revoked(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    with override_settings(SECRET_KEY="the-old-secret-key"):
        old = saved(store_class, user=user)

    with override_settings(
        SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=["the-old-secret-key"]
    ):
        new = saved(store_class, user=user)
        assert old.session_key is not None
        assert new.session_key is not None
        assert old.session_key[:4] != new.session_key[:4]  # two tags, two indexes
        listed = {info.id for info in list_user_sessions(user)}
        assert listed == {old.session_id, new.session_id}
        assert revoke_user_sessions(user) == 2
    assert storage.session_ids() == set()


# -- sessions of Django's engines ------------------------------------------------------------


def django_session(settings: SettingsWrapper, user: AbstractBaseUser | None = None) -> Client:
    """A browser with a session of Django's db engine (signed in as ``user``, or with a
    cart), made while that engine was SESSION_ENGINE; then ours is."""
    settings.SESSION_ENGINE = DJANGO_DB_ENGINE
    browser = Client()
    if user is None:
        store = DjangoDbStore()
        store["cart"] = ["book"]
        store.save()
        assert store.session_key is not None
        browser.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    else:
        browser.force_login(cast(User, user))
    settings.SESSION_ENGINE = REDIS_ENGINE
    return browser


def imported() -> str:
    out = StringIO()
    call_command("importsessions", stdout=out, stderr=StringIO())
    return out.getvalue()


def whoami(client: Client) -> str:
    """Who the client is signed in as ("": anonymous, sent to log in)."""
    response = client.get("/whoami/")
    assert response.status_code in {200, 302}
    return response.content.decode() if response.status_code == 200 else ""


def alias_name(old_key: str) -> str:
    return f"secure_sessions:a:{aliases.alias_id(old_key)}"


def with_cookie(key: str) -> Client:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    return client


def test_an_imported_session_keeps_its_browser_signed_in_under_a_key_with_the_users_tag(
    cluster: RedisCluster, settings: SettingsWrapper, storage: Storage, user: AbstractBaseUser
) -> None:
    browser = django_session(settings, user)
    old_key = session_key_of(browser)

    assert imported().splitlines() == ["Imported 1 session from Django's db engine."]
    assert whoami(browser) == user.get_username()

    new_key = session_key_of(browser)  # the response swapped the cookie
    assert new_key != old_key
    assert routing.key_tag(new_key) == routing.user_tag(user_id(user))
    assert storage.user_index(user_id(user)) == {session_id_for_key(new_key)}
    assert [info.id for info in list_user_sessions(user)] == [session_id_for_key(new_key)]
    # Neither key is in Redis: the alias holds the new one sealed with the old.
    stored = repr(storage.dump())
    assert old_key not in stored
    assert new_key not in stored
    assert whoami(browser) == user.get_username()
    assert revoke_user_sessions(user) == 1
    assert whoami(with_cookie(old_key)) == ""  # the alias leads to nothing now


def test_an_imported_anonymous_session_keeps_its_data_and_gets_a_key_of_ours(
    cluster: RedisCluster, settings: SettingsWrapper, storage: Storage
) -> None:
    browser = django_session(settings)
    old_key = session_key_of(browser)
    imported()

    assert browser.get("/cart/add/").content == b"book,book"

    new_key = session_key_of(browser)
    assert new_key != old_key
    assert routing.has_tag(new_key)
    assert storage.session_ids() == {session_id_for_key(new_key)}
    assert browser.get("/cart/add/").content == b"book,book,book"


def test_the_old_cookie_works_for_a_minute_after_its_first_use_and_then_no_more(
    cluster: RedisCluster,
    settings: SettingsWrapper,
    user: AbstractBaseUser,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(START, tick=False)
    browser = django_session(settings, user)
    old_key = session_key_of(browser)
    imported()
    assert whoami(browser) == user.get_username()  # the first request swaps the cookie
    new_key = session_key_of(browser)

    # Requests sent at once with the old cookie (another tab, an XHR) all find it ...
    time_machine.move_to(START + timedelta(seconds=aliases.FOLLOW_GRACE))
    tab = with_cookie(old_key)
    assert whoami(tab) == user.get_username()
    assert session_key_of(tab) == new_key
    # ... and a minute later, the old cookie is no session any more; the new one is.
    time_machine.move_to(START + timedelta(seconds=aliases.FOLLOW_GRACE + 1))
    assert whoami(with_cookie(old_key)) == ""
    assert whoami(browser) == user.get_username()


def test_two_requests_that_follow_the_alias_at_once_both_keep_the_session(
    cluster: RedisCluster,
    settings: SettingsWrapper,
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
) -> None:
    """A page and its XHR, both sent with the old cookie: each loads the session through
    the alias before either saves, each binds it to the client, and the second save,
    meeting the first, merges onto it (no 400, no new session)."""
    old_key = session_key_of(django_session(settings, user))
    imported()
    page, xhr = loaded(store_class, old_key), loaded(store_class, old_key)
    page.bind_client("192.0.2.1", "Firefox")
    page["page"] = "seen"
    xhr.bind_client("192.0.2.1", "Firefox")
    xhr["xhr"] = "seen"

    page.save()
    xhr.save()

    assert page.session_key == xhr.session_key
    assert page.session_key is not None
    assert routing.key_tag(page.session_key) == routing.user_tag(user_id(user))
    assert storage.session_ids() == {page.session_id}
    after = loaded(store_class, page.session_key)
    assert (after[USER_ID_KEY], after["page"], after["xhr"]) == (user_id(user), "seen", "seen")


def test_importsessions_on_cluster_twice_and_dry_run(
    cluster: RedisCluster, settings: SettingsWrapper, storage: Storage, user: AbstractBaseUser
) -> None:
    browser = django_session(settings, user)
    django_session(settings)  # and an anonymous cart
    out = StringIO()

    call_command("importsessions", "--dry-run", "-v", "2", stdout=out)
    assert storage.dump() == {}
    assert imported().splitlines() == ["Imported 2 sessions from Django's db engine."]
    stored = storage.dump()
    assert imported().splitlines() == [
        "Imported 0 sessions from Django's db engine; 2 already imported."
    ]

    assert out.getvalue().splitlines() == [
        "  session (under a new key): would be imported",
        "  session (under a new key): would be imported",
        "Would import 2 sessions from Django's db engine.",
    ]
    assert storage.dump() == stored
    assert whoami(browser) == user.get_username()


def test_an_alias_copied_or_corrupted_leads_nowhere_and_is_logged(
    cluster: RedisCluster,
    settings: SettingsWrapper,
    make_user: Callable[..., AbstractBaseUser],
    caplog: pytest.LogCaptureFixture,
) -> None:
    alices = session_key_of(django_session(settings, make_user()))
    mallorys = session_key_of(django_session(settings, make_user()))
    imported()
    alices_alias, mallorys_alias = (alias_name(key) for key in (alices, mallorys))
    # Mallory makes her cookie's alias hold what Alice's does: it is bound to Alice's.
    cluster.hset(mallorys_alias, "k", cluster.hget(alices_alias, "k"))
    cluster.hset(alices_alias, "t", "not a time")

    assert whoami(with_cookie(mallorys)) == ""
    assert whoami(with_cookie(alices)) == ""

    assert [r.getMessage() for r in caplog.records if r.name == SUSPICIOUS] == [
        f"Session data corrupted or tampered with (session {aliases.alias_id(key)})"
        for key in (mallorys, alices)
    ]


@async_test
async def test_async_a_load_follows_the_alias_of_an_imported_session(
    cluster: RedisCluster,
    settings: SettingsWrapper,
    store_class: StoreClass,
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(make_user)()
    old_key = session_key_of(await sync_to_async(django_session)(settings, user))
    await sync_to_async(imported)()

    store = store_class(old_key)
    assert await store.aget(USER_ID_KEY) == user_id(user)
    assert store.session_key is not None
    assert routing.key_tag(store.session_key) == routing.user_tag(user_id(user))
    assert store.modified  # so the response sends the new cookie
    assert await store_class(store.session_key).aget(USER_ID_KEY) == user_id(user)


def test_the_walks_cover_every_primary(
    cluster: RedisCluster,
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    users = [make_user() for _ in range(12)]
    stored = {saved(store_class, user=user).session_id for user in users}
    holding = {
        primary_of(cluster, name) for name in (redis_index_names(user_id(u))[0] for u in users)
    }
    assert len(holding) >= 2  # the users' indexes are on several primaries

    walked = {
        session_id for batch in store_class.all_session_ids(batch_size=2) for session_id in batch
    }
    assert walked == stored == storage.session_ids()

    paged, cursor = set(), 0
    while True:
        cursor, infos = store_class.page_sessions(cursor, 2)
        paged |= {info.id for info in infos}
        if cursor == 0:
            break
    assert paged == stored

    call_command("revokesessions", "--all", stdout=StringIO(), stderr=StringIO())
    assert storage.session_ids() == set()


def test_clearsecuresessions_prunes_the_indexes_on_every_primary(
    cluster: RedisCluster,
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(START, tick=False)
    users = [make_user() for _ in range(12)]
    for user in users:
        short = store_class()
        short[USER_ID_KEY] = user_id(user)
        short.set_expiry(60)
        short.save()
        saved(store_class, user=user)
    assert len({primary_of(cluster, redis_index_names(user_id(u))[0]) for u in users}) >= 2

    time_machine.shift(600)  # past the short sessions' end, within the others' idle timeout

    assert sum(store_class.expired_batches(batch_size=2, dry_run=True)) == len(users)
    assert sum(store_class.expired_batches(batch_size=2)) == len(users)
    assert all(len(storage.user_index(user_id(user))) == 1 for user in users)
    assert sum(store_class.expired_batches(batch_size=2)) == 0
