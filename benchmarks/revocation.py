"""``revoke_user_sessions`` for a user with a few sessions among many other users' sessions.

The other sessions are made by the engines' own code (``save()`` up to the point where
it would write) and then written in bulk: one ``bulk_create`` for the database, pipelined
calls of the engine's own save script for Redis. Saving them one by one through the store
works too, but costs a round trip (and a commit) each: minutes for 100,000 sessions.

Needs the app registry: import this module after ``django.setup()``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from time import perf_counter_ns
from typing import Final

from django.db import connection, transaction
from django.test import override_settings

from benchmarks.timing import Summary, time_call
from benchmarks.workloads import OURS_DB, OURS_REDIS, Engine, create, floors, payload
from django_secure_sessions import list_user_sessions, revoke_user_sessions
from django_secure_sessions.backends import db as db_engine
from django_secure_sessions.backends import redis as redis_engine
from django_secure_sessions.backends.base import KEY_LENGTH, PendingWrite, SecureSessionBase
from django_secure_sessions.models import SecureSession

ENGINES: Final = (OURS_DB, OURS_REDIS)
REVOKED_USER: Final = 1
REVOKED_USER_SESSIONS: Final = 5
# The other sessions belong to two-session users numbered from here.
FIRST_OTHER_USER: Final = 10_000
BATCH: Final = 1000
WARMUP: Final = 3


def other_user(number: int) -> int:
    return FIRST_OTHER_USER + number // 2


class _Recorder(SecureSessionBase):
    """Makes a session's record exactly as ``save()`` does, and keeps it unwritten."""

    record: PendingWrite | None = None

    def _write(self, pending: PendingWrite, must_create: bool) -> str | None:
        self.record = pending
        return None

    # Two shortcuts that change nothing in what is stored, for speed: a key as valid
    # as Django's from one call to the system's random source instead of 32, and no
    # check of payload keys already known to be allowed.
    def _get_new_session_key(self) -> str:
        return secrets.token_hex(KEY_LENGTH // 2)

    def _check_key(self, key: str) -> None:
        pass


def new_records(first: int, count: int) -> Iterator[PendingWrite]:
    """The records of ``count`` new sessions of other users, numbered from ``first``."""
    for number in range(first, first + count):
        store = _Recorder()
        store.update(payload(other_user(number)))
        store.save()
        if store.record is None:
            raise RuntimeError("save() wrote nothing for a new session")
        yield store.record


def batches(records: Iterator[PendingWrite], size: int) -> Iterator[list[PendingWrite]]:
    while batch := list(islice(records, size)):
        yield batch


def insert_rows(records: Sequence[PendingWrite]) -> None:
    # The rows the engine's own INSERT writes, in one statement.
    with transaction.atomic():
        SecureSession.objects.bulk_create([db_engine._new_row(record) for record in records])


def run_save_scripts(records: Sequence[PendingWrite]) -> None:
    # The engine's own save script with its own arguments, one pipeline per batch.
    state = redis_engine._connection()
    state.client.script_load(redis_engine._SAVE.source)
    with state.client.pipeline(transaction=False) as pipe:
        for record in records:
            call = redis_engine._save_call(state.keys, record, must_create=True, loaded="")
            pipe.evalsha(redis_engine._SAVE.sha, len(call.names), *call.names, *call.args)
        if not all(pipe.execute()):
            raise RuntimeError("a bulk-written session existed already")


def add_other_sessions(first: int, count: int) -> None:
    """Store ``count`` other users' sessions in both engines, numbered from ``first``."""
    for batch in batches(new_records(first, count), BATCH):
        insert_rows(batch)
        run_save_scripts(batch)
    settle_table(SecureSession._meta.db_table)


def settle_table(table: str) -> None:
    """Do now what the database would do by itself after a bulk load of ``table``, during
    the timing: gather planner statistics (a real table of this size has some) and, on
    PostgreSQL, the vacuum that autovacuum starts after many inserts."""
    command = "VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(f"{command} {connection.ops.quote_name(table)}")


def check_other_sessions(count: int) -> None:
    """The bulk-written sessions are real ones: the engines' own API reads them."""
    last_user = other_user(count - 1)
    for engine in ENGINES:
        with override_settings(SESSION_ENGINE=engine.module):
            if not list_user_sessions(last_user):
                raise RuntimeError(f"{engine.label}: bulk-written sessions are unreadable")


def time_revocation(engine: Engine) -> int:
    """Nanoseconds to revoke the sessions of a user who has REVOKED_USER_SESSIONS."""
    data = payload(REVOKED_USER)
    with override_settings(SESSION_ENGINE=engine.module):
        for _ in range(REVOKED_USER_SESSIONS):
            create(engine.store_class, data)
        start = perf_counter_ns()
        revoked = revoke_user_sessions(REVOKED_USER)
        elapsed = perf_counter_ns() - start
    if revoked != REVOKED_USER_SESSIONS:
        raise RuntimeError(f"{engine.label}: revoked {revoked}, not {REVOKED_USER_SESSIONS}")
    return elapsed


@dataclass(frozen=True)
class RevocationResult:
    """Timings at one total number of sessions; ``floors`` were taken alongside, to
    show whether the machine was as busy as at the other totals."""

    total_sessions: int
    seconds_to_populate: float
    by_engine: dict[str, Summary]
    floors: dict[str, Summary]


def measure_revocation(repeats: int) -> dict[str, Summary]:
    """Each repeat revokes in every engine and times every floor, in turn."""
    cases: dict[str, Callable[[], int]] = {
        engine.label: partial(time_revocation, engine) for engine in ENGINES
    }
    cases |= {label: partial(time_call, operation, 0) for label, operation in floors().items()}
    samples: dict[str, list[int]] = {label: [] for label in cases}
    for repeat in range(WARMUP + repeats):
        for label, case in cases.items():
            elapsed = case()
            if repeat >= WARMUP:
                samples[label].append(elapsed)
    return {label: Summary.of(values) for label, values in samples.items()}


def revocation_benchmark(totals: Sequence[int], repeats: int) -> list[RevocationResult]:
    """Revocation timings at each total number of sessions (ascending), in both engines."""
    results = []
    stored = 0
    for total in totals:
        start = perf_counter_ns()
        others = total - REVOKED_USER_SESSIONS
        add_other_sessions(stored, others - stored)
        check_other_sessions(others)
        stored = others
        populated = (perf_counter_ns() - start) / 1e9
        timings = measure_revocation(repeats)
        by_engine = {engine.label: timings.pop(engine.label) for engine in ENGINES}
        results.append(RevocationResult(total, populated, by_engine, timings))
    return results
