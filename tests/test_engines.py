"""The session engines (db and redis) as Django ``SessionBase`` implementations.

Every test runs once per engine (the ``engine`` fixture) and checks what a user would
see (what a new store object loads, what a response carries) or what is stored, read
around the engine with SQL or a plain Redis client (``Storage``, in tests/sessions.py).
"""

from __future__ import annotations

import json
import logging
import pickle
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN
from django.contrib.messages.storage.session import SessionStorage
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.core.signing import JSONSerializer
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CSRF_SESSION_KEY
from django.test import Client
from django.test.utils import override_settings
from django.urls import path
from pytest_django import Settings as SettingsWrapper

from django_secure_sessions import revoke_session, revoke_user_sessions
from django_secure_sessions.backends.base import (
    DJANGO_SESSION_KEYS,
    META_GROUPS,
    SAVE_ATTEMPTS,
    SIGNATURE_LENGTH,
    USER_ID_KEY,
    PendingWrite,
    SecureSessionBase,
    SessionMeta,
    StoredRecord,
    dumps,
    session_id_for_key,
    sign,
)
from django_secure_sessions.backends.redis import aclose_connections
from django_secure_sessions.binding import user_agent_digest
from django_secure_sessions.conf import conf
from django_secure_sessions.exceptions import (
    SensitiveDataError,
    SessionStorageUnavailable,
    SessionTooLarge,
)
from django_secure_sessions.models import SecureSession
from django_secure_sessions.signals import session_rotated
from tests.marks import async_test
from tests.sessions import (
    CHROME_ON_WINDOWS,
    SAFARI_ON_IPHONE,
    START,
    UNKNOWN_KEY,
    Exploit,
    Storage,
    StoreClass,
    admin_login,
    capture,
    loaded,
    redis_index_names,
    redis_session_name,
    rival_saves_before_writes,
    saved,
    session_key_of,
    text,
    user_id,
)

TWO_WEEKS = 14 * 24 * 3600  # Django's default SESSION_COOKIE_AGE


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> time_machine.TimeMachineFixture:
    """Time stopped at START; tests move it with ``frozen.shift(seconds)``."""
    time_machine.move_to(START, tick=False)
    return time_machine


# -- views for the tests that go through a request (@pytest.mark.urls) ------------------


def read_cart(request: HttpRequest) -> HttpResponse:
    return HttpResponse(",".join(request.session.get("cart", [])))


def store_password(request: HttpRequest) -> HttpResponse:
    request.session["password"] = "hunter2"
    return HttpResponse("stored")


def grow_session(request: HttpRequest) -> HttpResponse:
    request.session["blob"] = "x" * conf.MAX_SIZE
    return HttpResponse("grown")


def add_to_cart_while_revoked(request: HttpRequest) -> HttpResponse:
    cart = request.session.get("cart", [])  # this request loads its session ...
    session_id = request.session.session_id  # type: ignore[attr-defined]
    revoke_session(session_id)  # ... and meanwhile an administrator revokes it
    request.session["cart"] = [*cart, "book"]
    return HttpResponse("added")


def end_now(request: HttpRequest) -> HttpResponse:
    request.session.set_expiry(-10)
    return HttpResponse("ended")


urlpatterns = [
    path("cart/", read_cart),
    path("end-now/", end_now),
    path("password/", store_password),
    path("grow/", grow_session),
    path("add-while-revoked/", add_to_cart_while_revoked),
]

on_this_module_urls = pytest.mark.urls("tests.test_engines")


# -- Django's session behaviours --------------------------------------------------------


def test_new_session_has_no_key_and_stores_nothing(
    store_class: StoreClass, storage: Storage
) -> None:
    store = store_class()
    store["cart"] = ["book"]

    assert store.session_key is None
    assert store.session_id is None
    assert storage.session_ids() == set()


def test_save_creates_a_key_stored_only_as_its_digest(
    store_class: StoreClass, storage: Storage
) -> None:
    store = saved(store_class, {"cart": ["book"]})

    assert store.session_key is not None
    assert len(store.session_key) == 32
    assert store.session_id == session_id_for_key(store.session_key)
    assert storage.session_ids() == {session_id_for_key(store.session_key)}


def test_a_new_store_object_loads_the_saved_data(store_class: StoreClass) -> None:
    key = saved(store_class, {"cart": ["book"], "count": 2}).session_key

    store = loaded(store_class, key)

    assert dict(store.items()) == {"cart": ["book"], "count": 2}
    assert store.session_key == key


def test_a_modification_is_saved_under_the_same_key(store_class: StoreClass) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    store = loaded(store_class, key)

    store["cart"] = [*store["cart"], "pen"]
    store.save()

    assert store.session_key == key
    assert loaded(store_class, key)["cart"] == ["book", "pen"]


def test_cycle_key_keeps_the_data_under_a_new_key(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    store = saved(store_class, {"cart": ["book"]}, user=user)
    old_key, old_id = store.session_key, store.session_id
    with capture(session_rotated) as rotations:
        store.cycle_key()

    assert store.session_key not in {None, old_key}
    new_key = store.session_key
    assert loaded(store_class, new_key)["cart"] == ["book"]
    stale = loaded(store_class, old_key)
    assert dict(stale.items()) == {}
    assert stale.session_key is None
    assert storage.session_ids() == {store.session_id}
    assert storage.user_index(user_id(user)) == {store.session_id}
    assert [(r["session_id"], r["previous_session_id"], r["user_id"]) for r in rotations] == [
        (store.session_id, old_id, user_id(user))
    ]


def test_flush_empties_the_session_and_deletes_it_from_storage(
    store_class: StoreClass, storage: Storage
) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    store = loaded(store_class, key)

    store.flush()

    assert dict(store.items()) == {}
    assert store.session_key is None
    assert storage.session_ids() == set()
    assert dict(loaded(store_class, key).items()) == {}


def test_exists(store_class: StoreClass) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    assert key is not None
    store = store_class()

    assert store.exists(key)
    assert not store.exists("0" * 32)
    store.delete(key)
    assert not store.exists(key)


def test_delete_the_current_session(store_class: StoreClass, storage: Storage) -> None:
    other = saved(store_class, {"cart": ["pen"]})
    store = saved(store_class, {"cart": ["book"]})
    key = store.session_key

    store.delete()

    assert dict(loaded(store_class, key).items()) == {}
    assert storage.session_ids() == {other.session_id}


def test_delete_by_key(store_class: StoreClass, storage: Storage) -> None:
    other = saved(store_class, {"cart": ["pen"]})
    key = saved(store_class, {"cart": ["book"]}).session_key

    store_class().delete(key)

    assert dict(loaded(store_class, key).items()) == {}
    assert storage.session_ids() == {other.session_id}


EXPIRY_VALUES = {
    "seconds": 600,
    "datetime": START + timedelta(seconds=600),
    "timedelta": timedelta(seconds=600),
}


@pytest.mark.parametrize("value", EXPIRY_VALUES.values(), ids=EXPIRY_VALUES.keys())
def test_set_expiry(
    store_class: StoreClass, frozen: time_machine.TimeMachineFixture, value: Any
) -> None:
    store = store_class()
    store["cart"] = ["book"]
    store.set_expiry(value)
    store.save()

    assert store.get_expiry_age() == 600
    assert store.get_expiry_date() == START + timedelta(seconds=600)
    assert not store.get_expire_at_browser_close()
    frozen.shift(599)
    assert loaded(store_class, store.session_key)["cart"] == ["book"]
    frozen.shift(1)
    assert dict(loaded(store_class, store.session_key).items()) == {}


def test_set_expiry_zero_ends_at_browser_close_and_keeps_the_default_age_in_storage(
    store_class: StoreClass, frozen: time_machine.TimeMachineFixture
) -> None:
    store = store_class()
    store["cart"] = ["book"]
    store.set_expiry(0)
    store.save()

    assert store.get_expire_at_browser_close()
    assert store.get_expiry_age() == TWO_WEEKS
    frozen.shift(TWO_WEEKS - 1)
    assert loaded(store_class, store.session_key)["cart"] == ["book"]
    frozen.shift(1)
    assert dict(loaded(store_class, store.session_key).items()) == {}


def test_set_expiry_none_restores_the_default(store_class: StoreClass) -> None:
    store = store_class()
    store.set_expiry(60)
    store.set_expiry(None)
    store.save()

    assert "_session_expiry" not in loaded(store_class, store.session_key)
    assert store.get_expiry_age() == TWO_WEEKS


PAST_EXPIRIES: dict[str, Any] = {
    "negative seconds": -10,
    "negative timedelta": timedelta(seconds=-10),
    "past datetime": START - timedelta(seconds=10),
    "now": START,
}


@pytest.mark.parametrize("value", PAST_EXPIRIES.values(), ids=PAST_EXPIRIES.keys())
def test_an_expiry_in_the_past_ends_the_session_at_once(
    store_class: StoreClass, storage: Storage, frozen: time_machine.TimeMachineFixture, value: Any
) -> None:
    store = saved(store_class, {"cart": ["book"]})
    key = store.session_key

    store.set_expiry(value)
    store.save()

    assert storage.session_ids() == set()  # removed, not kept for the cleanup
    assert dict(loaded(store_class, key).items()) == {}
    assert loaded(store_class, key).session_key is None


def test_a_new_session_saved_with_a_past_expiry_is_never_stored(
    store_class: StoreClass, storage: Storage, frozen: time_machine.TimeMachineFixture
) -> None:
    store = store_class()
    store["cart"] = ["book"]
    store.set_expiry(-10)
    store.save()
    store.save()  # saving again (as Django's SessionMiddleware may) is not an error

    assert storage.session_ids() == set()
    assert dict(loaded(store_class, store.session_key).items()) == {}


@on_this_module_urls
def test_an_expiry_in_the_past_deletes_the_cookie(store_class: StoreClass) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    assert key is not None
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = key

    response = client.get("/end-now/")

    assert response.status_code == 200
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.value == "" or int(cookie["max-age"]) <= 0
    assert client.get("/cart/").content == b""


def test_a_session_past_its_expiry_does_not_load(
    store_class: StoreClass, frozen: time_machine.TimeMachineFixture
) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key

    frozen.shift(TWO_WEEKS - 1)
    assert loaded(store_class, key)["cart"] == ["book"]
    frozen.shift(1)
    store = loaded(store_class, key)

    assert dict(store.items()) == {}
    assert store.session_key is None


@pytest.mark.parametrize("engine", ["db"], indirect=True)
def test_db_clear_expired_deletes_expired_rows(
    store_class: StoreClass, storage: Storage, frozen: time_machine.TimeMachineFixture
) -> None:
    live = saved(store_class, {"cart": ["book"]})
    expiring = store_class()
    expiring.set_expiry(60)
    expiring.save()
    assert storage.session_ids() == {live.session_id, expiring.session_id}

    frozen.shift(3600)
    store_class.clear_expired()

    assert storage.session_ids() == {live.session_id}


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_redis_clear_expired_prunes_expired_index_entries(
    store_class: StoreClass,
    storage: Storage,
    frozen: time_machine.TimeMachineFixture,
    user: AbstractBaseUser,
) -> None:
    live = saved(store_class, user=user)
    expiring = store_class()
    expiring[USER_ID_KEY] = user_id(user)
    expiring.set_expiry(60)
    expiring.save()
    assert storage.user_index(user_id(user)) == {live.session_id, expiring.session_id}

    frozen.shift(120)
    store_class.clear_expired()

    assert storage.user_index(user_id(user)) == {live.session_id}


def test_dict_methods(store_class: StoreClass) -> None:
    store = store_class()
    assert store.setdefault("cart", ["book"]) == ["book"]
    assert store.setdefault("cart", ["pen"]) == ["book"]
    store.update({"count": 1, "theme": "dark"})
    assert store.pop("theme") == "dark"
    assert store.pop("missing", "default") == "default"
    del store["count"]
    store["step"] = 3
    store.save()

    reloaded = loaded(store_class, store.session_key)

    assert sorted(reloaded.keys()) == ["cart", "step"]
    assert sorted(map(str, reloaded.values())) == ["3", "['book']"]
    assert dict(reloaded.items()) == {"cart": ["book"], "step": 3}
    assert "cart" in reloaded
    assert reloaded.has_key("step")
    assert reloaded.get("missing", "fallback") == "fallback"
    reloaded.clear()
    reloaded.save()
    assert dict(loaded(store_class, store.session_key).items()) == {}


def test_test_cookie_helpers(store_class: StoreClass) -> None:
    store = store_class()
    store.set_test_cookie()
    store.save()

    reloaded = loaded(store_class, store.session_key)
    assert reloaded.test_cookie_worked()
    reloaded.delete_test_cookie()
    reloaded.save()

    assert not loaded(store_class, store.session_key).test_cookie_worked()


def test_a_new_store_has_what_sessionbase_init_gives(store_class: StoreClass) -> None:
    # Our __init__ does SessionBase.__init__'s work itself (see SecureSessionBase): this
    # fails if a Django release gives SessionBase.__init__ more to do.
    plain = SessionBase("a" * 32)
    ours = store_class("a" * 32)

    assert set(vars(plain)) - {"serializer"} == set(vars(ours))
    assert (ours.session_key, ours.accessed, ours.modified) == ("a" * 32, False, False)


def test_encode_and_decode_use_json_whatever_the_serializer_setting(
    store_class: StoreClass,
) -> None:
    store = store_class()
    # Not importable: a store that resolved the setting would fail here.
    with override_settings(SESSION_SERIALIZER="tests.no_such_module.PickleSerializer"):
        encoded = store_class().encode({"cart": ["book"]})

    assert store.decode(encoded) == {"cart": ["book"]}
    assert store.serializer is JSONSerializer


# -- the async API ----------------------------------------------------------------------


async def aloaded(store_class: StoreClass, key: str | None) -> SecureSessionBase:
    store = store_class(key)
    await store.aget("anything")
    return store


@async_test
async def test_async_create_save_load_exists_delete(store_class: StoreClass) -> None:
    store = store_class()
    await store.acreate()
    key = store.session_key
    assert key is not None
    await store.aset("cart", ["book"])
    await store.asave()

    assert await store_class().aexists(key)
    assert await (await aloaded(store_class, key)).aget("cart") == ["book"]
    await store_class().adelete(key)
    assert not await store_class().aexists(key)
    gone = await aloaded(store_class, key)
    assert dict(await gone.aitems()) == {}
    assert gone.session_key is None


@async_test
async def test_async_asave_creates_a_key(store_class: StoreClass) -> None:
    store = store_class()
    await store.aset("cart", ["book"])
    await store.asave()

    assert store.session_key is not None
    assert await (await aloaded(store_class, store.session_key)).aget("cart") == ["book"]


@async_test
async def test_async_cycle_key(store_class: StoreClass, user: AbstractBaseUser) -> None:
    store = store_class()
    await store.aupdate({"cart": ["book"], USER_ID_KEY: user_id(user)})
    await store.asave()
    old_key = store.session_key

    await store.acycle_key()

    assert store.session_key not in {None, old_key}
    assert await (await aloaded(store_class, store.session_key)).aget("cart") == ["book"]
    assert (await aloaded(store_class, old_key)).session_key is None
    infos = await sync_to_async(store_class.user_sessions)(user_id(user))
    assert [info.id for info in infos] == [store.session_id]


@async_test
async def test_async_flush(store_class: StoreClass) -> None:
    store = store_class()
    await store.aset("cart", ["book"])
    await store.asave()
    key = store.session_key

    await store.aflush()

    assert dict(await store.aitems()) == {}
    assert store.session_key is None
    assert (await aloaded(store_class, key)).session_key is None


@async_test
@pytest.mark.parametrize("value", PAST_EXPIRIES.values(), ids=PAST_EXPIRIES.keys())
async def test_async_an_expiry_in_the_past_ends_the_session_at_once(
    store_class: StoreClass, storage: Storage, frozen: time_machine.TimeMachineFixture, value: Any
) -> None:
    store = store_class()
    await store.aset("cart", ["book"])
    await store.asave()
    key = store.session_key

    await store.aset_expiry(value)
    await store.asave()

    assert await sync_to_async(storage.session_ids)() == set()
    assert (await aloaded(store_class, key)).session_key is None


@async_test
@pytest.mark.parametrize("value", EXPIRY_VALUES.values(), ids=EXPIRY_VALUES.keys())
async def test_async_set_expiry(
    store_class: StoreClass, frozen: time_machine.TimeMachineFixture, value: Any
) -> None:
    store = store_class()
    await store.aset_expiry(value)
    await store.aset("cart", ["book"])
    await store.asave()

    assert await store.aget_expiry_age() == 600
    assert await store.aget_expiry_date() == START + timedelta(seconds=600)
    assert not await store.aget_expire_at_browser_close()
    frozen.shift(599)
    assert await (await aloaded(store_class, store.session_key)).aget("cart") == ["book"]
    frozen.shift(1)
    assert (await aloaded(store_class, store.session_key)).session_key is None


@async_test
async def test_async_clear_expired(
    store_class: StoreClass,
    engine: str,
    frozen: time_machine.TimeMachineFixture,
    user: AbstractBaseUser,
    storage: Storage,
) -> None:
    live = store_class()
    await live.aset(USER_ID_KEY, user_id(user))
    await live.asave()
    expiring = store_class()
    await expiring.aset(USER_ID_KEY, user_id(user))
    await expiring.aset_expiry(60)
    await expiring.asave()

    frozen.shift(600)  # past the expiring one's end, within the live one's idle timeout
    await store_class.aclear_expired()

    if engine == "db":
        ids = [session.pk async for session in SecureSession.objects.all()]
    else:
        ids = list(storage.user_index(user_id(user)))
    assert ids == [live.session_id]


@async_test
async def test_async_dict_methods_and_test_cookie(store_class: StoreClass) -> None:
    store = store_class()
    assert await store.asetdefault("cart", ["book"]) == ["book"]
    assert await store.asetdefault("cart", ["pen"]) == ["book"]
    await store.aupdate({"count": 1, "theme": "dark"})
    assert await store.apop("theme") == "dark"
    await store.aset_test_cookie()
    await store.asave()

    reloaded = await aloaded(store_class, store.session_key)
    assert sorted(await reloaded.akeys()) == ["cart", "count", "testcookie"]
    assert await reloaded.ahas_key("count")
    assert 1 in await reloaded.avalues()
    assert await reloaded.atest_cookie_worked()
    await reloaded.adelete_test_cookie()
    await reloaded.asave()
    assert not await (await aloaded(store_class, store.session_key)).atest_cookie_worked()


# -- metadata -----------------------------------------------------------------------------

START_EPOCH = int(START.timestamp())


def test_saving_a_logged_in_session_records_its_meta(
    store_class: StoreClass, user: AbstractBaseUser, frozen: time_machine.TimeMachineFixture
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key

    meta = loaded(store_class, key).meta

    assert meta is not None
    assert meta.user_id == user_id(user)
    assert meta.created == meta.last_activity == meta.last_auth == START_EPOCH
    assert meta.absolute_expiry == START_EPOCH + 43200


@override_settings(SECURE_SESSIONS_ABSOLUTE_TIMEOUT=None)
def test_no_absolute_expiry_when_the_setting_is_none(
    store_class: StoreClass, user: AbstractBaseUser, frozen: time_machine.TimeMachineFixture
) -> None:
    key = saved(store_class, user=user).session_key

    meta = loaded(store_class, key).meta

    assert meta is not None
    assert meta.last_auth == START_EPOCH
    assert meta.absolute_expiry is None


def test_an_anonymous_session_has_no_authentication_times(store_class: StoreClass) -> None:
    meta = loaded(store_class, saved(store_class, {"cart": []}).session_key).meta

    assert meta is not None
    assert (meta.user_id, meta.last_auth, meta.absolute_expiry) == (None, None, None)


USER_AGENTS = {
    "chrome-on-windows": (CHROME_ON_WINDOWS, ("Chrome", "Windows", "Other")),
    "safari-on-iphone": (SAFARI_ON_IPHONE, ("Mobile Safari", "iOS", "iPhone")),
}


@pytest.mark.parametrize(("user_agent", "summary"), USER_AGENTS.values(), ids=USER_AGENTS.keys())
def test_a_login_stamps_the_time_and_binds_the_client(
    store_class: StoreClass,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    user_agent: str,
    summary: tuple[str, str, str],
) -> None:
    key = saved(store_class, user=user).session_key
    frozen.shift(60)
    store = loaded(store_class, key)

    # What the user_logged_in handler does; the data itself doesn't change.
    store.record_login()
    store.bind_client("198.51.100.7", user_agent)
    store.save()

    meta = loaded(store_class, key).meta
    assert meta is not None
    assert meta.created == meta.last_auth == START_EPOCH + 60
    assert meta.absolute_expiry == START_EPOCH + 60 + 43200
    assert meta.ip == "198.51.100.7"
    assert meta.ua_digest == user_agent_digest(user_agent) != user_agent
    assert meta.user_agent == user_agent
    assert (meta.browser, meta.os, meta.device) == summary


def test_a_long_user_agent_is_stored_truncated(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    user_agent = CHROME_ON_WINDOWS + " padding" * 1000
    store = saved(store_class, user=user)

    store.bind_client("198.51.100.7", user_agent)
    store.save()

    meta = loaded(store_class, store.session_key).meta
    assert meta is not None
    assert meta.user_agent == user_agent[:512]
    assert meta.ua_digest == user_agent_digest(user_agent)
    assert meta.browser == "Chrome"


@override_settings(SECURE_SESSIONS_IDLE_TIMEOUT=None, SECURE_SESSIONS_ABSOLUTE_TIMEOUT=3600)
def test_expiry_never_goes_past_the_absolute_expiry(
    store_class: StoreClass, user: AbstractBaseUser, frozen: time_machine.TimeMachineFixture
) -> None:
    store = saved(store_class, user=user)
    assert store.get_expiry_age() == 3600
    assert store.get_expiry_date() == START + timedelta(seconds=3600)

    frozen.shift(3000)
    active = loaded(store_class, store.session_key)
    active["cart"] = ["book"]
    active.save()  # activity does not push the absolute expiry back

    assert active.get_expiry_age() == 600
    assert active.get_expiry_date() == START + timedelta(seconds=3600)
    frozen.shift(599)
    assert loaded(store_class, store.session_key)["cart"] == ["book"]
    frozen.shift(1)
    assert loaded(store_class, store.session_key).session_key is None


def test_a_login_through_a_request_records_the_client(
    client: Client,
    store_class: StoreClass,
    make_user: Callable[..., AbstractBaseUser],
    frozen: time_machine.TimeMachineFixture,
) -> None:
    staff = make_user(is_staff=True)

    admin_login(client, staff, REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT=SAFARI_ON_IPHONE)

    meta = loaded(store_class, session_key_of(client)).meta
    assert meta is not None
    assert meta.user_id == user_id(staff)
    assert meta.last_auth == START_EPOCH
    assert meta.ip == "203.0.113.9"
    assert meta.user_agent == SAFARI_ON_IPHONE
    assert (meta.browser, meta.os, meta.device) == ("Mobile Safari", "iOS", "iPhone")


@override_settings(SECURE_SESSIONS_IDLE_TIMEOUT=None, SECURE_SESSIONS_ABSOLUTE_TIMEOUT=3600)
def test_the_cookie_never_outlives_the_absolute_expiry(
    client: Client,
    store_class: StoreClass,
    make_user: Callable[..., AbstractBaseUser],
    frozen: time_machine.TimeMachineFixture,
) -> None:
    response = admin_login(client, make_user(is_staff=True), HTTP_USER_AGENT=CHROME_ON_WINDOWS)

    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 3600


# -- concurrency ----------------------------------------------------------------------

ENDINGS: dict[str, Callable[[StoreClass, str, AbstractBaseUser], object]] = {
    "delete": lambda store_class, key, user: store_class().delete(key),
    "flush": lambda store_class, key, user: loaded(store_class, key).flush(),
    "revoke_session": lambda store_class, key, user: revoke_session(session_id_for_key(key)),
    "revoke_user_sessions": lambda store_class, key, user: revoke_user_sessions(user),
}


def save_changed(store: SecureSessionBase) -> None:
    store["cart"] = ["book", "pen"]
    store.save()


WRITES: dict[str, Callable[[SecureSessionBase], None]] = {
    "save-changed": save_changed,
    "save-unchanged": lambda store: store.save(),
    "touch": lambda store: store.touch(),
}


@pytest.mark.parametrize("end", ENDINGS.values(), ids=ENDINGS.keys())
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_session_ended_meanwhile_is_never_brought_back(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    end: Callable[[StoreClass, str, AbstractBaseUser], object],
    write: Callable[[SecureSessionBase], None],
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key
    assert key is not None
    request_a = loaded(store_class, key)

    end(store_class, key, user)  # a concurrent request, or an administrator
    with pytest.raises(UpdateError):
        write(request_a)

    assert storage.session_ids() == set()
    assert dict(loaded(store_class, key).items()) == {}


@dataclass(frozen=True)
class Expiry:
    """A session that ends ``after`` seconds: its data, set_expiry() and settings."""

    data: dict[str, Any]
    expiry: int | None
    timeouts: dict[str, Any]
    after: int


EXPIRIES = {
    "cookie-age": Expiry({}, 60, {}, 60),
    "idle-timeout": Expiry({USER_ID_KEY: "42"}, None, {}, 1800),
    "absolute-timeout": Expiry(
        {USER_ID_KEY: "42"},
        None,
        {"SECURE_SESSIONS_IDLE_TIMEOUT": None, "SECURE_SESSIONS_ABSOLUTE_TIMEOUT": 3600},
        3600,
    ),
}


@pytest.mark.parametrize("case", EXPIRIES.values(), ids=EXPIRIES.keys())
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_session_that_expired_meanwhile_is_never_brought_back(
    store_class: StoreClass,
    storage: Storage,
    frozen: time_machine.TimeMachineFixture,
    case: Expiry,
    write: Callable[[SecureSessionBase], None],
) -> None:
    with override_settings(**case.timeouts):
        store = store_class()
        store.update({"cart": ["book"], **case.data})
        store.set_expiry(case.expiry)
        store.save()
        frozen.shift(case.after - 1)
        request_a = loaded(store_class, store.session_key)
        assert request_a["cart"] == ["book"]

        frozen.shift(1)
        before = storage.dump()
        with pytest.raises(UpdateError):
            write(request_a)

        assert storage.dump() == before
        assert loaded(store_class, store.session_key).session_key is None


@on_this_module_urls
def test_a_request_whose_session_is_revoked_meanwhile_gets_a_400(
    client: Client, store_class: StoreClass, storage: Storage
) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    assert key is not None
    client.cookies[settings.SESSION_COOKIE_NAME] = key

    response = client.get("/add-while-revoked/")

    # SessionMiddleware turned the engine's UpdateError into SessionInterrupted.
    assert response.status_code == 400
    assert storage.session_ids() == set()
    assert dict(loaded(store_class, key).items()) == {}


redis_only = pytest.mark.parametrize("engine", ["redis"], indirect=True)


REFRESHES: dict[str, Callable[[SecureSessionBase], None]] = {
    "touch": lambda store: store.touch(),
    "save-unchanged": lambda store: store.save(),
}


def activity_after_a_race(engine: str) -> int:
    """The last activity kept when request B refreshes its activity at +180 s after
    request A saved data at +120 s, both having loaded the session at 0 s: the db engine
    writes B's activity columns alone; the redis engine, whose record is signed whole,
    leaves B's refresh out, as the record is no longer the one B loaded, and keeps the
    activity A recorded with its save."""
    return START_EPOCH + (180 if engine == "db" else 120)


@pytest.mark.parametrize("refresh", REFRESHES.values(), ids=REFRESHES.keys())
def test_refreshing_activity_keeps_data_saved_meanwhile(
    engine: str,
    store_class: StoreClass,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    refresh: Callable[[SecureSessionBase], None],
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key
    request_a, request_b = loaded(store_class, key), loaded(store_class, key)

    frozen.shift(120)
    request_a["cart"] = ["book", "pen"]
    request_a.save()
    frozen.shift(60)
    refresh(request_b)  # B changed nothing: it only records its activity

    after = loaded(store_class, key)
    assert after["cart"] == ["book", "pen"]
    assert after.meta is not None
    assert after.meta.last_activity == activity_after_a_race(engine)


def test_a_binding_never_undoes_data_saved_meanwhile(
    engine: str, store_class: StoreClass, user: AbstractBaseUser
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key
    request_a, request_b = loaded(store_class, key), loaded(store_class, key)

    request_a["cart"] = ["book", "pen"]
    request_a.save()
    request_b.bind_client("203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
    request_b.save()  # B changed no data: only its meta

    after = loaded(store_class, key)
    assert after["cart"] == ["book", "pen"]
    assert after.meta is not None
    # The db engine writes B's meta columns alone. The redis engine, whose record is
    # signed whole and is no longer the one B loaded, merges B's binding onto A's save.
    assert after.is_bound
    assert after.meta.ip == "203.0.113.7"


@redis_only
def test_concurrent_refreshes_write_once(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
) -> None:
    store = saved(store_class, {"cart": ["book"]}, user=user)
    assert store.session_id is not None
    requests = [loaded(store_class, store.session_key) for _ in range(3)]
    frozen.shift(120)
    requests[0].touch()
    written = storage.signed(store.session_id)

    for request in requests[1:]:
        request.touch()  # no error, and the record stays as the first refresh wrote it

    assert storage.signed(store.session_id) == written
    after = loaded(store_class, store.session_key)
    assert after.meta is not None
    assert after.meta.last_activity == START_EPOCH + 120


@async_test
@pytest.mark.parametrize("refresh", ["atouch", "asave"])
async def test_async_refreshing_activity_keeps_data_saved_meanwhile(
    engine: str,
    store_class: StoreClass,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    refresh: str,
) -> None:
    store = store_class()
    await store.aupdate({"cart": ["book"], USER_ID_KEY: user_id(user)})
    await store.asave()
    request_a = await aloaded(store_class, store.session_key)
    request_b = await aloaded(store_class, store.session_key)

    frozen.shift(120)
    await request_a.aset("cart", ["book", "pen"])
    await request_a.asave()
    frozen.shift(60)
    await getattr(request_b, refresh)()

    after = await aloaded(store_class, store.session_key)
    assert await after.aget("cart") == ["book", "pen"]
    assert after.meta is not None
    assert after.meta.last_activity == activity_after_a_race(engine)


@async_test
async def test_async_a_revoked_session_is_never_brought_back(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    store = store_class()
    await store.aupdate({"cart": ["book"], USER_ID_KEY: user_id(user)})
    await store.asave()
    request_a = await aloaded(store_class, store.session_key)

    await store_class().adelete(store.session_key)
    await request_a.aset("cart", ["book", "pen"])
    with pytest.raises(UpdateError):
        await request_a.asave()
    with pytest.raises(UpdateError):
        await request_a.atouch()

    assert not await store_class().aexists(store.session_key or "")


# -- concurrent saves of one session: their changes merge ------------------------------


def two_requests(
    store_class: StoreClass, user: AbstractBaseUser, data: dict[str, Any]
) -> tuple[str, SecureSessionBase, SecureSessionBase]:
    """A signed-in session holding ``data``, and two requests (two tabs) that loaded it."""
    key = saved(store_class, data, user=user).session_key
    assert key is not None
    return key, loaded(store_class, key), loaded(store_class, key)


def test_concurrent_saves_of_different_keys_keep_both(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"]})

    tab_a["theme"] = "dark"
    tab_a.save()
    tab_b["draft"] = "Dear Ada"
    tab_b.save()  # B loaded before A saved: its change is merged onto A's save

    signed_in = {USER_ID_KEY: user_id(user), "cart": ["book"], "theme": "dark"}
    assert dict(loaded(store_class, key).items()) == {**signed_in, "draft": "Dear Ada"}
    # B's session now holds what it saved, so its next save keeps A's key too.
    tab_b["draft"] = "Dear Ada, thank you"
    tab_b.save()
    assert dict(loaded(store_class, key).items()) == {**signed_in, "draft": "Dear Ada, thank you"}


def test_concurrent_saves_of_one_key_keep_the_last(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"], "theme": "light"})

    tab_a["cart"] = ["book", "pen"]
    tab_a["theme"] = "dark"
    tab_a.save()
    tab_b["cart"] = ["lamp"]
    tab_b.save()

    after = loaded(store_class, key)
    assert after["cart"] == ["lamp"]  # both wrote it: the last save wins
    assert after["theme"] == "dark"  # only A wrote it


def test_a_change_is_told_apart_as_json_not_by_python_equality(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    # 1 == 1.0 == True in Python: compared so, B's writes would look like no change.
    key, tab_a, tab_b = two_requests(store_class, user, {"agreed": 1, "ratio": 1})

    tab_a["agreed"], tab_a["ratio"] = 2, 2
    tab_a.save()
    tab_b["agreed"], tab_b["ratio"] = True, 1.0
    tab_b.save()

    after = loaded(store_class, key)
    assert (after["agreed"], after["ratio"]) == (True, 1.0)
    assert type(after["ratio"]) is float


def test_concurrent_changes_made_in_place_are_merged(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    data = {"cart": ["book"], "prefs": {"theme": "light", "lang": "en"}}
    key, tab_a, tab_b = two_requests(store_class, user, data)

    tab_a["cart"].append("pen")  # changed in place, flagged as Django says to
    tab_a.modified = True
    tab_a.save()
    tab_b["prefs"]["theme"] = "dark"
    tab_b.modified = True
    tab_b.save()

    after = loaded(store_class, key)
    assert after["cart"] == ["book", "pen"]
    assert after["prefs"] == {"theme": "dark", "lang": "en"}


def test_a_key_deleted_by_one_request_stays_deleted_and_the_other_deletes_its_own(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    data = {"cart": ["book"], "coupon": "SPRING", "banner": "shown"}
    key, tab_a, tab_b = two_requests(store_class, user, data)

    del tab_a["coupon"]
    tab_a.save()
    tab_b["theme"] = "dark"  # B loaded the coupon and left it alone
    del tab_b["banner"]
    tab_b.save()

    after = dict(loaded(store_class, key).items())
    assert after == {USER_ID_KEY: user_id(user), "cart": ["book"], "theme": "dark"}


def test_a_binding_and_a_change_of_data_made_concurrently_are_both_kept(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"]})

    tab_a.bind_client("203.0.113.7", CHROME_ON_WINDOWS)
    tab_a.save()
    tab_b["cart"] = ["book", "pen"]
    tab_b.save()

    after = loaded(store_class, key)
    assert after["cart"] == ["book", "pen"]
    assert after.meta is not None
    assert (after.meta.ip, after.meta.ua_digest) == (
        "203.0.113.7",
        user_agent_digest(CHROME_ON_WINDOWS),
    )


@pytest.mark.parametrize("end", ENDINGS.values(), ids=ENDINGS.keys())
def test_a_save_that_meets_a_concurrent_save_of_a_session_ended_since_is_refused(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    end: Callable[[StoreClass, str, AbstractBaseUser], object],
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"]})
    tab_b["theme"] = "dark"
    tab_b.save()  # A's copy is now stale ...
    end(store_class, key, user)  # ... and then the session ends

    tab_a["draft"] = "Dear Ada"
    with pytest.raises(UpdateError):
        tab_a.save()

    assert storage.session_ids() == set()
    assert loaded(store_class, key).session_key is None


def test_fault_injection_a_session_revoked_between_a_conflict_and_its_retry_stays_revoked(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"]})
    tab_b["theme"] = "dark"
    tab_b.save()
    merge = SecureSessionBase._merge

    def revoked_meanwhile(
        store: SecureSessionBase, pending: PendingWrite, fresh: StoredRecord | None
    ) -> dict[str, Any]:
        # The fault: an administrator revokes the session while A merges its change.
        revoke_session(session_id_for_key(key))
        return merge(store, pending, fresh)

    monkeypatch.setattr(SecureSessionBase, "_merge", revoked_meanwhile)
    tab_a["draft"] = "Dear Ada"
    with pytest.raises(UpdateError):
        tab_a.save()

    assert storage.session_ids() == set()
    assert loaded(store_class, key).session_key is None


def test_a_session_that_changed_hands_meanwhile_gets_nothing_of_the_other_request(
    store_class: StoreClass, user: AbstractBaseUser, make_user: Callable[..., AbstractBaseUser]
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"]})
    other = make_user()
    tab_b[USER_ID_KEY] = user_id(other)  # without a key rotation: never Django's login
    tab_b.save()

    tab_a["draft"] = "Dear Ada"
    with pytest.raises(UpdateError):  # fail closed: the 400 of a session that ended
        tab_a.save()

    # Under tab B's key: the same one, but on Redis Cluster a save for another user moves
    # the session to a key of that user's slot (backends/routing.py).
    assert tab_b.session_key == key or getattr(settings, "SECURE_SESSIONS_REDIS_CLUSTER", False)
    after = loaded(store_class, tab_b.session_key)
    assert dict(after.items()) == {USER_ID_KEY: user_id(other), "cart": ["book"]}


def test_a_save_that_meets_a_record_whose_meta_and_data_name_different_users_is_refused(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    make_user: Callable[..., AbstractBaseUser],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, tab_a, _ = two_requests(store_class, user, {"cart": ["book"]})
    session_id = session_id_for_key(key)
    other = user_id(make_user())
    # Not something a save writes (a bug, a hand-edited row): the meta still names the
    # user, the data signs another one in.
    if storage.redis_client is None:
        forged = sign(session_id, "data", dumps({USER_ID_KEY: other, "cart": ["book"]}))
    else:
        meta, data = json.loads(text(storage.signed(session_id))[SIGNATURE_LENGTH:])
        forged = sign(session_id, "record", dumps([meta, {**data, USER_ID_KEY: other}]))
    storage.overwrite(session_id, forged)

    tab_a["draft"] = "Dear Ada"
    with pytest.raises(UpdateError):
        tab_a.save()

    assert text(storage.signed(session_id)) == forged  # nothing merged into it
    assert "django.security.SuspiciousSession" in {record.name for record in caplog.records}


def test_a_save_costs_one_round_trip_and_one_that_meets_a_concurrent_save_a_retry(
    engine: str, store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    key, tab_a, tab_b = two_requests(store_class, user, {"cart": ["book"]})

    tab_a["theme"] = "dark"
    with storage.round_trips() as first:
        tab_a.save()
    tab_b["draft"] = "Dear Ada"
    with storage.round_trips() as second:
        tab_b.save()

    if engine == "db":
        assert [query.split()[0] for query in first.queries] == ["UPDATE"]
        # The conflict, the row as it is now, the retry.
        assert [query.split()[0] for query in second.queries] == ["UPDATE", "SELECT", "UPDATE"]
    else:
        assert first.commands == {"evalsha": 1}
        # The conflict's answer carries the record stored now: the retry is the only
        # round trip more.
        assert second.commands == {"evalsha": 2}
    assert {"theme", "draft"} <= set(loaded(store_class, key).keys())


@async_test
async def test_fault_injection_async_a_save_beaten_every_time_gives_up(
    store_class: StoreClass, user: AbstractBaseUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = (await sync_to_async(saved)(store_class, {"cart": ["book"]}, user=user)).session_key
    assert key is not None
    tab = await aloaded(store_class, key)
    rivals = rival_saves_before_writes(monkeypatch, store_class, key)

    await tab.aset("draft", "Dear Ada")
    with pytest.raises(SessionStorageUnavailable):
        await tab.asave()

    assert len(rivals) == SAVE_ATTEMPTS
    assert await (await aloaded(store_class, key)).aget("draft") is None


@async_test
async def test_async_concurrent_saves_of_different_keys_keep_both(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    store = store_class()
    await store.aupdate({"cart": ["book"], "coupon": "SPRING", USER_ID_KEY: user_id(user)})
    await store.asave()
    tab_a = await aloaded(store_class, store.session_key)
    tab_b = await aloaded(store_class, store.session_key)

    await tab_a.aset("theme", "dark")
    await tab_a.asave()
    await tab_b.aset("draft", "Dear Ada")
    await tab_b.apop("coupon")
    await tab_b.asave()

    after = await aloaded(store_class, store.session_key)
    assert dict(await after.aitems()) == {
        USER_ID_KEY: user_id(user),
        "cart": ["book"],
        "theme": "dark",
        "draft": "Dear Ada",
    }


@async_test
async def test_async_a_save_that_meets_a_concurrent_save_of_a_revoked_session_is_refused(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    store = store_class()
    await store.aupdate({"cart": ["book"], USER_ID_KEY: user_id(user)})
    await store.asave()
    tab_a = await aloaded(store_class, store.session_key)
    tab_b = await aloaded(store_class, store.session_key)
    await tab_b.aset("theme", "dark")
    await tab_b.asave()
    await store_class().adelete(store.session_key)

    await tab_a.aset("draft", "Dear Ada")
    with pytest.raises(UpdateError):
        await tab_a.asave()

    assert not await store_class().aexists(store.session_key or "")


def test_every_meta_field_but_the_activity_is_merged_in_a_group() -> None:
    grouped = [name for group in META_GROUPS for name in group]
    assert len(grouped) == len(set(grouped))
    assert {*grouped, "last_activity", "expires"} == set(SessionMeta.FIELDS)


@on_this_module_urls
def test_a_request_that_changes_nothing_writes_nothing(
    client: Client, engine: str, store_class: StoreClass, storage: Storage
) -> None:
    key = saved(store_class, {"cart": ["book", "pen"]}).session_key
    assert key is not None
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    before = storage.dump()

    with storage.round_trips() as trips:
        response = client.get("/cart/")

    assert response.content == b"book,pen"
    assert storage.dump() == before
    if engine == "db":
        assert len(trips.queries) == 1
        assert trips.queries[0].startswith("SELECT")
    else:
        assert trips.queries == []  # no database access on the request path
        assert trips.commands == {"hget": 1}


# -- guards: forbidden keys and size ---------------------------------------------------------

FORBIDDEN_KEYS = [
    "password",
    "new_password",
    "PassWord",
    "credit_card",
    "Credit-Card",
    "card_number",
    "api_key",
    "client_secret",
    "cvv",
]
ASSIGNMENTS: dict[str, Callable[[SecureSessionBase, str], object]] = {
    "setitem": lambda store, key: store.__setitem__(key, "hunter2"),
    "update": lambda store, key: store.update({"cart": [], key: "hunter2"}),
    "setdefault": lambda store, key: store.setdefault(key, "hunter2"),
}


@pytest.mark.parametrize("key", FORBIDDEN_KEYS)
@pytest.mark.parametrize("assign", ASSIGNMENTS.values(), ids=ASSIGNMENTS.keys())
def test_a_forbidden_key_is_refused(
    store_class: StoreClass,
    storage: Storage,
    key: str,
    assign: Callable[[SecureSessionBase, str], object],
) -> None:
    store = store_class()

    with pytest.raises(SensitiveDataError) as refused:
        assign(store, key)

    assert "hunter2" not in str(refused.value)  # the secret isn't repeated in logs
    assert dict(store.items()) == {}
    store.save()
    assert "hunter2" not in storage.everything()


ASYNC_ASSIGNMENTS = {
    "aset": lambda store, key: store.aset(key, "hunter2"),
    "aupdate": lambda store, key: store.aupdate({"cart": [], key: "hunter2"}),
    "asetdefault": lambda store, key: store.asetdefault(key, "hunter2"),
}


@async_test
@pytest.mark.parametrize("assign", ASYNC_ASSIGNMENTS.values(), ids=ASYNC_ASSIGNMENTS.keys())
async def test_async_a_forbidden_key_is_refused(
    store_class: StoreClass, assign: Callable[[SecureSessionBase, str], Any]
) -> None:
    store = store_class()

    with pytest.raises(SensitiveDataError):
        await assign(store, "Password")

    assert dict(await store.aitems()) == {}


def test_djangos_own_session_keys_are_never_refused(store_class: StoreClass) -> None:
    for key in sorted(DJANGO_SESSION_KEYS):
        store = store_class()
        store[key] = "value"
        assert store[key] == "value"
    # Without the exemption, a default pattern would refuse this one.
    assert conf.FORBIDDEN_KEYS is not None
    assert conf.FORBIDDEN_KEYS.search(INTERNAL_RESET_SESSION_TOKEN)


def test_the_secret_keys_of_allauths_flows_are_stored_and_no_other(
    store_class: StoreClass,
) -> None:
    # django-allauth's password reset by link or code and authenticator app setup.
    for key in ("_password_reset_key", "account_password_reset_verification", "mfa.totp.secret"):
        store = store_class()
        store[key] = "value"
        store.save()
        assert store_class(store.session_key)[key] == "value"
    # Exempt by exact name: a key that only looks like one is still refused.
    for near_miss in ("mfa.totp.secret2", "my_password_reset_key", "MFA.TOTP.SECRET"):
        with pytest.raises(SensitiveDataError):
            store_class()[near_miss] = "value"


def test_django_session_keys_are_djangos_own_constants() -> None:
    assert {
        SESSION_KEY,
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        INTERNAL_RESET_SESSION_TOKEN,
        CSRF_SESSION_KEY,
        SessionStorage.session_key,
        SessionBase.TEST_COOKIE_NAME,
        "_session_expiry",  # SessionBase.set_expiry() has no constant for it
    } == DJANGO_SESSION_KEYS


@override_settings(SECURE_SESSIONS_FORBIDDEN_KEYS=[r"^nickname$"])
def test_the_forbidden_keys_setting_replaces_the_defaults(store_class: StoreClass) -> None:
    store = store_class()

    with pytest.raises(SensitiveDataError):
        store["NickName"] = "neo"
    store["password_hint"] = "the usual"

    assert dict(store.items()) == {"password_hint": "the usual"}


@override_settings(SECURE_SESSIONS_FORBIDDEN_KEYS=[])
def test_no_forbidden_keys(store_class: StoreClass) -> None:
    store = store_class()
    store["password"] = "allowed here"

    assert store["password"] == "allowed here"


EMPTY_BLOB = len('{"blob":""}')  # compact JSON, as stored


def test_a_session_of_exactly_max_size_is_saved(store_class: StoreClass) -> None:
    store = store_class()
    store["blob"] = "x" * (conf.MAX_SIZE - EMPTY_BLOB)

    store.save()

    assert loaded(store_class, store.session_key)["blob"] == store["blob"]


@override_settings(SECURE_SESSIONS_MAX_SIZE=100)
def test_the_max_size_setting_is_exact(store_class: StoreClass, storage: Storage) -> None:
    store = store_class()
    store["blob"] = "x" * (100 - EMPTY_BLOB)
    store.save()
    store["blob"] += "x"
    before = storage.dump()

    with pytest.raises(SessionTooLarge):
        store.save()

    assert storage.dump() == before


def test_a_new_session_one_byte_too_large_is_refused_and_nothing_is_stored(
    store_class: StoreClass, storage: Storage
) -> None:
    store = store_class()
    store["blob"] = "x" * (conf.MAX_SIZE - EMPTY_BLOB + 1)

    with pytest.raises(SessionTooLarge):
        store.save()

    assert storage.session_ids() == set()


def test_growing_a_session_too_large_keeps_what_was_stored(
    store_class: StoreClass, storage: Storage
) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    store = loaded(store_class, key)
    before = storage.dump()
    store["blob"] = "é" * (conf.MAX_SIZE // 6)  # 6 bytes each, as JSON escapes

    with pytest.raises(SessionTooLarge):
        store.save()

    assert storage.dump() == before
    assert dict(loaded(store_class, key).items()) == {"cart": ["book"]}


@pytest.mark.parametrize("exception", [SensitiveDataError, SessionTooLarge])
def test_the_guards_are_suspicious_operations(exception: type[Exception]) -> None:
    assert issubclass(exception, SuspiciousOperation)


GUARDED_VIEWS = {
    "forbidden-key": ("/password/", "django.security.SensitiveDataError"),
    "too-large": ("/grow/", "django.security.SessionTooLarge"),
}


@on_this_module_urls
@pytest.mark.parametrize(("url", "logger"), GUARDED_VIEWS.values(), ids=GUARDED_VIEWS.keys())
def test_a_view_tripping_a_guard_answers_400(
    client: Client, storage: Storage, caplog: pytest.LogCaptureFixture, url: str, logger: str
) -> None:
    response = client.get(url)

    assert response.status_code == 400
    assert storage.session_ids() == set()
    assert logger in {record.name for record in caplog.records}


# -- the redis engine -------------------------------------------------------------------


def caches_with(*, options: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """The test CACHES with the default cache's settings changed."""
    default: dict[str, Any] = settings.CACHES["default"]
    return {"default": {**default, **changes, "OPTIONS": {**default["OPTIONS"], **(options or {})}}}


def closed_port() -> int:
    """A local port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@redis_only
def test_redis_stores_json_even_with_djangos_redis_pickle_serializer(
    store_class: StoreClass, storage: Storage, tmp_path: Path
) -> None:
    pickle_serializer = {"SERIALIZER": "django_redis.serializers.pickle.PickleSerializer"}
    with override_settings(CACHES=caches_with(options=pickle_serializer)):
        store = saved(store_class, {"cart": ["book"]})
        assert store.session_id is not None
        raw = storage.signed(store.session_id)
        assert isinstance(raw, bytes)
        # A signature, then plain JSON that any client can read: [meta, data].
        assert json.loads(raw[SIGNATURE_LENGTH:])[1] == {"cart": ["book"]}
        assert loaded(store_class, store.session_key)["cart"] == ["book"]

        marker = tmp_path / "unpickled"
        storage.overwrite(store.session_id, pickle.dumps(Exploit(marker)))
        assert loaded(store_class, store.session_key).session_key is None
        assert not marker.exists()


@redis_only
def test_redis_honours_the_cache_key_prefix(
    store_class: StoreClass, redis_client: redis.Redis, user: AbstractBaseUser
) -> None:
    with override_settings(CACHES=caches_with(KEY_PREFIX="tenant-a")):
        store = saved(store_class, {"cart": ["book"]}, user=user)
        names = {text(name) for name in redis_client.scan_iter()}

        assert store.session_id is not None
        assert names == {
            f"tenant-a:{redis_session_name(store.session_id)}",
            f"tenant-a:{redis_index_names(user_id(user))[0]}",
        }
        assert loaded(store_class, store.session_key)["cart"] == ["book"]
        assert revoke_user_sessions(user) == 1
        assert {text(name) for name in redis_client.scan_iter()} == set()


@redis_only
def test_redis_load_is_one_hget(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key

    with storage.round_trips() as trips:
        store = loaded(store_class, key)
        assert store["cart"] == ["book"]

    assert trips.commands == {"hget": 1}
    assert trips.queries == []


@redis_only
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda store: None, id="create"),
        pytest.param(lambda store: store.__setitem__("cart", ["pen"]), id="update"),
        pytest.param(lambda store: store.record_login(), id="login"),
    ],
)
def test_redis_save_with_its_index_is_one_round_trip(
    store_class: StoreClass,
    storage: Storage,
    user: AbstractBaseUser,
    change: Callable[[SecureSessionBase], None],
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key
    store = loaded(store_class, key)
    change(store)
    if store.session_key == key and not store.modified:
        store = store_class()  # "create": a new session, logged in
        store[USER_ID_KEY] = user_id(user)

    with storage.round_trips() as trips:
        store.save()

    assert trips.commands == {"evalsha": 1}
    assert store.session_id in storage.user_index(user_id(user))


@redis_only
def test_redis_touch_is_one_round_trip(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    store = loaded(store_class, saved(store_class, user=user).session_key)

    with storage.round_trips() as trips:
        store.touch()

    assert trips.commands == {"evalsha": 1}


@redis_only
def test_redis_down_fault_injection_load_is_empty_and_logged(
    store_class: StoreClass, caplog: pytest.LogCaptureFixture
) -> None:
    key = saved(store_class, {"cart": ["book"]}).session_key
    unreachable = caches_with(
        LOCATION=f"redis://127.0.0.1:{closed_port()}",
        options={"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    )

    with override_settings(CACHES=unreachable), caplog.at_level(logging.ERROR):
        store = loaded(store_class, key)
        assert dict(store.items()) == {}
        # Kept (so that SessionMiddleware keeps the cookie), but not written under.
        assert store.session_key == key
        store["cart"] = ["pen"]
        with pytest.raises(SessionStorageUnavailable):
            store.save()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["django_secure_sessions"]
    assert key is not None
    assert key not in errors[0].getMessage()
    # Nothing was lost: once Redis answers again, the session is there.
    assert loaded(store_class, key)["cart"] == ["book"]


@redis_only
@async_test
async def test_redis_down_fault_injection_async_load_is_empty_and_logged(
    store_class: StoreClass, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = caches_with(
        LOCATION=f"redis://127.0.0.1:{closed_port()}",
        options={"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    )

    with override_settings(CACHES=unreachable), caplog.at_level(logging.ERROR):
        store = store_class(UNKNOWN_KEY)
        assert await store.aget("cart") is None
        assert store.session_key == UNKNOWN_KEY
        await store.aset("cart", ["pen"])
        with pytest.raises(SessionStorageUnavailable):
            await store.asave()
        await aclose_connections()

    assert [r.name for r in caplog.records if r.levelno >= logging.ERROR] == [
        "django_secure_sessions"
    ]


# -- the db engine ---------------------------------------------------------------------

db_only = pytest.mark.parametrize("engine", ["db"], indirect=True)


@pytest.mark.django_db
def test_db_table_is_indexed_by_user_and_expiry() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, SecureSession._meta.db_table)

    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
    assert ("user_id", "expire_date") in indexed
    assert ("expire_date",) in indexed


@pytest.mark.django_db
def test_the_revoke_session_permission_exists_after_migrate() -> None:
    permission = Permission.objects.get(
        content_type__app_label="django_secure_sessions", codename="revoke_session"
    )

    assert permission.name == "Can revoke sessions"


@db_only
def test_db_deleting_a_user_deletes_their_sessions(
    store_class: StoreClass, storage: Storage, make_user: Callable[..., AbstractBaseUser]
) -> None:
    leaving, staying = make_user(), make_user()
    saved(store_class, user=leaving)
    saved(store_class, user=leaving)
    kept = saved(store_class, user=staying)

    leaving.delete()

    assert storage.session_ids() == {kept.session_id}


@db_only
def test_db_load_and_update_are_one_query_each(
    store_class: StoreClass, storage: Storage, user: AbstractBaseUser
) -> None:
    key = saved(store_class, {"cart": ["book"]}, user=user).session_key

    with storage.round_trips() as load:
        store = loaded(store_class, key)
    store["cart"] = ["pen"]
    with storage.round_trips() as update:
        store.save()

    assert [q.split()[0] for q in load.queries] == ["SELECT"]
    assert [q.split()[0] for q in update.queries] == ["UPDATE"]


LOCMEM_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}


@redis_only
@pytest.mark.parametrize("alias", ["sessions", "missing"])
def test_redis_a_cache_alias_that_isnt_django_redis_is_a_clear_error_at_first_use(
    store_class: StoreClass, settings: SettingsWrapper, alias: str
) -> None:
    # The system checks (E006) say the same; this is for a project that skips them.
    settings.CACHES = LOCMEM_CACHES
    settings.SESSION_CACHE_ALIAS = alias
    store = store_class()
    store["cart"] = ["book"]

    with pytest.raises(ImproperlyConfigured, match=f"SESSION_CACHE_ALIAS \\({alias!r}\\)"):
        store.save()


@redis_only
@async_test
async def test_redis_async_a_cache_alias_that_isnt_django_redis_is_a_clear_error(
    store_class: StoreClass, settings: SettingsWrapper
) -> None:
    settings.CACHES = LOCMEM_CACHES
    settings.SESSION_CACHE_ALIAS = "sessions"
    store = store_class()
    await store.aset("cart", ["book"])

    with pytest.raises(ImproperlyConfigured, match=r"django_redis\.cache\.RedisCache"):
        await store.asave()


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "fallback-forced"])
def test_the_db_engine_counts_attempts_alike_with_or_without_returning(
    db: None,
    user: AbstractBaseUser,
    monkeypatch: pytest.MonkeyPatch,
    time_machine: time_machine.TimeMachineFixture,
    returning: bool,
) -> None:
    """PostgreSQL and SQLite 3.35+ count in one statement (RETURNING); any other database
    in a transaction under the row's lock. The fallback is forced here, on this database."""
    from django_secure_sessions.backends import db as db_engine

    if not returning:
        monkeypatch.setattr(db_engine, "_returns_rows", lambda connection: False)
    time_machine.move_to("2030-01-07 09:00:00+00:00", tick=False)
    store_class = db_engine.SessionStore
    store = store_class()
    store[SESSION_KEY] = str(user.pk)
    store.record_login()
    store.save()
    key = store.session_key
    assert key is not None

    assert [store_class(key).count_reauth_attempt() for _ in range(3)] == [1, 2, 3]
    assert store.confirm_reauth(5) == 3
    assert store.session_key not in {None, key}
    assert store_class(key).count_reauth_attempt() is None
    assert store.count_reauth_attempt() == 1
    user_id = str(user.pk)
    assert store_class.count_user_reauth_attempt(user_id, 60) == (1, 60)
    time_machine.shift(30)
    assert store_class.count_user_reauth_attempt(user_id, 60) == (2, 30)
    time_machine.shift(30)
    assert store_class.count_user_reauth_attempt(user_id, 60) == (1, 60)
    meta = store_class.remove_session(store.session_id or "")
    assert meta is not None
    assert meta.user_id == user_id
    assert store_class.remove_session(store.session_id or "") is None


def test_the_cleanup_removes_the_users_attempt_counts_whose_window_ended(
    db: None,
    user: AbstractBaseUser,
    make_user: Callable[..., AbstractBaseUser],
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    from django_secure_sessions.backends import db as db_engine
    from django_secure_sessions.models import UserReauthAttempts

    time_machine.move_to("2030-01-07 09:00:00+00:00", tick=False)
    window = conf.REAUTH_USER_FAILURE_WINDOW
    db_engine.SessionStore.count_user_reauth_attempt(str(user.pk), window)
    time_machine.shift(window - 1)
    recent = make_user()
    db_engine.SessionStore.count_user_reauth_attempt(str(recent.pk), window)
    time_machine.shift(1)

    assert list(db_engine.SessionStore.expired_batches(dry_run=True)) == [0, 1]
    db_engine.SessionStore.clear_expired()

    assert list(UserReauthAttempts.objects.values_list("user_id", flat=True)) == [recent.pk]
