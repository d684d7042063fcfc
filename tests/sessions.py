"""Helpers for the tests of sessions: storage read and written around the engines
(``Storage``), stores saved and loaded as requests would, and the constants they share.
The ``storage`` fixture (tests/conftest.py) gives the ``Storage`` of the engine under test.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.dispatch import Signal
from django.http import HttpResponseBase
from django.test import Client
from django.test.utils import CaptureQueriesContext
from redis.cluster import RedisCluster

from django_secure_sessions.backends import db as db_engine
from django_secure_sessions.backends import routing
from django_secure_sessions.backends.base import (
    USER_ID_KEY,
    PendingWrite,
    SecureSessionBase,
    Version,
)
from django_secure_sessions.models import SecureSession
from tests.factories import PASSWORD

START = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

# What a new Redis connection sends before its first command: not a request's round trip
# (a new cluster client also asks for the cluster's layout and the commands' key specs).
CONNECTION_HANDSHAKE = frozenset({"hello", "select", "client", "auth", "cluster", "command"})

# The Redis key layout (documented in docs/reference/engines.rst), without KEY_PREFIX.
REDIS_SESSION_PREFIX = "secure_sessions:s:"
REDIS_INDEX_PREFIX = "secure_sessions:u:"

StoreClass = type[SecureSessionBase]

# The right shape for a key, but no session has it.
UNKNOWN_KEY = "0123456789abcdefghijklmnopqrstuv"


@dataclass
class RoundTrips:
    """What reached storage inside a ``Storage.round_trips()`` block (filled at its end).

    ``commands`` counts the Redis commands a client sent, by name; the commands a
    script runs inside Redis are part of its EVALSHA round trip and are not counted,
    nor is the handshake of a new connection.
    """

    queries: list[str] = field(default_factory=list)
    commands: Counter[str] = field(default_factory=Counter)
    # What the scripts ran inside Redis: the work a round trip did.
    script_commands: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return len(self.queries) + sum(self.commands.values())


@dataclass
class Storage:
    """An engine's storage, read and written around the engine: SQL for the db
    engine, a plain Redis client (``redis_client``) for the redis engine."""

    engine: str
    redis_client: redis.Redis | RedisCluster | None

    @classmethod
    def of(cls, request: pytest.FixtureRequest) -> Storage:
        engine: str = request.getfixturevalue("engine")
        client = request.getfixturevalue("redis_client") if engine == "redis" else None
        return cls(engine, client)

    @property
    def client(self) -> redis.Redis | RedisCluster:
        assert self.redis_client is not None, "only for the redis engine"
        return self.redis_client

    def session_ids(self) -> set[str]:
        """The ids of every stored session."""
        if self.redis_client is None:
            return set(SecureSession.objects.values_list("id", flat=True))
        names = self.redis_client.scan_iter(match=REDIS_SESSION_PREFIX + "*")
        return {redis_session_id(text(name)) for name in names}

    def user_index(self, user_id: str) -> set[str]:
        """The session ids stored for a user: rows with its user id, or its Redis index
        (on Cluster, its indexes: one per routing tag its sessions can carry)."""
        if self.redis_client is None:
            rows = SecureSession.objects.filter(user_id=user_id)
            return set(rows.values_list("id", flat=True))
        return {
            text(member)
            for name in redis_index_names(user_id)
            for member in self.redis_client.zrange(name, 0, -1)
        }

    def dump(self) -> dict[Any, Any]:
        """Everything stored, to compare before and after."""
        if self.redis_client is None:
            return {row["id"]: row for row in SecureSession.objects.values()}
        return {name: self._redis_value(name) for name in self.redis_client.scan_iter()}

    def _redis_value(self, name: bytes) -> Any:
        kind = text(self.client.type(name))
        if kind == "hash":
            return self.client.hgetall(name)
        if kind == "zset":
            return self.client.zrange(name, 0, -1, withscores=True)
        if kind == "string":
            return self.client.get(name)
        if kind == "set":
            return sorted(self.client.smembers(name))
        if kind == "list":
            return self.client.lrange(name, 0, -1)
        raise AssertionError(f"unexpected Redis type {kind} for {name!r}")

    def everything(self) -> str:
        """Every stored value as text: every column of every table in the database,
        and every Redis key name, value, hash field and sorted-set member."""
        parts: list[str] = []
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
                parts.extend(repr(row) for row in cursor.fetchall())
        # The db engine's data, as it reads it: compression would hide a key in it.
        stored = SecureSession.objects.values_list("data", flat=True)
        parts.extend(repr(db_engine.signed_text(data)) for data in stored)
        for name in self.redis_client.scan_iter() if self.redis_client else ():
            parts.append(f"{name!r} {self._redis_value(name)!r}")
        return "\n".join(parts)

    @property
    def signed_part(self) -> str:
        """The name that the stored signature is bound to: the db engine signs the data
        (its meta is in plain columns), the redis engine the record, meta and data."""
        return "data" if self.redis_client is None else "record"

    def signed(self, session_id: str) -> str | bytes | None:
        """The stored signed part: the db engine's data column (decompressed), the
        redis record."""
        if self.redis_client is None:
            row = SecureSession.objects.filter(pk=session_id).values_list("data", flat=True)
            stored = row.first()
            return None if stored is None else db_engine.signed_text(stored)
        value: bytes | str | None = self.client.hget(redis_session_name(session_id), "r")
        return value

    def stored(self, session_id: str) -> bytes | None:
        """The stored signed part of a record as it is stored: the db engine's data
        column (compressed), the redis record."""
        if self.redis_client is None:
            row = SecureSession.objects.filter(pk=session_id).values_list("data", flat=True)
            column = row.first()
            return None if column is None else bytes(column)
        value = self.client.hget(redis_session_name(session_id), "r")
        assert value is None or isinstance(value, bytes)
        return value

    def overwrite(self, session_id: str, value: str | bytes) -> None:
        """Replace the stored signed part of a record (see ``signed``). On the db
        engine, text is stored as the engine stores it (compressed), bytes as they are."""
        if self.redis_client is None:
            column = zlib.compress(value.encode()) if isinstance(value, str) else value
            assert SecureSession.objects.filter(pk=session_id).update(data=column) == 1
        else:
            name = redis_session_name(session_id)
            assert self.redis_client.exists(name)
            self.redis_client.hset(name, "r", value)

    @contextmanager
    def round_trips(self) -> Iterator[RoundTrips]:
        """Count the SQL queries (both engines) and Redis commands inside the block."""
        trips = RoundTrips()
        with CaptureQueriesContext(connection) as queries, self._redis_commands(trips):
            yield trips
        trips.queries = [query["sql"] for query in queries.captured_queries]

    @contextmanager
    def _redis_commands(self, trips: RoundTrips) -> Iterator[None]:
        # MONITOR shows every command the server runs, with the client that sent it
        # ("lua" for a script's own commands). A sentinel ECHO marks the block's end.
        if self.redis_client is None:
            yield
            return
        # On Cluster, every primary is watched so.
        sentinel = f"ECHO end-of-block-{uuid.uuid4().hex}"
        nodes = redis_nodes(self.client)
        with ExitStack() as stack:
            monitors = [stack.enter_context(node.monitor()) for node in nodes]  # type: ignore[no-untyped-call]
            yield
            for node, monitor in zip(nodes, monitors, strict=True):
                node.echo(sentinel.split()[1])
                seen = []
                while (entry := monitor.next_command())["command"] != sentinel:
                    seen.append(entry)
                ours = entry["client_port"]  # the connection that sent the sentinel
                database = node.connection_pool.connection_kwargs.get("db", 0)
                for entry in seen:
                    name = entry["command"].split()[0].lower()
                    if entry["db"] != database or name in CONNECTION_HANDSHAKE:
                        continue  # another program's database, or a connection opening
                    if entry["client_type"] == "lua":
                        trips.script_commands[name] += 1
                    elif entry["client_port"] != ours:
                        trips.commands[name] += 1


def redis_nodes(client: redis.Redis | RedisCluster) -> list[redis.Redis]:
    """A client on each server that holds data: the one, or each primary of a cluster."""
    if isinstance(client, redis.Redis):
        return [client]
    return [client.get_redis_connection(node) for node in client.get_primaries()]  # type: ignore[no-untyped-call]


def redis_session_name(session_id: str) -> str:
    """The Redis name of a session's hash (without KEY_PREFIX), in either Redis mode."""
    if not routing.enabled():
        return REDIS_SESSION_PREFIX + session_id
    tag, rest = session_id[: routing.TAG_LENGTH], session_id[routing.TAG_LENGTH :]
    return f"{REDIS_SESSION_PREFIX}{{{tag}}}{rest}"


def redis_session_id(name: str) -> str:
    """The id of the session whose hash is named ``name`` (the inverse of the above)."""
    found = name.removeprefix(REDIS_SESSION_PREFIX)
    return found.replace("{", "", 1).replace("}", "", 1) if routing.enabled() else found


# A key of the shape that Django's engines mint (no routing tag: on Redis Cluster,
# import_session stores its session under a new key of ours, see tests/test_cluster.py).
OTHER_ENGINE_KEY = "i" * 32


def redis_index_names(user_id: str) -> list[str]:
    """The Redis names of a user's indexes (without KEY_PREFIX): one, or on Cluster one
    per routing tag the user's sessions can carry."""
    if not routing.enabled():
        return [REDIS_INDEX_PREFIX + user_id]
    return [f"{REDIS_INDEX_PREFIX}{{{tag}}}{user_id}" for tag in routing.user_tags(user_id)]


def text(value: Any) -> str:
    """A value read with the plain Redis client, as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def user_id(user: AbstractBaseUser) -> str:
    """A user's id as the session keeps it."""
    return str(user.pk)


def saved(
    store_class: StoreClass, data: dict[str, Any] | None = None, *, user: Any = None
) -> SecureSessionBase:
    """A new session saved with ``data``, logged in as ``user`` if given."""
    store = store_class()
    store.update(data or {})
    if user is not None:
        store[USER_ID_KEY] = user_id(user)
    store.save()
    return store


def loaded(store_class: StoreClass, key: str | None) -> SecureSessionBase:
    """A new store object for ``key``, loaded, as a new request would get it."""
    store = store_class(key)
    store.get("anything")  # the one load; later reads use what it loaded
    return store


class Exploit:
    """Unpickling this creates the directory ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@contextmanager
def capture(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments (``sender`` included) of every send of ``signal`` inside
    the block."""
    sent: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        sent.append(kwargs)

    signal.connect(receiver, weak=False)
    try:
        yield sent
    finally:
        signal.disconnect(receiver)


def session_key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def admin_login(client: Client, user: AbstractBaseUser, **request: Any) -> HttpResponseBase:
    """A real login: the admin's login form, through every middleware."""
    response = client.post(
        "/admin/login/",
        {"username": user.get_username(), "password": PASSWORD, "next": "/admin/"},
        **request,
    )
    assert response.status_code == 302, response.content
    return response


def rival_saves_before_writes(
    monkeypatch: pytest.MonkeyPatch, store_class: StoreClass, key: str, times: int | None = None
) -> list[int]:
    """Fault injection: before a write of the session ``key`` (each one, or the first
    ``times``), another request (another tab) saves a change to it, its key ``rival``
    set to how many times it did, so that the write meets a concurrent save. Returns the
    list of the rival's saves, filled as they happen."""
    rivals: list[int] = []
    write, awrite = store_class._write, store_class._awrite

    def rival_first(store: SecureSessionBase) -> None:
        if store.session_key != key or getattr(store, "is_rival", False):
            return
        if times is None or len(rivals) < times:
            rival = loaded(store_class, key)
            rival.is_rival = True  # type: ignore[attr-defined]
            rivals.append(len(rivals) + 1)
            rival["rival"] = len(rivals)
            rival.save()

    def rivalled_write(
        store: SecureSessionBase, pending: PendingWrite, must_create: bool
    ) -> Version | None:
        rival_first(store)
        return write(store, pending, must_create)

    async def rivalled_awrite(
        store: SecureSessionBase, pending: PendingWrite, must_create: bool
    ) -> Version | None:
        await sync_to_async(rival_first)(store)
        return await awrite(store, pending, must_create)

    monkeypatch.setattr(store_class, "_write", rivalled_write)
    monkeypatch.setattr(store_class, "_awrite", rivalled_awrite)
    return rivals
