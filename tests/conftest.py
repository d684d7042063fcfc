from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from importlib import import_module

import pytest
import redis
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from pytest_django.fixtures import Settings as SettingsWrapper
from redis.cluster import RedisCluster

from django_secure_sessions.backends import base
from django_secure_sessions.backends.base import SecureSessionBase, StorageOutage
from django_secure_sessions.backends.redis import aclose_connections
from tests.browsing import Browsers
from tests.factories import UserFactory
from tests.redis_server import RedisClusterServers
from tests.sessions import Storage

ENGINES = {
    "db": "django_secure_sessions.backends.db",
    "redis": "django_secure_sessions.backends.redis",
}


@pytest.fixture(autouse=True)
def fresh_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with storage that has not failed yet in this process: an outage
    is logged once, so one test's failure would otherwise hide the next one's."""
    monkeypatch.setattr(base, "outage", StorageOutage())


@pytest.fixture
def redis_client(
    redis_url: str, redis_cluster: RedisClusterServers | None
) -> redis.Redis | RedisCluster:
    """A plain client on the suite's Redis database, emptied for this test: in the
    cluster mode, a cluster client, every primary emptied."""
    client: redis.Redis | RedisCluster
    client = redis.Redis.from_url(redis_url) if redis_cluster is None else redis_cluster.client()
    client.flushdb()
    return client


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest, settings: SettingsWrapper, db: None) -> str:
    """Runs a test once per engine, with SESSION_ENGINE set to it; returns its name.

    The Redis engine's storage is emptied first (it needs Redis: skipped with the reason
    in the report header when there is none, a failure under REQUIRE_REDIS=1).
    """
    name: str = request.param
    if name == "redis":
        request.getfixturevalue("redis_client")
    settings.SESSION_ENGINE = ENGINES[name]
    return name


@pytest.fixture
def store_class(engine: str) -> type[SecureSessionBase]:
    store: type[SecureSessionBase] = import_module(ENGINES[engine]).SessionStore
    return store


@pytest.fixture
def storage(engine: str, request: pytest.FixtureRequest) -> Storage:
    """The storage of the engine under test, read and written around the engine."""
    return Storage.of(request)


@pytest.fixture
async def async_redis_cleanup() -> AsyncIterator[None]:
    """Closes the event loop's async Redis connections when an async test ends."""
    yield
    await aclose_connections()


@pytest.fixture
async def async_db_cleanup() -> AsyncIterator[None]:
    """Closes the database connection opened in asgiref's worker thread (by the async
    ORM, and by a sync client driven through ``sync_to_async``); otherwise PostgreSQL
    can't drop the test database at the end of the run."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    """The test's browsers; at its end, no page they got may show a key they held."""
    opened = Browsers()
    yield opened
    opened.assert_no_key_shown()


@pytest.fixture
def user() -> AbstractBaseUser:
    return UserFactory.create()


@pytest.fixture
def make_user() -> Callable[..., AbstractBaseUser]:
    return UserFactory.create
