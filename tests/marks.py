"""Markers shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

Test = TypeVar("Test", bound=Callable[..., Any])


def async_test(test: Test) -> Test:
    """Marks an async test: real transactions (the async ORM runs in another thread),
    and the async Redis and database connections it opened closed at its end."""
    cleanups = pytest.mark.usefixtures("async_redis_cleanup", "async_db_cleanup")
    marked: Test = pytest.mark.django_db(transaction=True)(cleanups(test))
    return marked
