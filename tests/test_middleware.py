"""``SecureSessionMiddleware`` through the whole middleware stack (SPEC §4).

Every test runs on both engines (the ``engine`` fixture) and through both test clients
(the ``browser`` fixture: Django's ``Client``, which takes the middleware's sync path, and
``AsyncClient``, which takes its async path). The tests are coroutines so that one body
serves both: the sync client is driven through ``sync_to_async``. Time moves only with
time-machine, and what is checked is what a user sees (status, redirect to the login
page, who the views say is signed in, the session cookie) and what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
import redis
import time_machine
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import OperationalError, connection
from django.db.backends.utils import CursorWrapper
from django.test import AsyncClient, Client, override_settings
from pytest_django.fixtures import Settings as SettingsWrapper
from redis.cluster import RedisCluster

from django_secure_sessions import signals
from django_secure_sessions.backends.base import (
    OUTAGE_REPORT_INTERVAL,
    SAVE_ATTEMPTS,
    USER_ID_KEY,
    SecureSessionBase,
    SessionMeta,
    StorageOutage,
    session_id_for_key,
)
from django_secure_sessions.backends.redis import aclose_connections
from django_secure_sessions.binding import FAMILY_MAX_LENGTH
from django_secure_sessions.models import SecureSession
from django_secure_sessions.timeouts import EXPIRY_GRACE
from tests.browsing import AsyncClientFrom, force_login_on_either_path, send_on_either_path
from tests.factories import PASSWORD
from tests.redis_server import free_port
from tests.sessions import capture, redis_nodes, redis_session_name, rival_saves_before_writes
from tests.user_agents import (
    CHROME_119_WINDOWS,
    CHROME_120_WINDOWS,
    FIREFOX_121_WINDOWS,
    HUGE,
    LONG_DEVICE,
    SAFARI_IPHONE,
)

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedASGIResponse, _MonkeyPatchedWSGIResponse

    Response = _MonkeyPatchedWSGIResponse | _MonkeyPatchedASGIResponse

pytestmark = [pytest.mark.django_db(transaction=True)]

START = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
START_EPOCH = int(START.timestamp())

HOME_IP = "203.0.113.10"
HOME_NETWORK = "203.0.113.0/24"

StoreClass = type[SecureSessionBase]


# -- browsers ----------------------------------------------------------------------------


@dataclass
class Browser:
    """A visitor's browser: where its requests come from (``ip``, ``forwarded_for`` as
    added by proxies on the way) and with which ``user_agent``, and a test client that
    keeps its cookies; what is stored for its session is read with ``store_class``."""

    client: Client | AsyncClientFrom
    store_class: StoreClass
    ip: str = HOME_IP
    user_agent: str = CHROME_120_WINDOWS
    forwarded_for: str | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent}
        if self.forwarded_for is not None:
            headers["X-Forwarded-For"] = self.forwarded_for
        return headers

    async def get(self, path: str) -> Response:
        return await self._send("get", path, None)

    async def post(self, path: str, data: dict[str, str]) -> Response:
        return await self._send("post", path, data)

    async def _send(self, method: str, path: str, data: dict[str, str] | None) -> Response:
        return await send_on_either_path(
            self.client, method, path, data, headers=self._headers(), ip=self.ip
        )

    async def log_in(self, user: AbstractBaseUser) -> Response:
        """A real login: the login form posted through every middleware."""
        credentials = {"username": user.get_username(), "password": PASSWORD}
        response = await self.post(str(settings.LOGIN_URL), credentials)
        assert response.status_code == 302, response.content
        return response

    async def force_login(self, user: AbstractBaseUser) -> None:
        """A login outside any request (the test client's ``force_login``)."""
        await force_login_on_either_path(self.client, user)

    async def stored_meta(self, key: str | None = None) -> SessionMeta:
        """The meta of the live session ``key`` (by default, this browser's), as a new
        request would load it."""
        store = self.store_class(key or self.session_key)
        await store.aget(USER_ID_KEY)
        assert store.meta is not None, "no live session under this key"
        return store.meta

    async def is_stored(self, key: str) -> bool:
        """Whether storage holds any record for ``key``, even one kept past its end."""
        return await self.store_class().aexists(key)

    @property
    def session_key(self) -> str:
        morsel = self.client.cookies.get(settings.SESSION_COOKIE_NAME)
        assert morsel is not None
        assert morsel.value
        return morsel.value


@pytest.fixture(params=["client", "async_client"])
def browser(
    request: pytest.FixtureRequest,
    store_class: StoreClass,
    async_redis_cleanup: None,
    async_db_cleanup: None,
) -> Browser:
    """A browser on ``Client`` (the middleware's sync path) or ``AsyncClient`` (async)."""
    if request.param == "client":
        return Browser(Client(), store_class)
    return Browser(AsyncClientFrom(), store_class)


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> time_machine.TimeMachineFixture:
    """Time stopped at START; tests move it with ``frozen.shift(seconds)``."""
    time_machine.move_to(START, tick=False)
    return time_machine


# -- what a user sees ----------------------------------------------------------------------


def signed_in_as(response: Response) -> str | None:
    """Who a login-required page says is signed in; None when it sent us to log in."""
    if response.status_code == 302:
        assert response["Location"].startswith(settings.LOGIN_URL + "?next=")
        return None
    assert response.status_code == 200, response.content
    return response.content.decode()


def session_cookie(response: Response) -> Morsel[str] | None:
    cookie: Morsel[str] | None = response.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie


def deletes_the_cookie(response: Response) -> bool:
    cookie = session_cookie(response)
    return cookie is not None and cookie.value == "" and cookie["max-age"] == 0


def max_age(response: Response) -> int:
    cookie = session_cookie(response)
    assert cookie is not None
    assert cookie.value
    return int(cookie["max-age"])


# -- what is stored ---------------------------------------------------------------------------


@dataclass
class Writes:
    """The storage writes made inside a ``count_writes()`` block (set at its end)."""

    count: int = 0


class _SessionUpdates:
    """A database execute wrapper counting the UPDATEs of the sessions table."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if sql.startswith("UPDATE") and SecureSession._meta.db_table in sql:
            self.count += 1
        return execute(sql, params, many, context)


def _attach(wrapper: _SessionUpdates) -> None:
    connection.execute_wrappers.append(wrapper)


def _detach(wrapper: _SessionUpdates) -> None:
    connection.execute_wrappers.remove(wrapper)


def _script_runs(client: redis.Redis | RedisCluster) -> int:
    """How many Lua scripts the Redis server (every primary of a cluster) ran
    successfully, all clients together."""
    total = 0
    for node in redis_nodes(client):
        stats: dict[str, dict[str, int]] = node.info("commandstats")
        total += sum(
            stats.get(f"cmdstat_{name}", {}).get("calls", 0)
            - stats.get(f"cmdstat_{name}", {}).get("failed_calls", 0)
            for name in ("evalsha", "eval")
        )
    return total


@dataclass
class WriteCounter:
    """Counts the writes that reach storage: UPDATEs of the sessions table (db engine),
    Lua scripts run by Redis (redis engine: every write is one script, see
    backends/redis.py).

    Redis counts commands for the whole server: the suite needs its Redis to itself, as
    it already does for FLUSHDB. On the database side, the sync client (driven through
    ``sync_to_async``) and the async ORM both run their queries in asgiref's one
    thread-sensitive worker thread, whose connection gets the wrapper.
    """

    engine: str
    redis: redis.Redis | RedisCluster | None = field(default=None)

    @asynccontextmanager
    async def count(self) -> AsyncIterator[Writes]:
        writes = Writes()
        if self.redis is not None:
            before = _script_runs(self.redis)
            yield writes
            writes.count = _script_runs(self.redis) - before
            return
        updates = _SessionUpdates()
        await sync_to_async(_attach)(updates)
        try:
            yield writes
        finally:
            await sync_to_async(_detach)(updates)
        writes.count = updates.count


@pytest.fixture
def storage_writes(request: pytest.FixtureRequest, engine: str) -> WriteCounter:
    client = request.getfixturevalue("redis_client") if engine == "redis" else None
    return WriteCounter(engine, client)


# -- signals and logs --------------------------------------------------------------------------


@pytest.fixture
def expired() -> Iterator[list[dict[str, Any]]]:
    with capture(signals.session_expired) as calls:
        yield calls


@pytest.fixture
def mismatches() -> Iterator[list[dict[str, Any]]]:
    with capture(signals.binding_mismatch) as calls:
        yield calls


EVERY_SIGNAL = [
    signals.session_expired,
    signals.binding_mismatch,
    signals.session_revoked,
    signals.session_rotated,
    signals.reauth_succeeded,
    signals.reauth_failed,
]


def public(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Signal arguments without ``signal``, ``sender`` and ``request``, for comparisons."""
    hidden = {"signal", "sender", "request"}
    return [{k: v for k, v in call.items() if k not in hidden} for call in calls]


# -- login ------------------------------------------------------------------------------------


async def test_a_login_stamps_the_session_and_rotates_its_key(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
) -> None:
    browser.user_agent = SAFARI_IPHONE
    await browser.get("/cart/add/")  # an anonymous session, before logging in
    anonymous_key = browser.session_key
    frozen.shift(5)

    await browser.log_in(user)

    key = browser.session_key
    assert key != anonymous_key
    assert not await browser.is_stored(anonymous_key)
    meta = await browser.stored_meta(key)
    assert meta.user_id == str(user.pk)
    assert meta.created == meta.last_auth == meta.last_activity == START_EPOCH + 5
    assert meta.absolute_expiry == START_EPOCH + 5 + 43200
    assert meta.ip == HOME_IP
    assert meta.user_agent == SAFARI_IPHONE
    assert (meta.browser, meta.os, meta.device) == ("Mobile Safari", "iOS", "iPhone")
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    assert (await browser.get("/cart/add/")).content == b"book,book"  # the data came along


async def test_the_login_cookie_lives_no_longer_than_the_idle_timeout(
    browser: Browser, user: AbstractBaseUser, settings: SettingsWrapper, frozen: Any
) -> None:
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 600

    response = await browser.log_in(user)

    assert max_age(response) == 600


# -- idle timeout ------------------------------------------------------------------------------


@pytest.fixture
def short_timeouts(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 600
    settings.SECURE_SESSIONS_ABSOLUTE_TIMEOUT = 3600
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 60


@pytest.mark.usefixtures("short_timeouts")
@pytest.mark.parametrize("page", ["/whoami/", "/async/whoami/"])
async def test_one_second_before_the_idle_timeout_the_user_is_signed_in(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
    page: str,
) -> None:
    await browser.log_in(user)
    frozen.shift(599)

    response = await browser.get(page)

    assert signed_in_as(response) == user.get_username()
    assert not deletes_the_cookie(response)
    assert expired == []


@pytest.mark.usefixtures("short_timeouts")
@pytest.mark.parametrize("page", ["/whoami/", "/async/whoami/"])
async def test_one_second_after_the_idle_timeout_the_session_has_ended(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
    page: str,
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    frozen.shift(601)

    response = await browser.get(page)

    assert signed_in_as(response) is None
    assert response["Location"] == f"{settings.LOGIN_URL}?next={page}"
    assert deletes_the_cookie(response)
    assert public(expired) == [
        {"user_id": str(user.pk), "session_id": session_id_for_key(key), "reason": "idle"}
    ]
    assert expired[0]["request"].path == page
    assert not await browser.is_stored(key)


@pytest.mark.usefixtures("short_timeouts")
async def test_activity_slides_the_idle_timeout(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
) -> None:
    await browser.log_in(user)

    for _ in range(8):  # 40 minutes, four times the idle timeout
        frozen.shift(300)
        assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    frozen.shift(601)
    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [call["reason"] for call in expired] == ["idle"]


async def test_no_idle_timeout(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
) -> None:
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = None
    settings.SECURE_SESSIONS_ABSOLUTE_TIMEOUT = 3600
    await browser.log_in(user)

    frozen.shift(3599)  # an hour without a request
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    frozen.shift(2)
    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [call["reason"] for call in expired] == ["absolute"]


# -- absolute timeout ---------------------------------------------------------------------------


async def continuous_activity(
    browser: Browser, frozen: time_machine.TimeMachineFixture, until: int, every: int = 300
) -> None:
    """Requests every ``every`` seconds until ``until`` seconds after START, all served
    to a signed-in user."""
    elapsed = 0
    while elapsed + every < until:
        frozen.shift(every)
        elapsed += every
        assert signed_in_as(await browser.get("/whoami/")) is not None
    frozen.shift(until - elapsed)


@pytest.mark.usefixtures("short_timeouts")
async def test_one_second_before_the_absolute_timeout_the_user_is_signed_in(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
) -> None:
    await browser.log_in(user)
    await continuous_activity(browser, frozen, until=3599)

    response = await browser.get("/whoami/")

    assert signed_in_as(response) == user.get_username()
    assert max_age(response) == 1  # the cookie ends with the session
    assert expired == []


@pytest.mark.usefixtures("short_timeouts")
async def test_one_second_after_the_absolute_timeout_the_session_has_ended_despite_activity(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    await continuous_activity(browser, frozen, until=3599)
    assert signed_in_as(await browser.get("/whoami/")) is not None
    frozen.shift(2)

    response = await browser.get("/whoami/")

    assert signed_in_as(response) is None
    assert deletes_the_cookie(response)
    assert public(expired) == [
        {"user_id": str(user.pk), "session_id": session_id_for_key(key), "reason": "absolute"}
    ]
    assert not await browser.is_stored(key)


async def test_no_absolute_timeout(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
) -> None:
    settings.SECURE_SESSIONS_ABSOLUTE_TIMEOUT = None
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 1800
    await browser.log_in(user)

    # 14 hours of activity: past the default absolute timeout of 12 hours.
    await continuous_activity(browser, frozen, until=14 * 3600, every=1200)

    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    assert (await browser.stored_meta()).absolute_expiry is None
    assert expired == []


# -- expiry of the cookie and of the record ----------------------------------------------------


@pytest.mark.usefixtures("short_timeouts")
async def test_the_cookie_and_the_record_never_outlive_the_session(
    browser: Browser,
    engine: str,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    request: pytest.FixtureRequest,
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    absolute_expiry = START_EPOCH + 3600
    elapsed = 0

    for at in [*range(300, 3600, 300), 3500, 3590]:  # seconds after the login
        frozen.shift(at - elapsed)
        elapsed = at
        response = await browser.get("/whoami/")

        time_left = min(600, 3600 - elapsed)  # to the idle or the absolute end
        assert max_age(response) == time_left
        meta = await browser.stored_meta(key)
        assert meta.absolute_expiry == absolute_expiry
        assert meta.expires == START_EPOCH + elapsed + time_left <= absolute_expiry
        if engine == "redis":
            client: redis.Redis = request.getfixturevalue("redis_client")
            ttl = client.ttl(redis_session_name(session_id_for_key(key)))
            assert 0 < ttl <= time_left + EXPIRY_GRACE


# -- activity resolution --------------------------------------------------------------------------


async def test_a_burst_of_requests_writes_the_activity_once(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
    storage_writes: WriteCounter,
) -> None:
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 60
    await browser.log_in(user)
    frozen.shift(60)

    async with storage_writes.count() as writes:
        for _ in range(50):  # 50 requests within 50 seconds
            assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
            frozen.shift(1)

    assert writes.count == 1
    meta = await browser.stored_meta()
    assert meta.last_activity == START_EPOCH + 60  # the burst's first request


async def test_requests_over_time_write_once_per_resolution_window(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
    storage_writes: WriteCounter,
) -> None:
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 60
    await browser.log_in(user)

    async with storage_writes.count() as writes:
        for _ in range(1000):  # one a second
            frozen.shift(1)
            response = await browser.get("/whoami/")
            assert response.status_code == 200

    assert writes.count == 1000 // 60


async def test_a_zero_resolution_writes_every_request(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
    storage_writes: WriteCounter,
) -> None:
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 0
    await browser.log_in(user)

    async with storage_writes.count() as writes:
        for _ in range(5):
            await browser.get("/whoami/")

    assert writes.count == 5


async def test_the_activity_write_slides_the_cookie(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
) -> None:
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 60
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 600
    await browser.log_in(user)

    frozen.shift(30)
    assert session_cookie(await browser.get("/whoami/")) is None  # nothing written

    frozen.shift(30)
    response = await browser.get("/whoami/")
    assert max_age(response) == 600
    assert session_cookie(response) is not None
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == browser.session_key


async def test_a_request_that_saves_the_session_writes_once(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    storage_writes: WriteCounter,
) -> None:
    await browser.log_in(user)
    frozen.shift(60)  # activity due, but the save records it

    async with storage_writes.count() as writes:
        response = await browser.get("/cart/add/")

    assert response.content == b"book"
    assert writes.count == 1
    assert (await browser.stored_meta()).last_activity == START_EPOCH + 60


# -- passive URLs -----------------------------------------------------------------------------


@pytest.fixture
def passive_poll(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_PASSIVE_URLS = [r"^/poll/"]
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 600
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 60


@pytest.mark.usefixtures("passive_poll")
async def test_a_passive_url_never_writes_activity_nor_slides_the_cookie(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    storage_writes: WriteCounter,
) -> None:
    await browser.log_in(user)

    async with storage_writes.count() as writes:
        for _ in range(9):  # nine minutes of polling
            frozen.shift(60)
            response = await browser.get("/poll/")
            assert response.content == user.get_username().encode()
            assert session_cookie(response) is None

    assert writes.count == 0
    meta = await browser.stored_meta()
    assert meta.last_activity == START_EPOCH
    assert meta.expires == START_EPOCH + 600


@pytest.mark.usefixtures("passive_poll")
async def test_polling_does_not_keep_a_session_alive_and_ends_it(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    expired: list[dict[str, Any]],
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    for _ in range(10):
        frozen.shift(60)
        await browser.get("/poll/")
    frozen.shift(1)  # 601 seconds since the last real activity

    response = await browser.get("/poll/")

    assert response.content == b"anonymous"
    assert deletes_the_cookie(response)
    assert [call["reason"] for call in expired] == ["idle"]
    assert not await browser.is_stored(key)


@pytest.mark.usefixtures("passive_poll")
async def test_other_urls_are_still_activity(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    storage_writes: WriteCounter,
) -> None:
    await browser.log_in(user)
    frozen.shift(60)

    async with storage_writes.count() as writes:
        await browser.get("/whoami/?then=/poll/")  # searched in the path only

    assert writes.count == 1


# -- IP binding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IpCase:
    bind_ip: str
    login_ip: str
    request_ip: str
    stays: bool

    def __str__(self) -> str:
        return f"{self.bind_ip}:{self.login_ip}->{self.request_ip}"


IP_CASES = [
    IpCase("off", "203.0.113.10", "198.51.100.7", stays=True),
    IpCase("exact", "203.0.113.10", "203.0.113.10", stays=True),
    IpCase("exact", "203.0.113.10", "203.0.113.11", stays=False),
    IpCase("subnet", "203.0.113.10", "203.0.113.254", stays=True),
    IpCase("subnet", "203.0.113.10", "203.0.114.10", stays=False),
    IpCase("subnet", "2001:db8:1:2::10", "2001:db8:1:2:a:b:c:d", stays=True),
    IpCase("subnet", "2001:db8:1:2::10", "2001:db8:1:3::10", stays=False),
    IpCase("subnet", "203.0.113.10", "2001:db8:1:2::10", stays=False),
    IpCase("exact", "::ffff:203.0.113.10", "203.0.113.10", stays=True),
    IpCase("exact", "203.0.113.10", "::ffff:203.0.113.10", stays=True),
    IpCase("exact", "::ffff:203.0.113.10", "::ffff:203.0.113.11", stays=False),
]


@pytest.mark.parametrize("case", IP_CASES, ids=str)
async def test_ip_binding(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    mismatches: list[dict[str, Any]],
    case: IpCase,
) -> None:
    settings.SECURE_SESSIONS_BIND_IP = case.bind_ip
    browser.ip = case.login_ip
    await browser.log_in(user)

    browser.ip = case.request_ip
    response = await browser.get("/whoami/")

    assert signed_in_as(response) == (user.get_username() if case.stays else None)
    assert deletes_the_cookie(response) is not case.stays
    assert [call["kind"] for call in mismatches] == ([] if case.stays else ["ip"])


async def test_the_prefix_settings_size_the_networks(
    browser: Browser, user: AbstractBaseUser, settings: SettingsWrapper
) -> None:
    settings.SECURE_SESSIONS_IPV4_PREFIX = 16
    await browser.log_in(user)

    browser.ip = "203.0.200.1"
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    browser.ip = "203.1.113.10"
    assert signed_in_as(await browser.get("/whoami/")) is None


async def test_an_ip_mismatch_logs_out_everywhere_and_goes_on_as_anonymous(
    browser: Browser,
    user: AbstractBaseUser,
    mismatches: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    browser.ip = "198.51.100.7"  # the cookie, replayed from elsewhere

    with caplog.at_level(logging.WARNING, logger="django_secure_sessions"):
        response = await browser.get("/whoami/")

    assert signed_in_as(response) is None
    assert deletes_the_cookie(response)
    assert public(mismatches) == [
        {
            "user_id": str(user.pk),
            "session_id": session_id_for_key(key),
            "kind": "ip",
            "expected": HOME_NETWORK,
            "actual": "198.51.100.7",
        }
    ]
    assert not await browser.is_stored(key)
    assert [r.levelname for r in caplog.records if "mismatch" in r.getMessage()] == ["WARNING"]
    # The session is gone for the rightful owner too: the cookie can't be reused.
    browser.ip = HOME_IP
    browser.client.cookies[settings.SESSION_COOKIE_NAME] = key
    assert signed_in_as(await browser.get("/whoami/")) is None


async def test_a_mismatch_in_report_mode_only_reports(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    mismatches: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.SECURE_SESSIONS_BINDING_ACTION = "report"
    await browser.log_in(user)
    key = browser.session_key
    browser.ip = "198.51.100.7"
    browser.user_agent = SAFARI_IPHONE

    with caplog.at_level(logging.WARNING, logger="django_secure_sessions"):
        response = await browser.get("/whoami/")

    assert signed_in_as(response) == user.get_username()
    assert not deletes_the_cookie(response)
    assert sorted((c["kind"], c["expected"], c["actual"]) for c in mismatches) == [
        ("ip", HOME_NETWORK, "198.51.100.7"),
        ("user_agent", "Chrome / Windows / Other", "Mobile Safari / iOS / iPhone"),
    ]
    assert {call["session_id"] for call in mismatches} == {session_id_for_key(key)}
    assert await browser.is_stored(key)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert all("action: report" in message for message in messages)


# -- trusted proxies ---------------------------------------------------------------------------


@pytest.fixture
def behind_proxies(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.SECURE_SESSIONS_BIND_IP = "exact"


@pytest.mark.usefixtures("behind_proxies")
async def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(
    browser: Browser,
    user: AbstractBaseUser,
    mismatches: list[dict[str, Any]],
) -> None:
    browser.ip, browser.forwarded_for = "10.0.0.5", HOME_IP
    await browser.log_in(user)
    assert (await browser.stored_meta()).ip == HOME_IP

    browser.ip = "10.0.0.6"  # another node of the load balancer
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    browser.forwarded_for = "198.51.100.7"
    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [(HOME_IP, "198.51.100.7")]


@pytest.mark.usefixtures("behind_proxies")
async def test_a_spoofed_leftmost_forwarded_address_does_not_matter(
    browser: Browser,
    user: AbstractBaseUser,
    mismatches: list[dict[str, Any]],
) -> None:
    # The client sends its own X-Forwarded-For; the proxy appends the real address.
    browser.ip, browser.forwarded_for = "10.0.0.5", f"192.0.2.66, {HOME_IP}"
    await browser.log_in(user)
    assert (await browser.stored_meta()).ip == HOME_IP

    browser.forwarded_for = f"198.51.100.99, 10.1.1.1, {HOME_IP}, 10.0.0.7"
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    assert mismatches == []


@pytest.mark.usefixtures("behind_proxies")
async def test_the_forwarded_header_of_an_untrusted_peer_is_ignored(
    browser: Browser, user: AbstractBaseUser, mismatches: list[dict[str, Any]]
) -> None:
    await browser.log_in(user)  # directly from HOME_IP

    # An attacker with the cookie claims the victim's address.
    browser.ip, browser.forwarded_for = "198.51.100.7", HOME_IP
    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [(HOME_IP, "198.51.100.7")]


@pytest.mark.usefixtures("behind_proxies")
async def test_a_garbage_forwarded_hop_fails_closed(
    browser: Browser, user: AbstractBaseUser, mismatches: list[dict[str, Any]]
) -> None:
    browser.ip, browser.forwarded_for = "10.0.0.5", HOME_IP
    await browser.log_in(user)

    browser.forwarded_for = f"{HOME_IP}, unknown"
    response = await browser.get("/whoami/")

    assert response.status_code == 302
    assert signed_in_as(response) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [(HOME_IP, "unknown")]


@pytest.mark.usefixtures("behind_proxies")
async def test_a_forwarded_address_too_long_to_keep_fails_closed(
    browser: Browser, user: AbstractBaseUser, mismatches: list[dict[str, Any]]
) -> None:
    # A scoped IPv6 address with a zone of 200 characters, more than a session keeps: the
    # login used to fail on PostgreSQL (503, reported as a storage outage).
    browser.ip, browser.forwarded_for = "10.0.0.5", "fe80::1%" + "z" * 200
    await browser.log_in(user)
    assert (await browser.stored_meta()).ip == ""  # bound to no address

    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [("unbound", "unknown")]


async def test_a_client_address_that_cannot_be_told_fails_closed(
    browser: Browser, user: AbstractBaseUser, mismatches: list[dict[str, Any]]
) -> None:
    # What gunicorn gives behind a Unix socket: no address at all.
    browser.ip = ""
    await browser.log_in(user)

    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [("unbound", "unknown")]


async def test_ipv6_proxies_and_bracketed_forwarded_addresses(
    browser: Browser, user: AbstractBaseUser, settings: SettingsWrapper
) -> None:
    settings.SECURE_SESSIONS_TRUSTED_PROXIES = ["2001:db8:ffff::/48"]
    browser.ip, browser.forwarded_for = "2001:db8:ffff::1", "[2001:db8:1:2::10]:51234"
    await browser.log_in(user)
    assert (await browser.stored_meta()).ip == "2001:db8:1:2::10"

    browser.forwarded_for = "2001:db8:1:2::99, 2001:db8:ffff::2"  # same /64, two proxies
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()


# -- user-agent binding ------------------------------------------------------------------------


async def test_a_browser_update_keeps_the_session(
    browser: Browser, user: AbstractBaseUser, mismatches: list[dict[str, Any]]
) -> None:
    browser.user_agent = CHROME_119_WINDOWS
    await browser.log_in(user)

    browser.user_agent = CHROME_120_WINDOWS
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    assert mismatches == []


@pytest.mark.parametrize(
    ("other", "actual"),
    [
        (SAFARI_IPHONE, "Mobile Safari / iOS / iPhone"),
        (FIREFOX_121_WINDOWS, "Firefox / Windows / Other"),
    ],
    ids=["iphone", "firefox"],
)
async def test_another_browser_ends_the_session(
    browser: Browser,
    user: AbstractBaseUser,
    mismatches: list[dict[str, Any]],
    other: str,
    actual: str,
) -> None:
    browser.user_agent = CHROME_119_WINDOWS
    await browser.log_in(user)
    key = browser.session_key

    browser.user_agent = other
    response = await browser.get("/whoami/")

    assert signed_in_as(response) is None
    assert deletes_the_cookie(response)
    assert [(c["kind"], c["expected"], c["actual"]) for c in mismatches] == [
        ("user_agent", "Chrome / Windows / Other", actual)
    ]
    assert not await browser.is_stored(key)


async def test_in_exact_mode_a_browser_update_ends_the_session(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    mismatches: list[dict[str, Any]],
) -> None:
    settings.SECURE_SESSIONS_BIND_USER_AGENT = "exact"
    browser.user_agent = CHROME_119_WINDOWS
    await browser.log_in(user)

    browser.user_agent = CHROME_120_WINDOWS
    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [
        (CHROME_119_WINDOWS, CHROME_120_WINDOWS)
    ]


async def test_user_agent_binding_off(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    mismatches: list[dict[str, Any]],
) -> None:
    settings.SECURE_SESSIONS_BIND_USER_AGENT = "off"
    await browser.log_in(user)

    browser.user_agent = SAFARI_IPHONE
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    assert mismatches == []


async def test_an_empty_user_agent(browser: Browser, user: AbstractBaseUser) -> None:
    browser.user_agent = ""
    await browser.log_in(user)
    assert (await browser.stored_meta()).browser == "Other"
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    browser.user_agent = CHROME_120_WINDOWS  # another client with the cookie
    assert signed_in_as(await browser.get("/whoami/")) is None


async def test_an_8_kb_user_agent(browser: Browser, user: AbstractBaseUser) -> None:
    browser.user_agent = HUGE
    await browser.log_in(user)
    meta = await browser.stored_meta()
    assert meta.user_agent == HUGE[:512]
    assert (meta.browser, meta.os) == ("Chrome", "Windows")
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    browser.user_agent = HUGE[:-1] + "y"  # another 8 KB tail, the same browser
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    browser.user_agent = SAFARI_IPHONE
    assert signed_in_as(await browser.get("/whoami/")) is None


async def test_a_user_agent_whose_device_family_is_longer_than_a_session_keeps(
    browser: Browser, user: AbstractBaseUser
) -> None:
    # The login used to fail on PostgreSQL (503, reported as a storage outage).
    browser.user_agent = LONG_DEVICE
    await browser.log_in(user)

    assert (await browser.stored_meta()).device == ("Samsung " + "x" * 300)[:FAMILY_MAX_LENGTH]
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()


# -- sessions logged in outside a request ----------------------------------------------------


async def test_a_session_logged_in_outside_a_request_is_bound_on_first_use(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    mismatches: list[dict[str, Any]],
) -> None:
    await browser.force_login(user)
    key = browser.session_key
    before = await browser.stored_meta(key)
    assert (before.ip, before.ua_digest) == ("", "")  # no client to bind to yet
    assert before.absolute_expiry == START_EPOCH + 43200

    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()

    meta = await browser.stored_meta(key)
    assert meta.ip == HOME_IP
    assert (meta.user_agent, meta.browser, meta.os) == (CHROME_120_WINDOWS, "Chrome", "Windows")
    assert mismatches == []
    browser.ip = "198.51.100.7"
    assert signed_in_as(await browser.get("/whoami/")) is None
    assert [(c["expected"], c["actual"]) for c in mismatches] == [(HOME_NETWORK, "198.51.100.7")]


# -- the key is never told ----------------------------------------------------------------------


async def test_no_signal_and_no_log_line_carries_the_session_key(
    browser: Browser,
    user: AbstractBaseUser,
    settings: SettingsWrapper,
    frozen: time_machine.TimeMachineFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 600
    keys: list[str] = []

    with (
        caplog.at_level(logging.DEBUG, logger="django_secure_sessions"),
        ExitStack() as receivers,
    ):
        calls = [receivers.enter_context(capture(signal)) for signal in EVERY_SIGNAL]
        await browser.get("/cart/add/")
        keys.append(browser.session_key)
        await browser.log_in(user)  # rotates the key
        keys.append(browser.session_key)
        settings.SECURE_SESSIONS_BINDING_ACTION = "report"
        browser.ip = "198.51.100.7"
        await browser.get("/whoami/")  # reported
        settings.SECURE_SESSIONS_BINDING_ACTION = "logout"
        await browser.get("/whoami/")  # ended
        browser.ip = HOME_IP
        await browser.log_in(user)
        keys.append(browser.session_key)
        frozen.shift(601)
        await browser.get("/whoami/")  # expired

    sent = [call for signal_calls in calls for call in signal_calls]
    assert {call["signal"] for call in sent} >= {
        signals.session_expired,
        signals.binding_mismatch,
        signals.session_rotated,
    }
    told = [repr(value) for call in public(sent) for value in call.values()]
    told += [record.getMessage() for record in caplog.records]
    told += [repr(record.args) for record in caplog.records]
    assert any(session_id_for_key(keys[1]) in line for line in told)  # public ids are
    for key in keys:
        assert not any(key in line for line in told), key


# -- a session revoked while a request runs ------------------------------------------------------


async def test_a_session_revoked_during_the_request_stays_revoked(
    browser: Browser,
    user: AbstractBaseUser,
    frozen: time_machine.TimeMachineFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    frozen.shift(60)  # the request's activity is due: the middleware will write it

    with caplog.at_level(logging.INFO, logger="django_secure_sessions"):
        response = await browser.get("/revoke-own-session/")

    assert response.status_code == 200
    assert response.content == b"still answered"
    assert session_cookie(response) is None  # no refreshed cookie for a revoked session
    assert not await browser.is_stored(key)  # not brought back by the activity write
    assert any("ended during the request" in r.getMessage() for r in caplog.records)
    assert signed_in_as(await browser.get("/whoami/")) is None


# -- the storage failing --------------------------------------------------------------------


# -- concurrent saves of one session -------------------------------------------------------


async def test_a_write_that_meets_another_tabs_save_keeps_both(
    browser: Browser,
    user: AbstractBaseUser,
    store_class: StoreClass,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await browser.log_in(user)
    rivals = rival_saves_before_writes(monkeypatch, store_class, browser.session_key, times=1)

    response = await browser.get("/notes/draft/?value=Dear%20Ada")

    assert response.status_code == 200
    assert rivals == [1]  # another tab saved while this request ran ...
    stored = store_class(browser.session_key)
    assert await stored.aget("note_draft") == "Dear Ada"
    assert await stored.aget("rival") == 1  # ... and its write is kept too


async def test_fault_injection_a_write_beaten_by_concurrent_saves_every_time_gets_503(
    browser: Browser,
    user: AbstractBaseUser,
    store_class: StoreClass,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await browser.log_in(user)
    key = browser.session_key
    rivals = rival_saves_before_writes(monkeypatch, store_class, key)

    with caplog.at_level(logging.WARNING, logger="django_secure_sessions"):
        response = await browser.get("/notes/draft/?value=Dear%20Ada")

    # Not acknowledged: "try again", and nothing of this request's is stored.
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert session_cookie(response) is None
    assert len(rivals) == SAVE_ATTEMPTS
    stored = store_class(key)
    assert await stored.aget("rival") == SAVE_ATTEMPTS
    assert await stored.aget("note_draft") is None
    assert f"Session {session_id_for_key(key)} not saved" in caplog.text
    assert key not in caplog.text


@asynccontextmanager
async def storage_down(engine: str) -> AsyncIterator[None]:
    """Fault injection: the session storage fails, for every thread (the async client's
    queries run in threads of their own): Redis on a port where nothing listens, or each
    statement on the db engine's table raising the database's OperationalError."""
    if engine == "redis":
        default = settings.CACHES["default"]
        unreachable = {**default, "LOCATION": f"redis://127.0.0.1:{free_port()}"}
        # The async clients of this event loop are replaced with the settings: closed.
        await aclose_connections()
        with override_settings(CACHES={"default": unreachable}):
            try:
                yield
            finally:
                await aclose_connections()
        return
    original = CursorWrapper.execute

    def failing(self: CursorWrapper, sql: Any, params: Any = None) -> Any:
        if SecureSession._meta.db_table in str(sql):
            raise OperationalError("fault injection: the sessions table is unreachable")
        return original(self, sql, params)

    with patch.object(CursorWrapper, "execute", failing):
        yield


async def test_storage_down_fault_injection_a_write_gets_503_and_the_session_survives(
    browser: Browser, user: AbstractBaseUser, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    await browser.log_in(user)
    assert (await browser.get("/cart/add/")).content == b"book"
    key = browser.session_key

    async with storage_down(engine):
        with caplog.at_level(logging.WARNING):
            writes = [await browser.get("/cart/add/") for _ in range(5)]
            reads = [await browser.get("/whoami/") for _ in range(5)]

    for response in writes:
        assert response.status_code == 503
        assert response["Retry-After"] == "10"
        assert b"could not be saved" in response.content
        assert session_cookie(response) is None  # neither set nor deleted
    assert [signed_in_as(response) for response in reads] == [None] * 5
    assert not any(deletes_the_cookie(response) for response in reads)
    # Once, not once per request (nor a line per 503 from Django's handler).
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"Session storage ({settings.SESSION_ENGINE}) failed"
    ]
    assert key not in caplog.text
    # Storage back: the same session, and nothing refused was written.
    assert browser.session_key == key
    assert signed_in_as(await browser.get("/whoami/")) == user.get_username()
    assert (await browser.get("/cart/add/")).content == b"book,book"


async def test_storage_down_fault_injection_a_login_gets_503_and_no_session(
    browser: Browser, user: AbstractBaseUser, engine: str
) -> None:
    async with storage_down(engine):
        response = await browser.post(
            str(settings.LOGIN_URL), {"username": user.get_username(), "password": PASSWORD}
        )

    assert response.status_code == 503
    assert session_cookie(response) is None
    assert signed_in_as(await browser.get("/whoami/")) is None
    await browser.log_in(user)  # storage back: signing in works


async def test_storage_down_fault_injection_answers_json_to_an_api_client(
    engine: str, user: AbstractBaseUser, async_redis_cleanup: None, async_db_cleanup: None
) -> None:
    client = AsyncClient()
    assert isinstance(user, User)  # the test suite's AUTH_USER_MODEL
    await client.aforce_login(user)

    async with storage_down(engine):
        response = await client.get("/cart/add/", headers={"Accept": "application/json"})

    assert response.status_code == 503
    assert response.json() == {
        "detail": "This action could not be saved right now. Please try again in a moment."
    }


def test_a_storage_outage_is_logged_when_it_starts_once_a_minute_and_when_it_ends(
    frozen: time_machine.TimeMachineFixture, caplog: pytest.LogCaptureFixture
) -> None:
    outage = StorageOutage()
    error = ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with caplog.at_level(logging.INFO, "django_secure_sessions"):
        for _ in range(100):
            outage.failed("the store", error)
        frozen.shift(OUTAGE_REPORT_INTERVAL - 1)
        outage.failed("the store", error)
        frozen.shift(1)
        for _ in range(100):
            outage.failed("the store", error)
        for _ in range(3):
            outage.answered("the store")
        outage.failed("the store", error)

    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["ERROR", "ERROR", "WARNING", "ERROR"]
    assert lines[0][1].startswith("Session storage (the store) failed; ")
    assert lines[0][1].endswith(f"ConnectionError: {error}")
    assert lines[1][1].startswith(
        "Session storage (the store) still failing after 60 s, 102 failed operations."
    )
    assert lines[2][1] == (
        "Session storage (the store) answers again, after 60 s and 201 failed operations."
    )
    assert lines[3][1].startswith("Session storage (the store) failed; ")
