"""Django's own session tests (``tests/sessions_tests`` of the installed Django's source,
brought by the plugin tests/django_suite.py) run against both engines: the contract of a
``SessionBase`` engine, which ours keep but for the deliberate differences marked below (each
is described in docs/reference/engines.rst, "Differences from Django's engines").
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.test import TestCase, override_settings

from django_secure_sessions.backends import db, redis
from django_secure_sessions.backends.redis import aclose_connections

if not os.environ.get("TEST_DJANGO_SUITE_DIR"):
    pytest.skip(
        "DJANGO'S SESSION TESTS NOT AVAILABLE: see the report header (tests/django_suite.py)",
        allow_module_level=True,
    )

# Imported by name: the folder is on sys.path only when the plugin brought it, and it has no
# types (its classes are Any, hence the "misc" ignores on the classes below).
django_tests: Any = importlib.import_module("sessions_tests.tests")

# Deliberate differences: test name -> why ours differ.
DIFFERENCES: dict[str, str] = {
    "test_session_key_valid_string_saved": (
        "A key is exactly 32 characters of [a-z0-9], as the engines make them; any other "
        "(Django's accept 8 and up) is refused before it reaches storage."
    ),
}


def _calling(cls: type[Any], name: str) -> Callable[[Any], None]:
    inherited = getattr(cls, name)

    @functools.wraps(inherited)
    def test(self: Any) -> None:
        inherited(self)

    return test


def closing_async_connections(cls: type[Any]) -> type[Any]:
    """Close the Redis engine's async connections at the end of each async test, in the
    event loop the test ran in (Django runs each in a loop of its own, then closes it)."""
    for name in dir(cls):
        inherited = getattr(cls, name)
        if name.startswith("test_") and inspect.iscoroutinefunction(inherited):
            setattr(cls, name, _closing(inherited))
    return cls


def _closing(inherited: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    @functools.wraps(inherited)
    async def test(self: Any) -> None:
        try:
            await inherited(self)
        finally:
            await aclose_connections()

    return test


def with_differences(differences: dict[str, str]) -> Callable[[type[Any]], type[Any]]:
    """Mark each test named in ``differences`` as an expected failure, with its reason (a
    strict one: should it pass, the run fails, so a difference that disappears is noticed).
    The marks go on a wrapper, never on Django's function, which other classes share."""

    def mark(cls: type[Any]) -> type[Any]:
        for name, reason in differences.items():
            setattr(cls, name, pytest.mark.xfail(reason=reason, strict=True)(_calling(cls, name)))
        return cls

    return mark


MIDDLEWARE_DIFFERENCES: dict[str, str] = {
    "test_empty_session_saved": (
        "It reads the saved session back through django.contrib.sessions' Session model "
        "and get_decoded(): ours store sessions in their own model (or in Redis), keyed by "
        "a digest of the key, with signed data."
    ),
}
# Not run: DatabaseSessionTests and CacheDBSessionTests (Django's Session model,
# get_decoded(), clearsessions), CacheSessionTests (cache_key, the cache backend's
# internals) and the file and signed-cookie engines' tests: they test those engines'
# storage, not the SessionBase contract.


@with_differences(DIFFERENCES)
@override_settings(SESSION_ENGINE="django_secure_sessions.backends.db")
class DbEngineDjangoSessionTests(django_tests.SessionTestsMixin, TestCase):  # type: ignore[misc]
    backend = db.SessionStore


@pytest.mark.usefixtures("redis_url")
@closing_async_connections
@with_differences(DIFFERENCES)
@override_settings(SESSION_ENGINE="django_secure_sessions.backends.redis")
class RedisEngineDjangoSessionTests(django_tests.SessionTestsMixin, TestCase):  # type: ignore[misc]
    backend = redis.SessionStore


@with_differences(MIDDLEWARE_DIFFERENCES)
@override_settings(SESSION_ENGINE="django_secure_sessions.backends.db")
class DbEngineDjangoMiddlewareTests(django_tests.SessionMiddlewareTests):  # type: ignore[misc]
    pass


@pytest.mark.usefixtures("redis_url")
@closing_async_connections
@with_differences(MIDDLEWARE_DIFFERENCES)
@override_settings(SESSION_ENGINE="django_secure_sessions.backends.redis")
class RedisEngineDjangoMiddlewareTests(django_tests.SessionMiddlewareTests):  # type: ignore[misc]
    pass
