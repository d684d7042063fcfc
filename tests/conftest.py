from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib import import_module

import pytest
import redis
from django.contrib.auth.models import AbstractBaseUser
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions.backends.base import SecureSessionBase
from django_secure_sessions.backends.redis import aclose_connections
from tests.factories import UserFactory

ENGINES = {
    "db": "django_secure_sessions.backends.db",
    "redis": "django_secure_sessions.backends.redis",
}


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    """A plain client on the suite's Redis database, emptied for this test."""
    client = redis.Redis.from_url(redis_url)
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
async def async_redis_cleanup() -> AsyncIterator[None]:
    """Closes the event loop's async Redis connections when an async test ends."""
    yield
    await aclose_connections()


@pytest.fixture
def user() -> AbstractBaseUser:
    return UserFactory.create()


@pytest.fixture
def make_user() -> Callable[..., AbstractBaseUser]:
    return UserFactory.create
