"""What is measured: the engines, the session payload, and the operations on them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from typing import Any, Final

import redis
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.db import connection
from django_redis import get_redis_connection

from benchmarks.settings import CACHE_ALIAS
from benchmarks.timing import Operation

OPERATIONS: Final = ("create", "load", "update", "no-change")

# Sessions are spread over this many users, as on a real site: the per-user index of
# our engines then holds a few sessions each, not every session of the benchmark.
PAYLOAD_USERS: Final = 1000
FIRST_PAYLOAD_USER: Final = 1000


def payload(user_id: int) -> dict[str, Any]:
    """A signed-in user's session, about 300 bytes of JSON: what login(), the CSRF
    middleware (``CSRF_USE_SESSIONS``) and a few preferences leave in it."""
    return {
        SESSION_KEY: str(user_id),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: "5f0c3c1e9b7d4a2f8e6b1d0c9a8f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d5c",
        "_csrftoken": "Xq7vK2mP9sT4wZ1bN8cR5fH3jL6dG0aY",
        "theme": "dark",
        "language": "en-gb",
        "timezone": "Europe/Paris",
        "recent": [10342, 10877, 11003, 11250],
    }


PAYLOADS: Final = [payload(FIRST_PAYLOAD_USER + n) for n in range(PAYLOAD_USERS)]


@dataclass(frozen=True)
class Engine:
    label: str
    module: str

    @cached_property
    def store_class(self) -> type[SessionBase]:
        store: type[SessionBase] = import_module(self.module).SessionStore
        return store


DJANGO_DB: Final = Engine("django db", "django.contrib.sessions.backends.db")
DJANGO_CACHE: Final = Engine("django cache", "django.contrib.sessions.backends.cache")
DJANGO_CACHED_DB: Final = Engine("django cached_db", "django.contrib.sessions.backends.cached_db")
OURS_DB: Final = Engine("ours db", "django_secure_sessions.backends.db")
OURS_REDIS: Final = Engine("ours redis", "django_secure_sessions.backends.redis")
ENGINES: Final = (DJANGO_DB, DJANGO_CACHE, DJANGO_CACHED_DB, OURS_DB, OURS_REDIS)


# -- the operations -------------------------------------------------------------------


def create(store_class: type[SessionBase], data: dict[str, Any]) -> str:
    store = store_class()
    store.update(data)
    store.save()
    if store.session_key is None:
        raise RuntimeError(f"{store_class.__module__}: save() made no session")
    return store.session_key


def load(store_class: type[SessionBase], key: str) -> None:
    store_class(key)[SESSION_KEY]


def update(store_class: type[SessionBase], key: str) -> None:
    store = store_class(key)
    store["theme"] = "light" if store["theme"] == "dark" else "dark"
    store.save()


def no_change(store_class: type[SessionBase], key: str) -> None:
    """A request that changes nothing: what AuthenticationMiddleware reads (get_user),
    then what SessionMiddleware checks before deciding that there is nothing to save."""
    store = store_class(key)
    store.get(SESSION_KEY)
    store.get(BACKEND_SESSION_KEY)
    store.get(HASH_SESSION_KEY)
    if store.modified or store.is_empty():
        raise AssertionError("a request that changes nothing must leave nothing to save")


def make_pool(engine: Engine, size: int) -> list[str]:
    """Keys of existing sessions, for the operations that start from one."""
    return [create(engine.store_class, PAYLOADS[n % PAYLOAD_USERS]) for n in range(size)]


def operations(engine: Engine, pool: list[str]) -> dict[str, Operation]:
    store_class = engine.store_class

    def on_pool(operation: Callable[[type[SessionBase], str], None]) -> Operation:
        return lambda number: operation(store_class, pool[number % len(pool)])

    return {
        "create": lambda number: create(store_class, PAYLOADS[number % PAYLOAD_USERS]),
        "load": on_pool(load),
        "update": on_pool(update),
        "no-change": on_pool(no_change),
    }


# -- the floor: one round trip and nothing else ---------------------------------------

FLOOR_KEY: Final = "benchmark:floor"
# A one-row table of the benchmark's own, in its own database.
FLOOR_TABLE: Final = "benchmark_floor"


def redis_client() -> redis.Redis:
    """The client django-redis (and so every Redis engine here) uses."""
    client: redis.Redis = get_redis_connection(CACHE_ALIAS)
    return client


def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def floors() -> dict[str, Operation]:
    """A Redis read, a database read, and a database write with its commit (what a save
    can't avoid: on most machines, the disk's flush)."""
    client = redis_client()
    client.set(FLOOR_KEY, json.dumps(PAYLOADS[0]))
    execute(f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (id integer PRIMARY KEY, n integer)")
    execute(f"DELETE FROM {FLOOR_TABLE}")  # noqa: S608 - a constant
    execute(f"INSERT INTO {FLOOR_TABLE} VALUES (1, 0)")  # noqa: S608 - a constant
    return {
        "redis GET": lambda number: client.get(FLOOR_KEY),
        "db SELECT 1": lambda number: execute("SELECT 1"),
        # A real change every time: a database may skip writing an unchanged row.
        "db UPDATE + commit": lambda number: execute(
            f"UPDATE {FLOOR_TABLE} SET n = n + 1 WHERE id = 1"  # noqa: S608 - a constant
        ),
    }


# -- round trips ------------------------------------------------------------------------


@dataclass
class RoundTrips:
    queries: int = 0
    redis_commands: int = 0

    def __str__(self) -> str:
        parts = [f"{self.queries} SQL"] if self.queries else []
        parts += [f"{self.redis_commands} Redis"] if self.redis_commands else []
        return " + ".join(parts) or "none"


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Counts the SQL queries and the Redis commands sent inside the block."""
    counts = RoundTrips()
    client = redis_client()
    send: Callable[..., Any] = client.execute_command

    def count_query(execute: Callable[..., Any], *args: Any) -> Any:
        counts.queries += 1
        return execute(*args)

    def count_command(*args: Any, **options: Any) -> Any:
        counts.redis_commands += 1
        return send(*args, **options)

    # An instance attribute shadows the method, for this client only.
    setattr(client, "execute_command", count_command)  # noqa: B010
    try:
        with connection.execute_wrapper(count_query):
            yield counts
    finally:
        delattr(client, "execute_command")


def round_trips(operation: Operation) -> RoundTrips:
    with counting_round_trips() as counts:
        operation(0)
    return counts
