"""A Redis primary killed under Sentinel, through a real server: Sentinel promotes the
replica, and the Redis engine, configured through django-redis's ``SentinelClient`` as
docs/howto/redis.rst shows, follows the new primary.

The primary, its replica and the sentinel are the test's own, on free loopback ports
(``replicated_redis`` in tests/redis_server.py), never the shared Redis. The primary is
killed with SIGKILL, as a crash would; the sentinel sees it down after half a second and
promotes the replica. Requests in between fail closed (anonymous, or a clean 503 for a
request that must write), never a 500; afterwards a login and session writes work again,
the sessions written before (replicated: the test waits for it with ``WAIT``) still work,
and nothing revoked before comes back.

With Sentinel the engine's async methods run the sync ones in a thread (its connections
can't be mirrored by a ``redis.asyncio`` client): the second test drives them in this
process, against the same kind of failover.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import redis
from django.contrib.sessions.backends.base import UpdateError
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions.backends import redis as redis_engine
from django_secure_sessions.exceptions import SessionStorageUnavailable
from tests.live_client import LOGIN_PATH, Browser, live_env, own_database
from tests.live_server import PASSWORD
from tests.marks import async_test
from tests.redis_server import ReplicatedRedis, port_of, replicated_redis
from tests.served import ServedProcess, launch

REDIS_ENGINE = "django_secure_sessions.backends.redis"
# How long the sentinel waits for a silent primary before it promotes the replica.
DOWN_AFTER_MS = 500
# Generous: a failover normally takes about a second after DOWN_AFTER_MS.
FAILOVER_SECONDS = 30
# The replica acknowledges within this many milliseconds, or WAIT says it did not.
REPLICATION_TIMEOUT_MS = 5000


@pytest.fixture
def group(redis_executable: str, tmp_path: Path) -> Iterator[ReplicatedRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    with replicated_redis(redis_executable, directory, down_after_ms=DOWN_AFTER_MS) as started:
        yield started


def replicated(group: ReplicatedRedis) -> None:
    """Wait until the replica has every write the primary acknowledged."""
    with redis.Redis.from_url(group.primary.url) as client:
        assert client.wait(1, REPLICATION_TIMEOUT_MS) == 1


def kill_primary(group: ReplicatedRedis) -> int:
    """SIGKILL the primary; the port of the replica that is to take over."""
    assert group.primary.process is not None
    group.primary.process.kill()
    group.primary.process.wait()
    return port_of(group.replica)


def who(browser: Browser) -> str:
    answer = browser.request("GET", "/poll/")
    assert answer.status == HTTPStatus.OK, answer.body
    return answer.body


def assert_no_server_error(server: ServedProcess) -> None:
    log = server.log()
    assert "Traceback" not in log, log
    assert "Internal Server Error" not in log, log


def test_primary_killed_sentinel_promotes_the_replica_and_sessions_follow(
    group: ReplicatedRedis, tmp_path: Path
) -> None:
    with own_database(tmp_path) as database_url:
        env = live_env(
            REDIS_ENGINE,
            database_url,
            f"redis://{group.service}/0",  # the service the sentinel watches, not a host
            LIVE_REDIS_SENTINELS=f"127.0.0.1:{port_of(group.sentinel)}",
        )
        server = launch("tests.live_server", env, tmp_path / "server.log", LOGIN_PATH)
        try:
            ada, grace, newcomer = Browser(server), Browser(server), Browser(server)
            ada.sign_in("ada")
            assert ada.request("GET", "/cart/add/").body == "book"
            grace.sign_in("grace")
            assert grace.request("GET", "/revoke-own-session/").body == "still answered"
            newcomer.request("GET", LOGIN_PATH)  # its CSRF cookie, before the failover
            replicated(group)
            key = ada.session_key

            new_primary = kill_primary(group)
            killed = time.monotonic()
            seen: Counter[tuple[str, int]] = Counter()
            while True:
                # Until a write succeeds: the engine found the new primary.
                poll, write = who(ada), ada.request("GET", "/cart/add/")
                seen[poll, write.status] += 1
                assert poll in {"anonymous", "ada"}
                assert write.status in {HTTPStatus.OK, HTTPStatus.SERVICE_UNAVAILABLE}, write
                assert "Traceback" not in write.body
                if write.status == HTTPStatus.OK:
                    break
                assert time.monotonic() - killed < FAILOVER_SECONDS, "no failover"
            print(
                f"\nprimary killed: followed after {time.monotonic() - killed:.2f} s; "
                f"(poll, write status): {dict(seen)}"
            )
            # The outage was seen, and failed closed: anonymous, and a 503 for a write.
            assert seen["anonymous", HTTPStatus.SERVICE_UNAVAILABLE] >= 1
            assert group.primary_port() == new_primary

            # What was replicated works, the refused writes were never made, the cookie
            # was kept, nothing revoked is back, a login works.
            assert write.body == "book,book"
            assert ada.session_key == key
            assert who(ada) == "ada"
            assert who(grace) == "anonymous"
            login = newcomer.request(
                "POST", LOGIN_PATH, {"username": "edsger", "password": PASSWORD}
            )
            assert login.status == HTTPStatus.FOUND, login.body
            assert who(newcomer) == "edsger"
            with redis.Redis.from_url(group.replica.url) as client:
                assert client.info("replication")["role"] == "master"
            log = server.log()
            assert log.count(f"Session storage ({REDIS_ENGINE}) failed") == 1, log
            assert log.count(f"Session storage ({REDIS_ENGINE}) answers again") == 1, log
            assert_no_server_error(server)
        finally:
            server.stop()


# -- the async methods, in this process ----------------------------------------------------


@pytest.fixture
def sentinel_settings(group: ReplicatedRedis, settings: SettingsWrapper) -> ReplicatedRedis:
    """The suite's settings with sessions in the group's Redis, through Sentinel."""
    options: dict[str, Any] = {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": [("127.0.0.1", port_of(group.sentinel))],
        "SOCKET_CONNECT_TIMEOUT": 5,
        "SOCKET_TIMEOUT": 5,
    }
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{group.service}/0",
            "OPTIONS": options,
        }
    }
    settings.SESSION_ENGINE = REDIS_ENGINE
    return group


# async_test: like every async test, among the database tests, which pytest-django runs
# before the others, the browser tests among them (Playwright's running event loop).
@async_test
async def test_primary_killed_async_methods_fail_closed_then_follow_the_new_primary(
    sentinel_settings: ReplicatedRedis,
) -> None:
    group = sentinel_settings
    store = redis_engine.SessionStore()
    await store.aset("cart", ["book"])
    await store.asave()
    key = store.session_key
    assert key is not None
    revoked = redis_engine.SessionStore()
    await revoked.aset("cart", ["pen"])
    await revoked.asave()
    await revoked.adelete()
    # No async client can mirror Sentinel's connections: the sync ones run in a thread.
    assert redis_engine._async_client() is None
    replicated(group)

    loaded = redis_engine.SessionStore(key)
    assert await loaded.aload() == {"cart": ["book"]}

    new_primary = kill_primary(group)
    killed = time.monotonic()
    # A save of a session loaded before: the storage's failure, as the middleware's 503.
    await loaded.aset("cart", ["book", "lost"])
    with pytest.raises(SessionStorageUnavailable):
        await loaded.asave()
    outcomes: Counter[str] = Counter()
    while True:
        during = redis_engine.SessionStore(key)
        data = await during.aload()
        if data:
            break  # the engine found the new primary
        # Fail closed: no session without storage, and nothing written.
        await during.aset("cart", ["book", "during"])
        with pytest.raises(SessionStorageUnavailable):
            await during.asave()
        outcomes["load empty, save refused"] += 1
        assert time.monotonic() - killed < FAILOVER_SECONDS, "no failover"
    print(
        f"\nprimary killed (async): followed after {time.monotonic() - killed:.2f} s; "
        f"{dict(outcomes)}"
    )
    assert outcomes  # the outage was seen
    assert group.primary_port() == new_primary

    after = redis_engine.SessionStore(key)
    assert await after.aload() == {"cart": ["book"]}  # replicated; the refused save not
    await after.aset("cart", ["book", "after"])
    await after.asave()
    assert await redis_engine.SessionStore(key).aload() == {"cart": ["book", "after"]}
    # The session deleted before the failover stays deleted, and a save of it is refused.
    assert revoked.session_key is not None
    assert not await redis_engine.SessionStore().aexists(revoked.session_key)
    with pytest.raises(UpdateError):
        await revoked.asave()
