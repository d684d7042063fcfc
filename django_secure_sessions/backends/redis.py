"""Sessions in Redis, through django-redis's connection for ``SESSION_CACHE_ALIAS``.

Layout, under the cache's ``KEY_PREFIX``:

- ``secure_sessions:s:<id>``: a hash per session, expiring ``EXPIRY_GRACE`` after the
  session: ``r``, the record (JSON ``[<meta>,<data>]``, the meta's last activity and
  expiry included) under one signature, ``x`` (the expiry again, unsigned, for the
  scripts' conditions), ``u`` (the name of its user's index) and ``f`` (re-authentication
  attempts counted on it, written only by ``HINCRBY``: a save never rewrites it);
- ``secure_sessions:u:<user id>``: a sorted set per user, session ids scored by their
  expiry, pruned on every write, expiring with the user's last session;
- ``secure_sessions:f:<user id>``: a hash of a user's re-authentication attempts in the
  current window (``n``) and when it started (``t``), expiring when the window ends;
- on Redis Cluster only, ``secure_sessions:a:<alias id>``: the alias that a session of
  another engine, imported under a new key, leaves under its old key (backends/aliases.py):
  ``k``, the new key sealed, and ``t``, set once the alias has been followed; expiring
  with the session, or ``aliases.FOLLOW_GRACE`` after it was first followed.

Every operation is one round trip: a load is one ``HGET`` and one signature to verify;
a save, index included, one Lua script that writes only if the session exists (or, to
create, only if it doesn't), so a revoked or expired session is never brought back. A
save rewrites the record only if it is still the one loaded, compared by signature, so
it never undoes what a concurrent request saved: when it isn't, a save that changes
nothing but the activity writes nothing (that request's save recorded its activity
too), and one with changes of its own gets the record stored now in the same answer,
merges its changes onto it and tries again. Only our own JSON is ever decoded: whatever
serializer django-redis is configured with, nothing is unpickled.

On Redis Cluster (``SECURE_SESSIONS_REDIS_CLUSTER``), the engine's own redis-py cluster
client replaces django-redis's, the names of a session and of its user's index carry the
session's routing tag as their hash tag, so every script still touches one slot
(backends/routing.py), and what walks every key goes through every primary.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import itertools
import re
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import redis
import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django_redis import get_redis_connection
from django_redis.cache import RedisCache
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url

from ..exceptions import SessionStorageUnavailable
from ..timeouts import EXPIRY_GRACE
from . import aliases, routing
from .base import (
    DECODE_ERRORS,
    SIGNATURE_LENGTH,
    USER_ID_KEY,
    ImportedSession,
    PendingWrite,
    SecureSessionBase,
    SessionInfo,
    SessionMeta,
    StoredRecord,
    Version,
    WriteConflict,
    decode_prefix,
    dumps,
    is_valid_session_key,
    logger,
    now_epoch,
    report_corrupt,
    session_id_for_key,
    sign,
    unsign,
    user_id_in,
)


@dataclass(frozen=True)
class _Script:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()  # noqa: S324 - Redis's script id


# KEYS[1]: the session hash; KEYS[2]: its user's index (absent for an anonymous session).
# ARGV: mode ("c" create, "u" update), the signed record, the signature of the record
# as loaded (for an update; else ""), TTL in seconds, session id, expiry, now (epoch
# seconds), and "m" if the save has changes of its own to the data or meta (else "").
# An update needs the session to exist AND not to have expired: a record kept for the
# grace period after its end is never revived by a request that loaded it before.
# Returns 0: not written; 1: written; 2: not written, as the save changes nothing but
# the activity and the record was rewritten since it was loaded (by a concurrent
# request, which recorded its own activity with it); or, not written, the signed record
# stored now: it was rewritten since it was loaded, and the save's changes are merged
# onto it and tried again (see SecureSessionBase._merge).
_SAVE: Final = _Script("""
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[1] == 'c' then
  if exists then return 0 end
elseif not exists or tonumber(redis.call('HGET', KEYS[1], 'x') or '0') <= tonumber(ARGV[7]) then
  return 0
end
if ARGV[3] ~= '' then
  local current = redis.call('HGET', KEYS[1], 'r') or ''
  if string.sub(current, 1, #ARGV[3]) ~= ARGV[3] then
    if ARGV[8] == '' then return 2 end
    return current
  end
end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'x', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local index = KEYS[2]
local previous = redis.call('HGET', KEYS[1], 'u')
if previous and previous ~= index then
  redis.call('ZREM', previous, ARGV[5])
  redis.call('HDEL', KEYS[1], 'u')
end
if index then
  if previous ~= index then redis.call('HSET', KEYS[1], 'u', index) end
  redis.call('ZADD', index, ARGV[6], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[7])
  if redis.call('TTL', index) < tonumber(ARGV[4]) then redis.call('EXPIRE', index, ARGV[4]) end
end
return 1
""")

# KEYS[1]: the session hash; ARGV[1]: the session id. Returns what the hash held: the
# signed record, its expiry and its attempt count (each nil if absent).
_DELETE: Final = _Script("""
local found = redis.call('HMGET', KEYS[1], 'r', 'u', 'x', 'f')
redis.call('DEL', KEYS[1])
if found[2] then redis.call('ZREM', found[2], ARGV[1]) end
return {found[1], found[3], found[4]}
""")

# KEYS[1]: the session hash; ARGV[1]: now. Returns the attempt count after adding one, or
# nil (and adds nothing) if the session is gone or has expired.
_COUNT_ATTEMPT: Final = _Script("""
if tonumber(redis.call('HGET', KEYS[1], 'x') or '0') <= tonumber(ARGV[1]) then return false end
return redis.call('HINCRBY', KEYS[1], 'f', 1)
""")

# KEYS[1]: a user's attempt counter, a hash of the window's start ``t`` and its count
# ``n``; ARGV[1]: now; ARGV[2]: the window in seconds. Counts one attempt, in a window
# that it opens if the last one ended, and returns the count and the seconds left in the
# window. The window follows the time it is given, as the sessions' expiries do; the key
# expires with it, only so as not to linger.
_COUNT_USER_ATTEMPT: Final = _Script("""
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local start = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
if start + window <= now then
  start = now
  redis.call('HSET', KEYS[1], 't', now, 'n', 0)
  redis.call('EXPIRE', KEYS[1], window)
end
return {redis.call('HINCRBY', KEYS[1], 'n', 1), start + window - now}
""")

# KEYS[1], ARGV[1] and ARGV[2] as above. Takes one attempt back, if the window is still
# open and counts any.
_UNCOUNT_USER_ATTEMPT: Final = _Script("""
local found = redis.call('HMGET', KEYS[1], 't', 'n')
local start, count = tonumber(found[1] or '0'), tonumber(found[2] or '0')
if start + tonumber(ARGV[2]) > tonumber(ARGV[1]) and count > 0 then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
end
return 0
""")

# KEYS[1]: an alias (see backends/aliases.py); ARGV[1]: the sealed new key; ARGV[2]: its
# TTL in seconds. Returns 1 if it stored the alias, 0 if one was there already.
_CREATE_ALIAS: Final = _Script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'k', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
""")

# KEYS[1]: an alias; ARGV[1]: now; ARGV[2]: aliases.FOLLOW_GRACE. Returns the sealed new
# key and when the alias was first followed (nil if there is no such alias); the first
# time, records now as that time and shortens what is left of the alias to the grace
# period (the caller refuses an alias followed longer ago, whatever Redis still holds).
_FOLLOW: Final = _Script("""
local sealed = redis.call('HGET', KEYS[1], 'k')
if not sealed then return false end
if redis.call('HSETNX', KEYS[1], 't', ARGV[1]) == 1 and
    redis.call('TTL', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {sealed, redis.call('HGET', KEYS[1], 't')}
""")

# The name of a session's hash from its id, in the scripts that find sessions through an
# index: ARGV[2] is the session key prefix, ARGV[3] the length of the routing tag that
# the name wraps in braces (0: none, on a single server; see _Keys.session).
_SESSION_NAME: Final = """
local function session_name(id)
  local tag = tonumber(ARGV[3])
  if tag == 0 then return ARGV[2] .. id end
  return ARGV[2] .. '{' .. string.sub(id, 1, tag) .. '}' .. string.sub(id, tag + 1)
end
"""

# KEYS[1]: a user's index; ARGV[1]: now; ARGV[2], ARGV[3]: see _SESSION_NAME; ARGV[4...]:
# ids to keep. Returns the ids of the sessions deleted.
_REVOKE_USER: Final = _Script(
    _SESSION_NAME
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local revoked = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not keep[id] then
    if redis.call('DEL', session_name(id)) == 1 then table.insert(revoked, id) end
    redis.call('ZREM', KEYS[1], id)
  end
end
return revoked
"""
)

# KEYS[1]: a user's index; ARGV[1]: now; ARGV[2], ARGV[3]: see _SESSION_NAME. Returns
# id, signed record, id ... and prunes entries whose session is gone.
_LIST_USER: Final = _Script(
    _SESSION_NAME
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local found = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = redis.call('HGET', session_name(id), 'r')
  if record then
    table.insert(found, id)
    table.insert(found, record)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return found
"""
)


def _text(value: Any) -> str | None:
    """A value from Redis as text, or None (missing, or not UTF-8: corrupt)."""
    if value is None or isinstance(value, str):
        return value
    try:
        return bytes(value).decode()
    except UnicodeDecodeError:
        return None


def _parse(session_id: str, signed: Any) -> StoredRecord | None:
    """A stored record, its signature verified, or None if it is corrupt (logged).

    Corrupt covers tampered with, signed for another session, not UTF-8 (which never
    reaches the signature check) and not our JSON (a pickle, say).
    """
    text = _text(signed)
    payload = None if text is None else unsign(session_id, "record", text)
    if text is not None and payload is not None and payload.startswith("["):
        # "[<meta>,<data>]": the meta is decoded; the data's JSON is only cut out, and
        # decoded when the session is adopted (not to list sessions, nor once it ended).
        try:
            values, end = decode_prefix(payload, 1)
        except DECODE_ERRORS:
            values, end = None, 0
        meta = SessionMeta.from_list(values)
        if meta is not None and payload[end : end + 1] == "," and payload.endswith("]"):
            return StoredRecord(payload[end + 1 : -1], meta, _version(text))
    report_corrupt(session_id)
    return None


def _meta(session_id: str, signed: Any) -> SessionMeta | None:
    record = None if signed is None else _parse(session_id, signed)
    return None if record is None else record.meta


def _version(signed: str) -> str:
    """What identifies a version of a record: its signature, a MAC over all of it."""
    return signed[:SIGNATURE_LENGTH]


@dataclass(frozen=True)
class _Keys:
    """Key names, derived once per configuration.

    On Redis Cluster (``tag_length`` > 0) the names of a session and of its user's index
    carry the session's routing tag as their ``{hash tag}``, so the save and revocation
    scripts find both in one slot (backends/routing.py): ``s:{<tag>}<rest of the id>``
    and ``u:{<tag>}<user id>``.
    """

    prefix: str
    tag_length: int = 0

    def session(self, session_id: str) -> str:
        if not self.tag_length:
            return f"{self.prefix}s:{session_id}"
        tag, rest = session_id[: self.tag_length], session_id[self.tag_length :]
        return f"{self.prefix}s:{{{tag}}}{rest}"

    def session_id(self, name: str) -> str:
        """The id of the session whose hash is named ``name`` (the inverse of ``session``)."""
        found = name[len(self.session_prefix) :]
        return found.replace("{", "", 1).replace("}", "", 1) if self.tag_length else found

    def user(self, user_id: str, tag: str = "") -> str:
        """The name of a user's index, for the sessions tagged ``tag`` (on Cluster)."""
        return (
            f"{self.prefix}u:{{{tag}}}{user_id}" if self.tag_length else f"{self.prefix}u:{user_id}"
        )

    def user_indexes(self, user_id: str) -> list[str]:
        """Every index that can list a live session of the user: one on a single server,
        one per tag the user's sessions can carry on Cluster (see routing.user_tags)."""
        if not self.tag_length:
            return [self.user(user_id)]
        return [self.user(user_id, tag) for tag in routing.user_tags(user_id)]

    @property
    def script_args(self) -> list[Any]:
        """What the scripts need to name a session from its id (see _SESSION_NAME)."""
        return [self.session_prefix, self.tag_length]

    def reauth_attempts(self, user_id: str) -> str:
        return f"{self.prefix}f:{user_id}"

    def alias(self, old_key: str) -> str:
        """The name of the alias an import left under ``old_key`` (on Cluster only): a
        key of its own, in whatever slot its name hashes to, as only the old key can
        find it."""
        return f"{self.prefix}a:{aliases.alias_id(old_key)}"

    @property
    def session_prefix(self) -> str:
        return f"{self.prefix}s:"

    @property
    def all_sessions(self) -> str:
        """A SCAN pattern for every session key (the prefix's glob characters escaped)."""
        return f"{_escape_glob(self.prefix)}s:*"

    @property
    def all_users(self) -> str:
        """A SCAN pattern for every per-user index."""
        return f"{_escape_glob(self.prefix)}u:*"


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


@dataclass(frozen=True)
class _Connection:
    client: redis.Redis | RedisCluster
    keys: _Keys
    # How to reach the same storage from redis.asyncio (see _async_client).
    cluster: _ClusterConfig | None = None

    def primaries(self) -> list[redis.Redis]:
        """A client on each primary, in a stable order: what walks every key (SCAN)
        must go through each of them on Cluster, where each holds its own slots."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return [client]
        nodes = sorted(client.get_primaries(), key=lambda node: node.name)  # type: ignore[no-untyped-call]
        return [client.get_redis_connection(node) for node in nodes]

    def async_client(self) -> _AsyncClient | None:
        if self.cluster is not None:
            return self.cluster.async_client()
        if isinstance(self.client, redis.Redis):
            return _mirror(self.client.connection_pool)
        return None

    def scan(self, pattern: str, count: int) -> Iterator[Any]:
        """Every key name matching ``pattern``, primary by primary, a SCAN batch at a
        time (memory stays bounded)."""
        for client in self.primaries():
            yield from client.scan_iter(match=pattern, count=count)


@dataclass(frozen=True)
class _ClusterConfig:
    """Startup nodes and connection settings of a Redis Cluster, from the cache's
    LOCATION (one URL, a comma-separated string or a list of them: the nodes to ask
    for the cluster's layout, any of them will do) and OPTIONS."""

    nodes: tuple[tuple[str, int], ...]
    options: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, cache: RedisCache) -> _ClusterConfig:
        location: Any = cache._server  # django-redis keeps LOCATION there
        urls = location.split(",") if isinstance(location, str) else list(location)
        nodes, options = [], {}
        for url in urls:
            parsed = parse_url(url.strip())  # type: ignore[no-untyped-call]
            if parsed.get("db", 0):
                raise ImproperlyConfigured(_CLUSTER_DATABASE.format(url=url))
            nodes.append((str(parsed.get("host", "localhost")), int(parsed.get("port", 6379))))
            for name in ("username", "password"):
                if parsed.get(name):
                    options[name] = parsed[name]
            if parsed.get("connection_class") is redis.SSLConnection:
                options["ssl"] = True
        cache_options = cache._params.get("OPTIONS", {})
        for setting, name in _CLUSTER_OPTIONS.items():
            if cache_options.get(setting) is not None:
                options[name] = cache_options[setting]
        return cls(tuple(nodes), tuple(sorted(options.items())))

    def client(self) -> RedisCluster:
        nodes = [ClusterNode(host, port) for host, port in self.nodes]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **dict(self.options))

    def async_client(self) -> AsyncRedisCluster:
        nodes = [AsyncClusterNode(host, port) for host, port in self.nodes]
        return AsyncRedisCluster(startup_nodes=nodes, **dict(self.options))


# django-redis's OPTIONS that mean the same for a cluster client, by the name it takes.
_CLUSTER_OPTIONS: Final = {
    "PASSWORD": "password",
    "SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout",
    "SOCKET_TIMEOUT": "socket_timeout",
}

_CLUSTER_DATABASE: Final = (
    "SECURE_SESSIONS_REDIS_CLUSTER is True, but the cache's LOCATION {url!r} names a "
    "database: Redis Cluster has database 0 only."
)


# The connection for SESSION_CACHE_ALIAS, made once (reading the settings on every
# operation costs more than one would think), and the async clients, one per event loop.
_connections: list[_Connection] = []
_AsyncClient = redis.asyncio.Redis | AsyncRedisCluster
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncClient | None]
_async_clients = weakref.WeakKeyDictionary()


@receiver(setting_changed)
def _reset_connections(*, setting: str, **kwargs: Any) -> None:
    if setting in {"CACHES", "SESSION_CACHE_ALIAS", "SECURE_SESSIONS_REDIS_CLUSTER"}:
        _connections.clear()
        _async_clients.clear()


def _redis_cache(alias: str) -> RedisCache:
    """The django-redis cache named ``alias``; a clear error for any other (check E006
    says the same, but a project may skip the checks)."""
    try:
        cache = caches[alias]
    except InvalidCacheBackendError as error:
        problem = f"CACHES has no {alias!r} entry"
        raise ImproperlyConfigured(_CACHE_PROBLEM.format(alias=alias, problem=problem)) from error
    if not isinstance(cache, RedisCache):
        backend = f"{type(cache).__module__}.{type(cache).__qualname__}"
        problem = f"that cache is {backend}"
        raise ImproperlyConfigured(_CACHE_PROBLEM.format(alias=alias, problem=problem))
    return cache


_CACHE_PROBLEM: Final = (
    "The Redis session engine reaches Redis through the cache named by "
    "SESSION_CACHE_ALIAS ({alias!r}), which must be django-redis's "
    "django_redis.cache.RedisCache, but {problem}."
)


def _connection() -> _Connection:
    if _connections:
        return _connections[0]
    alias: str = settings.SESSION_CACHE_ALIAS
    cache = _redis_cache(alias)
    # Honour the cache's KEY_PREFIX, so projects sharing a Redis database keep their
    # per-user indexes apart.
    cache_prefix = cache.key_prefix
    prefix = f"{cache_prefix}:secure_sessions:" if cache_prefix else "secure_sessions:"
    if routing.enabled():
        # django-redis has no cluster client: the engine makes its own, from the
        # cache's configuration (the cache itself is not used on Cluster).
        if "{" in prefix or "}" in prefix:
            raise ImproperlyConfigured(_CLUSTER_PREFIX.format(prefix=cache_prefix))
        cluster = _ClusterConfig.of(cache)
        keys = _Keys(prefix, routing.TAG_LENGTH)
        connection = _Connection(cluster.client(), keys, cluster)
    else:
        connection = _Connection(get_redis_connection(alias), _Keys(prefix))
    _connections.append(connection)
    return connection


def _follow_call(old_key: str) -> tuple[list[str], list[Any]]:
    """The keys and arguments of _FOLLOW for the alias of ``old_key``."""
    return [_connection().keys.alias(old_key)], [now_epoch(), aliases.FOLLOW_GRACE]


_CLUSTER_PREFIX: Final = (
    "SECURE_SESSIONS_REDIS_CLUSTER is True, but the cache's KEY_PREFIX {prefix!r} has a "
    "brace: Redis Cluster would take it for the keys' hash tag, and a session and its "
    "user's index would no longer share a slot."
)


_ASYNC_CONNECTION_CLASSES: Final[
    dict[type[Any], type[redis.asyncio.connection.AbstractConnection]]
] = {
    redis.Connection: redis.asyncio.Connection,
    redis.SSLConnection: redis.asyncio.SSLConnection,
    redis.UnixDomainSocketConnection: redis.asyncio.UnixDomainSocketConnection,
}


def _init_parameters(cls: type[Any]) -> Iterable[str]:
    init = cls.__dict__.get("__init__")
    return inspect.signature(init).parameters if init is not None else ()


def _async_client() -> _AsyncClient | None:
    """A ``redis.asyncio`` client on the same server (or cluster), with the same
    settings, as the sync one, one per event loop; None for a setup we can't mirror
    (Sentinel), where the async methods run the sync ones in a thread instead."""
    loop = asyncio.get_running_loop()
    try:
        return _async_clients[loop]
    except KeyError:
        client = _async_clients[loop] = _connection().async_client()
        return client


def _mirror(pool: redis.ConnectionPool) -> redis.asyncio.Redis | None:
    connection_class = _ASYNC_CONNECTION_CLASSES.get(pool.connection_class)
    if connection_class is None:
        return None
    accepted = {name for cls in connection_class.__mro__ for name in _init_parameters(cls)}
    # The sync pool's parser and retry objects are sync-only; the async defaults apply.
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name in accepted and name not in {"parser_class", "retry"}
    }
    pool_class = redis.asyncio.ConnectionPool
    return redis.asyncio.Redis(
        connection_pool=pool_class(connection_class=connection_class, **kwargs)
    )


async def aclose_connections() -> None:
    """Close this event loop's async Redis connections (at shutdown, or in tests)."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        if isinstance(client, AsyncRedisCluster):
            await client.aclose()
        else:
            await client.aclose(close_connection_pool=True)


def _run(
    client: redis.Redis | RedisCluster, script: _Script, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        # First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
        return client.eval(script.source, len(keys), *keys, *args)


async def _arun(
    client: _AsyncClient, script: _Script, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return await client.eval(script.source, len(keys), *keys, *args)


@dataclass(frozen=True, slots=True)
class _Save:
    """A call of the save script, and the version of the record it writes."""

    names: list[str]
    args: list[Any]
    version: str
    session_id: str


def _save_call(keys: _Keys, pending: PendingWrite, must_create: bool, loaded: Version) -> _Save:
    """The save script's call; ``loaded`` is the version of the record as loaded."""
    meta, session_id = pending.meta, pending.session_id
    names = [keys.session(session_id)]
    if meta.user_id is not None:
        # On Cluster, the index of the session's own tag: the same slot (routing.fits
        # holds, or the save moved the session to a key that fits: SessionStore._store).
        names.append(keys.user(meta.user_id, session_id[: keys.tag_length]))
    now = now_epoch()
    record = sign(session_id, "record", f"[{dumps(meta.to_list())},{pending.payload}]")
    args = [
        "c" if must_create else "u",
        record,
        # This request's copy of the record may be stale: it is rewritten only if it is
        # still the one loaded (else merged, or left out if there is nothing to merge).
        "" if must_create else loaded,
        max(meta.expires - now, 1) + EXPIRY_GRACE,
        session_id,
        meta.expires,
        now,
        "m" if pending.data_changed or pending.meta_changed else "",
    ]
    return _Save(names, args, _version(record), session_id)


def _saved(result: Any, must_create: bool, call: _Save) -> str | None:
    """The version the save script wrote, or None if it left the write out."""
    if not isinstance(result, int):
        # A concurrent request saved it since it was loaded: what is stored now.
        raise WriteConflict(_parse(call.session_id, result))
    if not result:
        # create: the key exists already; update: the session was deleted (revoked,
        # logged out) or expired meanwhile, and must stay that way.
        raise CreateError if must_create else UpdateError
    return call.version if result == 1 else None


def _infos(found: Sequence[Any]) -> list[SessionInfo]:
    infos = []
    now = now_epoch()
    for raw_id, signed in zip(found[::2], found[1::2], strict=True):
        session_id = _text(raw_id) or ""
        meta = _meta(session_id, signed)
        if meta is not None and meta.expires > now:
            infos.append(SessionInfo.from_meta(session_id, meta))
    return sorted(infos, key=lambda info: info.last_activity, reverse=True)


class SessionStore(SecureSessionBase):
    """Redis-backed secure sessions."""

    # RedisClusterException covers what the cluster client raises while it can't tell
    # which node serves a slot (a primary down, its replica not yet promoted).
    storage_errors = (
        redis.exceptions.RedisError,
        redis.exceptions.RedisClusterException,
        SessionStorageUnavailable,
    )
    # Per-user indexes pruned per pipelined round trip. Redis runs a batch's commands
    # one after the other, so a smaller batch lets other clients in sooner; the index
    # names of a batch are what it holds in memory (about 4 MB: benchmarks/cleanup.py).
    expired_batch_size = 10_000

    def _get_new_session_key(self) -> str:
        if not routing.enabled():
            return super()._get_new_session_key()
        data = getattr(self, "_session_cache", None) or {}
        user_id = data.get(USER_ID_KEY)
        return routing.new_key(None if user_id is None else str(user_id))

    def _store(self, pending: PendingWrite, must_create: bool) -> None:
        if pending.ends_at_once or self._fits(pending):
            super()._store(pending, must_create)
            return
        if must_create:
            super()._store(self._rekeyed(pending), must_create)
            return
        with self._writing():
            previous = pending.session_id
            moved = self._rerouting(pending, self._delete(previous))
            # A new key colliding with a stored one (CreateError) is as unlikely as any.
            self._written(moved, self._write(moved, True))
            self._rotated(previous)

    async def _astore(self, pending: PendingWrite, must_create: bool) -> None:
        if pending.ends_at_once or self._fits(pending):
            await super()._astore(pending, must_create)
            return
        if must_create:
            await super()._astore(self._rekeyed(pending), must_create)
            return
        with self._writing():
            client = _async_client()
            if client is None:
                await sync_to_async(self._store)(pending, must_create)
                return
            previous = pending.session_id
            names = [_connection().keys.session(previous)]
            moved = self._rerouting(pending, await _arun(client, _DELETE, names, [previous]))
            self._written(moved, await self._awrite(moved, True))
            self._rotated(previous)

    def _fits(self, pending: PendingWrite) -> bool:
        """Whether the session may be written under its key: always on a single server;
        on Cluster, if the key carries a routing tag, its user's (an anonymous session's
        any). A key without one came from another engine (a cookie whose alias this
        request did not find, or a key handed to the constructor): nothing is stored
        under it, where no index could find it."""
        key = self.session_key
        return (
            key is None
            or not routing.enabled()
            or (routing.has_tag(key) and routing.fits(key, pending.meta.user_id))
        )

    def _rekeyed(self, pending: PendingWrite) -> PendingWrite:
        """``pending``, to be written under a new key with its user's routing tag."""
        key = self._session_key = routing.new_key(pending.meta.user_id)
        return replace(pending, session_id=session_id_for_key(key))

    def _rerouting(self, pending: PendingWrite, taken: Sequence[Any]) -> PendingWrite:
        """What a save writes when the session's key does not fit its user (on Cluster:
        the user changed without a new key, or its tag is a previous SECRET_KEY's): the
        old record was just taken (``taken``, as _DELETE returns it), and the session
        goes on under a new key with its user's tag, as if it had been rotated.

        Taking the old record first keeps the guarantees of a save: a session revoked or
        expired meanwhile is not written back (``UpdateError``); and a save that changes
        no data of its own carries over the data as taken, which may be a concurrent
        request's, rather than overwrite it with this request's copy.
        """
        signed, expires, _ = taken
        record = None if signed is None else _parse(pending.session_id, signed)
        if record is None or expires is None or int(expires) <= now_epoch():
            raise UpdateError
        payload = pending.payload if pending.data_changed else record.payload
        return replace(self._rekeyed(pending), data_changed=True, payload=payload)

    def _find(self, key: str) -> tuple[str, StoredRecord | None]:
        """On Cluster, a key of Django's engines (no routing tag) names no session of
        ours, only the alias an import may have left: the look for it is its load's one
        round trip, and one more follows only if it leads to a session."""
        if not routing.enabled() or routing.has_tag(key):
            return super()._find(key)
        client = _connection().client
        moved = self._followed(key, _run(client, _FOLLOW, *_follow_call(key)))
        return (session_id_for_key(key), None) if moved is None else (moved, self._read(moved))

    async def _afind(self, key: str) -> tuple[str, StoredRecord | None]:
        if not routing.enabled() or routing.has_tag(key):
            return await super()._afind(key)
        client = _async_client()
        if client is None:
            return await sync_to_async(self._find)(key)
        moved = self._followed(key, await _arun(client, _FOLLOW, *_follow_call(key)))
        if moved is None:
            return session_id_for_key(key), None
        return moved, await self._aread(moved)

    def _followed(self, old_key: str, found: Any) -> str | None:
        """After the alias of ``old_key`` was looked up (``found``, what _FOLLOW answered):
        the id of the session it leads to, now this store's (None if none).

        The session takes its own key, and is marked modified, so that the response
        sends its browser the new cookie (and the save records its first activity).
        Everything else about it, the binding to its first client included, is as for
        any session: the alias gives no more than the old cookie did with its engine.
        """
        if found is None:
            return None
        sealed, followed = found
        followed_at = _text(followed) or ""
        new_key = aliases.unseal(old_key, _text(sealed) or "")
        if new_key is None or not followed_at.isdigit():
            report_corrupt(aliases.alias_id(old_key))
            return None
        if now_epoch() - int(followed_at) > aliases.FOLLOW_GRACE:
            return None  # the old cookie's grace is over (see aliases.FOLLOW_GRACE)
        self._session_key = new_key
        self.modified = True
        session_id = session_id_for_key(new_key)
        logger.info(
            "Imported session %s: its browser's key of the other engine replaced", session_id
        )
        return session_id

    def _read(self, session_id: str) -> StoredRecord | None:
        connection = _connection()
        found = connection.client.hget(connection.keys.session(session_id), "r")
        return None if found is None else _parse(session_id, found)

    async def _aread(self, session_id: str) -> StoredRecord | None:
        client = _async_client()
        if client is None:
            return await sync_to_async(self._read)(session_id)
        found = await client.hget(_connection().keys.session(session_id), "r")
        return None if found is None else _parse(session_id, found)

    def _write(self, pending: PendingWrite, must_create: bool) -> str | None:
        connection = _connection()
        call = _save_call(connection.keys, pending, must_create, self._stored_version)
        return _saved(_run(connection.client, _SAVE, call.names, call.args), must_create, call)

    async def _awrite(self, pending: PendingWrite, must_create: bool) -> str | None:
        client = _async_client()
        if client is None:
            return await sync_to_async(self._write)(pending, must_create)
        call = _save_call(_connection().keys, pending, must_create, self._stored_version)
        return _saved(await _arun(client, _SAVE, call.names, call.args), must_create, call)

    def _remove(self, session_id: str) -> None:
        self.remove_session(session_id)

    async def _aremove(self, session_id: str) -> None:
        client = _async_client()
        if client is None:
            await sync_to_async(self._remove)(session_id)
            return
        await _arun(client, _DELETE, [_connection().keys.session(session_id)], [session_id])

    @classmethod
    def remove_session(cls, session_id: str) -> SessionMeta | None:
        signed, _, _ = cls._delete(session_id)
        return _meta(session_id, signed)

    @staticmethod
    def _delete(session_id: str) -> list[Any]:
        connection = _connection()
        found: list[Any] = _run(
            connection.client, _DELETE, [connection.keys.session(session_id)], [session_id]
        )
        return found

    def _count_attempt(self, session_id: str) -> int | None:
        connection = _connection()
        keys = [connection.keys.session(session_id)]
        count = _run(connection.client, _COUNT_ATTEMPT, keys, [now_epoch()])
        return None if count is None else int(count)

    def _take(self, session_id: str) -> int | None:
        _, expires, attempts = self._delete(session_id)
        # Kept EXPIRY_GRACE past its expiry, a record may still be there once it ended.
        if expires is None or int(expires) <= now_epoch():
            return None
        return int(attempts or 0)

    @classmethod
    def count_user_reauth_attempt(cls, user_id: str, window: int) -> tuple[int, int]:
        connection = _connection()
        keys = [connection.keys.reauth_attempts(user_id)]
        count, left = _run(connection.client, _COUNT_USER_ATTEMPT, keys, [now_epoch(), window])
        return int(count), max(int(left), 1)

    @classmethod
    def uncount_user_reauth_attempt(cls, user_id: str, window: int) -> None:
        connection = _connection()
        keys = [connection.keys.reauth_attempts(user_id)]
        _run(connection.client, _UNCOUNT_USER_ATTEMPT, keys, [now_epoch(), window])

    @classmethod
    def import_session(
        cls, session_key: str, data: dict[str, Any], expires: int, *, dry_run: bool = False
    ) -> ImportedSession | None:
        """On Cluster, a session of Django's engines (its key has no routing tag) is
        stored under a new key of ours, and the old key leads to it through an alias
        (backends/aliases.py) until its browser's first request swaps the cookie (see
        ``_find``). A key with a tag (one of ours) is stored as it is if its tag is its
        user's, else refused (None: no index could find it)."""
        if not (routing.enabled() and is_valid_session_key(session_key)):
            return super().import_session(session_key, data, expires, dry_run=dry_run)
        if routing.has_tag(session_key):
            # Not a key of Django's engines: one of ours, where it fits.
            if not routing.fits(session_key, user_id_in(data)):
                return None
            return super().import_session(session_key, data, expires, dry_run=dry_run)
        return cls._import_under_new_key(session_key, data, expires, dry_run=dry_run)

    @classmethod
    def _import_under_new_key(
        cls, old_key: str, data: dict[str, Any], expires: int, *, dry_run: bool
    ) -> ImportedSession | None:
        importing = cls._importing(routing.new_key(user_id_in(data)), data, expires)
        if importing is None:  # never: the key is ours
            return None
        store, pending = importing
        connection = _connection()
        name = connection.keys.alias(old_key)
        earlier = connection.client.hget(name, "k")
        if earlier is not None:
            # Imported before: the id it was given then, if the alias is still sound.
            found = aliases.unseal(old_key, _text(earlier) or "")
            return ImportedSession("" if found is None else session_id_for_key(found), new=False)
        if dry_run:
            return ImportedSession("", new=True)
        # A new key colliding with a stored one (CreateError) is as unlikely as any.
        store._write(pending, must_create=True)
        sealed = aliases.seal(old_key, store.session_key or "")
        ttl = max(pending.meta.expires - now_epoch(), 1)
        if not _run(connection.client, _CREATE_ALIAS, [name], [sealed, ttl]):
            # A concurrent import got in first: its copy is the one the cookie leads to.
            cls.remove_session(pending.session_id)
            return ImportedSession("", new=False)
        return ImportedSession(pending.session_id, new=True)

    @classmethod
    def expired_batches(
        cls, batch_size: int | None = None, *, dry_run: bool = False
    ) -> Iterator[int]:
        """Sessions expire by themselves in Redis; this prunes the per-user indexes of
        entries whose session has expired (each index is also pruned on every write)."""
        batch_size = batch_size or cls.expired_batch_size
        connection = _connection()
        now = now_epoch()
        names = connection.scan(connection.keys.all_users, batch_size)
        while batch := list(itertools.islice(names, batch_size)):
            # On Cluster, a pipeline that sends each command to the primary of its slot.
            with connection.client.pipeline(transaction=False) as pipe:
                for name in batch:
                    if dry_run:
                        pipe.zcount(name, "-inf", now)
                    else:
                        pipe.zremrangebyscore(name, "-inf", now)
                yield sum(pipe.execute())

    @classmethod
    def all_session_ids(cls, batch_size: int = 1000) -> Iterator[list[str]]:
        connection = _connection()
        keys = connection.keys
        names = connection.scan(keys.all_sessions, batch_size)
        while batch := list(itertools.islice(names, batch_size)):
            yield [keys.session_id(_text(name) or "") for name in batch]

    @classmethod
    def remove_sessions(cls, session_ids: list[str]) -> list[tuple[str, str | None]]:
        found = []
        for session_id in session_ids:
            meta = cls.remove_session(session_id)
            if meta is not None:
                found.append((session_id, meta.user_id))
        return found

    @classmethod
    def sessions_by_id(cls, session_ids: list[str]) -> list[SessionInfo]:
        connection = _connection()
        with connection.client.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.hget(connection.keys.session(session_id), "r")
            found = pipe.execute()
        flat: list[Any] = []
        for session_id, signed in zip(session_ids, found, strict=True):
            if signed is not None:
                flat.extend((session_id, signed))
        return _infos(flat)

    @classmethod
    def page_sessions(cls, cursor: int, count: int) -> tuple[int, list[SessionInfo]]:
        """Walks the per-user indexes with SCAN: a page costs its own sessions, and the
        other keys scanned on the way.

        On Cluster the walk goes primary after primary; the cursor of a page holds both
        the primary (``cursor % primaries``) and that primary's SCAN cursor. A failover
        during the walk may make a later page repeat or skip a part: a page is a view,
        not a snapshot."""
        connection = _connection()
        keys = connection.keys
        primaries = connection.primaries()
        node, node_cursor = cursor % len(primaries), cursor // len(primaries)
        infos: list[SessionInfo] = []
        # SCAN counts the keys it looks at, not those that match: a stretch of other keys
        # (session hashes, a cache sharing the database) can hold no index at all. Go on
        # until the page is full or the keyspace ends, or a page would show "no sessions"
        # while there are some further on.
        while True:
            node_cursor, names = primaries[node].scan(
                node_cursor, match=keys.all_users, count=count
            )
            for name in names:
                found = _run(
                    connection.client,
                    _LIST_USER,
                    [_text(name) or ""],
                    [now_epoch(), *keys.script_args],
                )
                infos.extend(_infos(found))
            if int(node_cursor) == 0:
                node += 1
                if node == len(primaries):
                    node = 0
                    break
            if len(infos) >= count:
                break
        cursor = int(node_cursor) * len(primaries) + node
        return cursor, sorted(infos, key=lambda info: info.last_activity, reverse=True)

    @classmethod
    def count_signed_in(cls) -> int:
        """Counts the live entries of every per-user index (ZCOUNT, pipelined a batch of
        indexes at a time, every primary's on Cluster): no session record is read."""
        connection = _connection()
        live = f"({now_epoch()}"
        names = connection.scan(connection.keys.all_users, 1000)
        total = 0
        while batch := list(itertools.islice(names, 1000)):
            # On Cluster, a pipeline that sends each command to the primary of its slot.
            with connection.client.pipeline(transaction=False) as pipe:
                for name in batch:
                    pipe.zcount(name, live, "+inf")
                total += sum(pipe.execute())
        return total

    @classmethod
    def user_sessions(cls, user_id: str) -> list[SessionInfo]:
        connection = _connection()
        keys = connection.keys
        found: list[Any] = []
        for index in keys.user_indexes(user_id):
            found += _run(connection.client, _LIST_USER, [index], [now_epoch(), *keys.script_args])
        return _infos(found)

    @classmethod
    def remove_user_sessions(cls, user_id: str, keep: Iterable[str] = ()) -> list[str]:
        """One script per index of the user: one, but on Cluster for a while after
        SECRET_KEY was rotated (see routing.user_tags)."""
        connection = _connection()
        keys = connection.keys
        kept = list(keep)
        revoked: list[Any] = []
        for index in keys.user_indexes(user_id):
            revoked += _run(
                connection.client, _REVOKE_USER, [index], [now_epoch(), *keys.script_args, *kept]
            )
        return [_text(session_id) or "" for session_id in revoked]
