"""Sessions in the project's database (model ``SecureSession``).

Each operation is one query: a load is one ``SELECT`` by primary key, an update one
conditional ``UPDATE`` (which is also what keeps a revoked session from coming back),
a creation one ``INSERT``, with no ``exists()`` probe before it.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from functools import cache, lru_cache
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.exceptions import EmptyResultSet
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    connections,
    router,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, Model, QuerySet

from ..conf import conf
from ..exceptions import SessionStorageUnavailable
from ..models import SecureSession, UserReauthAttempts
from ..timeouts import EXPIRY_GRACE
from .base import (
    SIGNATURE_LENGTH,
    PendingWrite,
    SecureSessionBase,
    SessionInfo,
    SessionMeta,
    StoredRecord,
    Version,
    WriteConflict,
    now_epoch,
    report_corrupt,
    sign,
    to_datetime,
    unsign,
)

# The columns a load reads, in the order of _meta_from_row().
_COLUMNS: Final = (
    "data",
    "user_id",
    "created",
    "last_activity",
    "last_auth",
    "absolute_expiry",
    "expire_date",
    "ip",
    "ua_digest",
    "user_agent",
    "browser",
    "os",
    "device",
    "origin",
)

Row = tuple[Any, ...]


def _timestamp(value: datetime | str) -> float:
    """Epoch seconds, to the microsecond, of a datetime column as the ORM or the
    database driver gives it (SQLite's driver gives text; without time zone support,
    local time)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None and settings.USE_TZ:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _epoch(value: datetime | str | None) -> int | None:
    """Whole epoch seconds of a datetime column (see ``_timestamp``)."""
    return None if value is None else int(_timestamp(value))


def _datetime(epoch: float) -> datetime:
    """A datetime column's value: aware UTC with USE_TZ, naive local time without."""
    return to_datetime(epoch) if settings.USE_TZ else datetime.fromtimestamp(epoch)


def _optional_datetime(epoch: int | None) -> datetime | None:
    return None if epoch is None else _datetime(epoch)


def _meta_from_row(row: Row) -> SessionMeta:
    (_, user_id, created, last_activity, last_auth, absolute, expires, *client) = row
    return SessionMeta(
        _user_id_text(user_id),
        _timestamp(created),
        _epoch(last_activity) or 0,
        _epoch(last_auth),
        _epoch(absolute),
        _epoch(expires) or 0,
        *client,
    )


@cache
def _user_pk_field() -> Field[Any, Any]:
    target: Field[Any, Any] = SecureSession._meta.get_field("user").target_field
    return target


def _user_id_text(column: Any) -> str | None:
    """The user id as Django keeps it in the session, from the column as the driver
    returns it outside the ORM (a UUID as 32 hex digits on SQLite, say)."""
    if column is None or isinstance(column, int):
        return None if column is None else str(column)
    return str(_user_pk_field().to_python(column))


def _user_pk(user_id: str | None) -> Any:
    """The session's user id (a string, as Django keeps it) as the user's pk type."""
    return None if user_id is None else _user_pk_field().to_python(user_id)


def _columns(meta: SessionMeta) -> dict[str, Any]:
    """The values of every meta column, ready for an INSERT or an UPDATE."""
    return {
        "user_id": _user_pk(meta.user_id),
        "created": _datetime(meta.created),
        "last_activity": _datetime(meta.last_activity),
        "last_auth": _optional_datetime(meta.last_auth),
        "absolute_expiry": _optional_datetime(meta.absolute_expiry),
        "expire_date": _datetime(meta.expires),
        "ip": meta.ip,
        "ua_digest": meta.ua_digest,
        "user_agent": meta.user_agent,
        "browser": meta.browser,
        "os": meta.os,
        "device": meta.device,
        "origin": meta.origin,
    }


def _activity_columns(meta: SessionMeta) -> dict[str, Any]:
    return {
        "last_activity": _datetime(meta.last_activity),
        "expire_date": _datetime(meta.expires),
    }


def _now(offset: int = 0) -> datetime:
    return _datetime(now_epoch() + offset)


def _retained() -> datetime:
    # Rows live EXPIRY_GRACE past their expiry, so a late request can be told why its
    # session ended; the engine refuses them at load (see timeouts.EXPIRY_GRACE).
    return _now(-EXPIRY_GRACE)


# The database that a management command's --database names, in its context only (see
# using_database); elsewhere the routers choose, as for any model.
_chosen_database: ContextVar[str | None] = ContextVar(
    "django_secure_sessions.database", default=None
)


def _alias(model: type[Model], *, write: bool) -> str:
    chosen = _chosen_database.get()
    if chosen is not None:
        return chosen
    route = router.db_for_write if write else router.db_for_read
    alias: str = route(model)
    return alias


@contextmanager
def using_database(alias: str | None) -> Iterator[None]:
    """Keep the sessions (and the counts of re-authentication attempts) in ``alias``, not
    where the routers say, within this block; None changes nothing."""
    token = _chosen_database.set(alias)
    try:
        yield
    finally:
        _chosen_database.reset(token)


def _sessions(*, write: bool = False) -> QuerySet[SecureSession]:
    return SecureSession.objects.using(_alias(SecureSession, write=write))


def _live(session_id: str) -> QuerySet[SecureSession]:
    # Updates only touch a session that hasn't expired: one that expired (or was
    # deleted) while a request ran is never brought back by that request's save.
    return _sessions(write=True).filter(pk=session_id, expire_date__gt=_now())


# The data column holds the signed JSON (signature and payload, see sign()) compressed
# with zlib, as Django's own db engine compresses its session data: a typical signed-in
# session's 350 bytes take 243, and every write, backup and cleanup moves rows a fifth
# smaller. A save spends about 15 µs on it, a load about 5 µs.
def _signed_data(pending: PendingWrite) -> bytes:
    return zlib.compress(sign(pending.session_id, "data", pending.payload).encode())


# What a data column may decompress to: what a save writes is at most SIGNATURE_LENGTH +
# MAX_SIZE; the floor keeps sessions saved under a larger MAX_SIZE readable after it is
# lowered. Anything longer was not written by us (a decompression bomb from someone who
# can write to the table), and is refused after this much, not inflated in memory.
_DECOMPRESSED_FLOOR: Final = 1024 * 1024


def signed_text(stored: bytes | memoryview) -> str | None:
    """The signed JSON that a data column holds, or None if it is not one: not a
    complete zlib stream, followed by anything, longer than the bound, not UTF-8."""
    bound = SIGNATURE_LENGTH + max(conf.MAX_SIZE, _DECOMPRESSED_FLOOR)
    decompressor = zlib.decompressobj()
    try:
        text = decompressor.decompress(stored, bound)
        # eof: the stream ended within the bound; no unused_data: nothing after it.
        if decompressor.eof and not decompressor.unused_data:
            return text.decode()
    except (zlib.error, UnicodeDecodeError):
        pass
    return None


def _new_row(pending: PendingWrite) -> SecureSession:
    return SecureSession(
        id=pending.session_id, data=_signed_data(pending), **_columns(pending.meta)
    )


def _data_of(row: SecureSession) -> bytes:
    return bytes(row.data)


def _names(alias: str, model: type[Model]) -> tuple[str, dict[str, str]]:
    """The quoted table name of ``model`` on database ``alias`` and its quoted columns by
    attribute name. Only these identifiers from the model's metadata go into the SQL
    written here; every value is a parameter."""
    quote = connections[alias].ops.quote_name
    opts = model._meta
    return quote(opts.db_table), {f.attname: quote(f.column) for f in opts.concrete_fields}


@cache
def _fields() -> dict[str, Field[Any, Any]]:
    return {f.attname: f for f in SecureSession._meta.concrete_fields}


@lru_cache(maxsize=32)
def _update_sql(alias: str, names: tuple[str, ...], compares_data: bool) -> str:
    """An update's statement, written once per database and set of columns (the ORM's
    update costs about 100 µs to build and compile, more than the statement runs).

    It writes the row only if it is live (expired or deleted meanwhile, a session is
    never brought back) and, when ``compares_data``, only if it still holds the data
    that the request loaded, so a concurrent request's save is never undone but merged
    (see ``WriteConflict``). Compared whole, the data column is its own version marker,
    with no column or migration added: it holds the signed JSON, compressed, so equal
    bytes are equal data, and an update that finds them is an update of the data the
    request loaded (the same data saved again meanwhile is still that data).
    """
    table, column = _names(alias, SecureSession)
    assignments = ", ".join(f"{column[name]} = %s" for name in names)
    where = f"{column['id']} = %s AND {column['expire_date']} > %s"
    if compares_data:
        where += f" AND {column['data']} = %s"
    return f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608


def _update(pending: PendingWrite, columns: dict[str, Any], loaded: Version) -> bool:
    """Write ``columns`` of the session of ``pending`` (see ``_update_sql``): a save that
    changes the data compares it with ``loaded``, one that doesn't write the data
    needs no comparison. Whether the row was written."""
    alias = _alias(SecureSession, write=True)
    connection = connections[alias]
    fields = _fields()
    compares_data = pending.data_changed and bool(loaded)
    params = [fields[name].get_db_prep_save(value, connection) for name, value in columns.items()]
    params += [pending.session_id, connection.ops.adapt_datetimefield_value(_now())]
    if compares_data:
        params.append(fields["data"].get_db_prep_value(loaded, connection))
    with transaction.mark_for_rollback_on_error(using=alias), connection.cursor() as cursor:
        cursor.execute(_update_sql(alias, tuple(columns), compares_data), params)
        return bool(cursor.rowcount)


@lru_cache(maxsize=8)
def _load_sql(alias: str) -> str:
    """The load's SELECT, written once per database: building and compiling it through
    the ORM on every request costs more than running it."""
    table, column = _names(alias, SecureSession)
    selected = ", ".join(column[name] for name in _COLUMNS)
    where = f"{column['id']} = %s AND {column['expire_date']} > %s"
    return f"SELECT {selected} FROM {table} WHERE {where}"  # noqa: S608


def _returns_rows(connection: BaseDatabaseWrapper) -> bool:
    """Whether UPDATE, DELETE and INSERT ... ON CONFLICT take a RETURNING clause on this
    database, so that changing a row and reading it back is one atomic statement."""
    if connection.vendor == "postgresql":
        return True
    # SQLite has had RETURNING since 3.35 (and upserts since 3.24).
    return connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)


# What deleting a session returns: the columns of a load, then its attempt count.
_DELETED: Final = (*_COLUMNS, "reauth_attempts")
_EXPIRES_AT: Final = _COLUMNS.index("expire_date")


def _delete_returning(sessions: QuerySet[SecureSession], columns: Sequence[str]) -> list[Row]:
    """Delete ``sessions`` and return these columns of each (as the driver gives them).

    One statement where the database has RETURNING, its condition compiled by the ORM:
    a SELECT then a DELETE in one transaction would, on SQLite, take the read lock first
    and fail at once ("database is locked") when a concurrent request writes meanwhile,
    as parallel requests of one user (attempts at the re-authentication page, logins over
    MAX_PER_USER) do.
    """
    using = sessions.db
    connection = connections[using]
    if not _returns_rows(connection):
        with transaction.atomic(using=using):
            rows: list[Row] = list(sessions.select_for_update().values_list(*columns))
            sessions.delete()
        return rows
    query = sessions.query
    try:
        where, params = query.get_compiler(using).compile(query.where)
    except EmptyResultSet:  # a condition that matches nothing, such as pk__in=[]
        return []
    table, column = _names(using, SecureSession)
    returned = ", ".join(column[name] for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {where} RETURNING {returned}", params)  # noqa: S608
        deleted: list[Row] = cursor.fetchall()
    return deleted


def _deleted_one(session_id: str) -> Row | None:
    """Delete one session; its row (``_DELETED``), or None if there was none."""
    rows = _delete_returning(_sessions(write=True).filter(pk=session_id), _DELETED)
    return rows[0] if rows else None


@lru_cache(maxsize=8)
def _attempt_sql(alias: str) -> tuple[str, str]:
    """The statements counting re-authentication attempts (see SessionStore): one on a
    session, one for a user."""
    table, column = _names(alias, SecureSession)
    attempts, expires = column["reauth_attempts"], column["expire_date"]
    count = (
        f"UPDATE {table} SET {attempts} = {attempts} + 1 "  # noqa: S608
        f"WHERE {column['id']} = %s AND {expires} > %s RETURNING {attempts}"
    )
    users, column = _names(alias, UserReauthAttempts)
    user, start, counted = column["user_id"], column["window_start"], column["attempts"]
    # A window that ended (started at or before the cutoff) starts again at this attempt.
    ended = f"{users}.{start} <= %s"
    count_user = (
        f"INSERT INTO {users} ({user}, {start}, {counted}) VALUES (%s, %s, 1) "  # noqa: S608
        f"ON CONFLICT ({user}) DO UPDATE SET "
        f"{counted} = CASE WHEN {ended} THEN 1 ELSE {users}.{counted} + 1 END, "
        f"{start} = CASE WHEN {ended} THEN EXCLUDED.{start} ELSE {users}.{start} END "
        f"RETURNING {counted}, {start}"
    )
    return count, count_user


def _one_row(alias: str, sql: str, params: list[Any]) -> Row | None:
    """The first row that ``sql`` returns on database ``alias``, or None."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row: Row | None = cursor.fetchone()
    return row


def _fetch_stored(session_id: str, *, write: bool = False) -> Row | None:
    """The stored row of ``session_id`` (its _COLUMNS), if it is within its retention:
    one raw SELECT (``_load_sql``). ``write``: from the database that writes go to (not a
    replica that may lag it)."""
    alias = _alias(SecureSession, write=write)
    connection = connections[alias]
    cutoff = connection.ops.adapt_datetimefield_value(_retained())
    return _one_row(alias, _load_sql(alias), [session_id, cutoff])


async def _afetch_stored(session_id: str, *, write: bool = False) -> Row | None:
    """``_fetch_stored`` in asgiref's thread, where the async ORM runs its queries too: the
    same one thread hop, without building a queryset on every load (under ASGI, that
    made the db engine's loads slower than Django's)."""
    return await sync_to_async(_fetch_stored)(session_id, write=write)


def _record(session_id: str, row: Row | None) -> StoredRecord | None:
    if row is None:
        return None
    text = signed_text(row[0])
    payload = None if text is None else unsign(session_id, "data", text)
    if payload is None:
        report_corrupt(session_id)
        return None
    # The column's bytes as the driver gave them are the version (see _updated): kept
    # by reference, no copy for bytes (memoryview: an older driver's).
    return StoredRecord(payload, _meta_from_row(row), bytes(row[0]))


def _info(row: Row) -> SessionInfo:
    """A SessionInfo from a row of ("id", *_COLUMNS)."""
    return SessionInfo.from_meta(row[0], _meta_from_row(row[1:]))


def _user_rows(user_id: str) -> QuerySet[SecureSession, Row]:
    return (
        _sessions()
        .filter(user_id=_user_pk(user_id), expire_date__gt=_now())
        .order_by("-last_activity")
        .values_list("id", *_COLUMNS)
    )


# SQLite's page cache while the cleanup deletes, in KiB. The expired rows are spread over
# the whole table and its key index, so with SQLite's default cache (2 MiB) a batch keeps
# evicting pages it changed and reading them back: with 64 MiB, clearsecuresessions
# takes about a quarter less time (benchmarks/cleanup.py). SQLite fills it only as far as
# the tables need, and it is given back when the cleanup ends.
_SQLITE_CLEANUP_CACHE_KIB: Final = 64 * 1024


@contextmanager
def _page_cache_for_bulk_delete(using: str) -> Iterator[None]:
    connection = connections[using]
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (previous,) = cursor.fetchone()
        # A negative cache_size counts KiB, a positive one pages. A cache the project
        # made larger is left as it is.
        if previous > 0:
            cursor.execute("PRAGMA page_size")
            previous = -previous * cursor.fetchone()[0] // 1024
        enlarge = -previous < _SQLITE_CLEANUP_CACHE_KIB
        if enlarge:
            cursor.execute(f"PRAGMA cache_size = -{_SQLITE_CLEANUP_CACHE_KIB}")
    try:
        yield
    finally:
        if enlarge:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size = {int(previous)}")


@contextmanager
def _cleanup_transaction(using: str) -> Iterator[None]:
    """One batch of the cleanup, in a transaction of its own.

    On PostgreSQL, its commit does not wait for the disk (synchronous_commit off, for
    this transaction alone): should the server crash right after it, the batch is
    lost, and that is harmless. The rows it deleted had expired, every load refuses
    them, and the next cleanup deletes them again. The database stays consistent
    either way. Only a transaction of our own gets this: inside a caller's, the setting
    would also cover the caller's own writes, so it is left alone there.
    """
    connection = connections[using]
    relaxed = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic(using=using):
        if relaxed:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


class SessionStore(SecureSessionBase):
    """Database-backed secure sessions."""

    # InterfaceError: a connection the server dropped (pg_terminate_backend, a restart)
    # is closed, and using it again raises that rather than a DatabaseError.
    storage_errors = (DatabaseError, InterfaceError, SessionStorageUnavailable)
    # Rows deleted per batch (one transaction): few enough that a batch holds locks for
    # a fraction of a second (SQLite's covers the whole database: about 0.3 s), enough
    # that the batches' commits add little to one DELETE of everything (on SQLite each
    # is a flush to disk: with 10,000 rows they added about 50%, benchmarks/cleanup.py;
    # on PostgreSQL they don't wait for it, see _cleanup_transaction). No batch holds
    # its rows in memory.
    expired_batch_size = 50_000

    def _read(self, session_id: str) -> StoredRecord | None:
        return _record(session_id, _fetch_stored(session_id))

    async def _aread(self, session_id: str) -> StoredRecord | None:
        return _record(session_id, await _afetch_stored(session_id))

    def _write(self, pending: PendingWrite, must_create: bool) -> Version:
        if must_create:
            using = _alias(SecureSession, write=True)
            # A lone INSERT in autocommit mode is atomic; inside the caller's
            # transaction, a savepoint keeps a (vanishingly unlikely) key collision
            # from breaking that transaction.
            atomic = connections[using].in_atomic_block
            try:
                if atomic:
                    with transaction.atomic(using=using):
                        return self._insert(pending, using)
                return self._insert(pending, using)
            except IntegrityError as exc:
                raise CreateError from exc
        columns = self._update_columns(pending)
        if _update(pending, columns, self._stored_version):
            return self._version_after(columns)
        if not pending.data_changed:
            # Deleted (revoked, logged out) or expired meanwhile: never re-create it.
            raise UpdateError
        # Deleted, expired, or saved by a concurrent request: the row as it is now
        # tells which (see SecureSessionBase._merge), read where the update went.
        session_id = pending.session_id
        raise WriteConflict(_record(session_id, _fetch_stored(session_id, write=True)))

    async def _awrite(self, pending: PendingWrite, must_create: bool) -> Version:
        if must_create:
            row = _new_row(pending)
            try:
                await row.asave(force_insert=True, using=_alias(SecureSession, write=True))
            except IntegrityError as exc:
                raise CreateError from exc
            return _data_of(row)
        columns = self._update_columns(pending)
        # As the async ORM's aupdate() runs update(): in asgiref's thread.
        if await sync_to_async(_update)(pending, columns, self._stored_version):
            return self._version_after(columns)
        if not pending.data_changed:
            raise UpdateError
        session_id = pending.session_id
        raise WriteConflict(_record(session_id, await _afetch_stored(session_id, write=True)))

    @staticmethod
    def _insert(pending: PendingWrite, using: str) -> bytes:
        row = _new_row(pending)
        row.save(force_insert=True, using=using)
        return _data_of(row)

    def _version_after(self, columns: dict[str, Any]) -> Version:
        """The version of a row just updated with ``columns``: its data as written, or
        as loaded if the data was not written."""
        written: bytes | None = columns.get("data")
        return self._stored_version if written is None else written

    @staticmethod
    def _update_columns(pending: PendingWrite) -> dict[str, Any]:
        # Only what changed is written, so a request that only refreshes the activity
        # can't undo data or meta saved meanwhile by a concurrent request.
        meta = pending.meta
        columns = _columns(meta) if pending.meta_changed else _activity_columns(meta)
        if pending.data_changed:
            columns["data"] = _signed_data(pending)
        return columns

    def _remove(self, session_id: str) -> None:
        _sessions(write=True).filter(pk=session_id).delete()

    async def _aremove(self, session_id: str) -> None:
        await _sessions(write=True).filter(pk=session_id).adelete()

    # Each of the four below is one statement where the database returns rows from an
    # UPDATE, a DELETE or an upsert (PostgreSQL, SQLite 3.35+); elsewhere, the same in a
    # transaction, under the row lock that the UPDATE or SELECT ... FOR UPDATE takes.

    def _count_attempt(self, session_id: str) -> int | None:
        using = _alias(SecureSession, write=True)
        connection = connections[using]
        if _returns_rows(connection):
            now = connection.ops.adapt_datetimefield_value(_now())
            row = _one_row(using, _attempt_sql(using)[0], [session_id, now])
            return None if row is None else int(row[0])
        with transaction.atomic(using=using):
            if not _live(session_id).update(reauth_attempts=F("reauth_attempts") + 1):
                return None
            counted: int = (
                _sessions(write=True)
                .filter(pk=session_id)
                .values_list("reauth_attempts", flat=True)
                .get()
            )
        return counted

    def _take(self, session_id: str) -> int | None:
        row = _deleted_one(session_id)
        # Rows live EXPIRY_GRACE past their expiry: one may be there after it ended.
        if row is None or _timestamp(row[_EXPIRES_AT]) <= now_epoch():
            return None
        return int(row[-1])

    @classmethod
    def count_user_reauth_attempt(cls, user_id: str, window: int) -> tuple[int, int]:
        using = _alias(UserReauthAttempts, write=True)
        connection = connections[using]
        user, now, cutoff = _user_pk(user_id), _now(), _now(-window)
        if _returns_rows(connection):
            adapt = connection.ops.adapt_datetimefield_value
            db_user = _user_pk_field().get_db_prep_value(user, connection)  # a UUID, say
            params = [db_user, adapt(now), adapt(cutoff), adapt(cutoff)]
            upserted = _one_row(using, _attempt_sql(using)[1], params)
            if upserted is None:  # an upsert returns its row: only a broken driver won't
                raise DatabaseError("The re-authentication attempt count returned no row.")
            row = upserted
        else:
            row = cls._count_user_attempt_in_transaction(using, user, now, cutoff)
        left = int(_timestamp(row[1])) + window - now_epoch()
        return int(row[0]), max(left, 1)

    @staticmethod
    def _count_user_attempt_in_transaction(
        using: str, user: Any, now: datetime, cutoff: datetime
    ) -> Row:
        rows = UserReauthAttempts.objects.using(using).filter(user_id=user)
        with transaction.atomic(using=using):
            # In the current window; else, in one that ended, this attempt starts
            # another; else the user's first attempt creates the row.
            counted = rows.filter(window_start__gt=cutoff).update(attempts=F("attempts") + 1)
            if not counted and not rows.update(attempts=1, window_start=now):
                try:
                    with transaction.atomic(using=using):
                        rows.create(user_id=user, attempts=1, window_start=now)
                except IntegrityError:
                    # A concurrent first attempt created it: count on its window.
                    rows.update(attempts=F("attempts") + 1)
            row: Row = rows.values_list("attempts", "window_start").get()
        return row

    @classmethod
    def uncount_user_reauth_attempt(cls, user_id: str, window: int) -> None:
        UserReauthAttempts.objects.using(_alias(UserReauthAttempts, write=True)).filter(
            user_id=_user_pk(user_id), attempts__gt=0, window_start__gt=_now(-window)
        ).update(attempts=F("attempts") - 1)

    @classmethod
    def remove_session(cls, session_id: str) -> SessionMeta | None:
        row = _deleted_one(session_id)
        return None if row is None else _meta_from_row(row[: len(_COLUMNS)])

    @classmethod
    def expired_batches(
        cls, batch_size: int | None = None, *, dry_run: bool = False
    ) -> Iterator[int]:
        batch_size = batch_size or cls.expired_batch_size
        expired = _sessions(write=True).filter(expire_date__lte=_retained())
        if dry_run:
            yield expired.count()
        else:
            yield from cls._expired_batches(expired, batch_size)
        # The users' re-authentication counts whose window has ended: one row per user.
        ended = UserReauthAttempts.objects.using(_alias(UserReauthAttempts, write=True))
        ended = ended.filter(window_start__lte=_now(-conf.REAUTH_USER_FAILURE_WINDOW))
        if removed := (ended.count() if dry_run else ended.delete()[0]):
            yield removed

    @staticmethod
    def _expired_batches(expired: QuerySet[SecureSession], batch_size: int) -> Iterator[int]:
        # Batches are consecutive ranges of the expiry index, oldest first, each up to
        # the expiry of its batch_size-th session (and so with every session that
        # expired in that same second). Each batch reads and deletes only its own rows,
        # from where the previous one ended, so the whole costs about what one DELETE
        # would, while no transaction holds the table for long and no ids travel
        # through Python. (A DELETE ... WHERE id IN (SELECT id ... LIMIT n) may scan the
        # whole table for every batch, and one that restarts from the oldest walks past
        # what the previous batches deleted: quadratic.)
        using = expired.db
        done: datetime | None = None  # everything that expired until then is removed
        with _page_cache_for_bulk_delete(using):
            while True:
                rest = expired if done is None else expired.filter(expire_date__gt=done)
                expiries = rest.order_by("expire_date").values_list("expire_date", flat=True)
                nth = list(expiries[batch_size - 1 : batch_size])
                with _cleanup_transaction(using):
                    deleted, _ = (rest.filter(expire_date__lte=nth[0]) if nth else rest).delete()
                if deleted:
                    yield deleted
                if not nth:
                    return
                done = nth[0]

    @classmethod
    def all_session_ids(cls, batch_size: int = 1000) -> Iterator[list[str]]:
        last = ""
        while ids := list(
            _sessions().filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size]
        ):
            yield ids
            last = ids[-1]

    @classmethod
    def remove_sessions(cls, session_ids: list[str]) -> list[tuple[str, str | None]]:
        sessions = _sessions(write=True).filter(pk__in=session_ids)
        return [
            (session_id, _user_id_text(user_id))
            for session_id, user_id in _delete_returning(sessions, ("id", "user_id"))
        ]

    @classmethod
    def user_sessions(cls, user_id: str) -> list[SessionInfo]:
        return [_info(row) for row in _user_rows(user_id)]

    @classmethod
    def sessions_by_id(cls, session_ids: list[str]) -> list[SessionInfo]:
        rows = _sessions().filter(pk__in=session_ids, expire_date__gt=_now())
        return [_info(row) for row in rows.values_list("id", *_COLUMNS)]

    @classmethod
    def page_sessions(cls, cursor: int, count: int) -> tuple[int, list[SessionInfo]]:
        live = _sessions().filter(expire_date__gt=_now()).order_by("-last_activity")
        rows = list(live.values_list("id", *_COLUMNS)[cursor : cursor + count + 1])
        more = len(rows) > count
        return (cursor + count if more else 0), [_info(row) for row in rows[:count]]

    @classmethod
    def count_signed_in(cls) -> int:
        return _sessions().filter(expire_date__gt=_now(), user__isnull=False).count()

    @classmethod
    def remove_user_sessions(cls, user_id: str, keep: Iterable[str] = ()) -> list[str]:
        sessions = _sessions(write=True).filter(user_id=_user_pk(user_id))
        if kept := list(keep):
            sessions = sessions.exclude(pk__in=kept)
        # Expired rows are deleted too (they are dead anyway) but not reported.
        now = now_epoch()
        deleted = _delete_returning(sessions, ("id", "expire_date"))
        return [session_id for session_id, expires in deleted if _timestamp(expires) > now]
