"""clearsecuresessions on our engines against Django's clearsessions on its db engine.

Usage: ``python benchmarks/cleanup.py [--quick] [--rounds N] [--json FILE]``.

Each engine holds N expired and N live sessions (N = 100,000, or 10,000 with ``--quick``),
and its command removes the expired ones:

- ``django db``: Django's ``clearsessions`` on its own db engine (``django_session``);
- ``ours db`` and ``ours redis``: ``clearsecuresessions`` with its default batch size.

The sessions are stored once, then copied aside; every round puts that copy back (then
analyses the tables, and vacuums them on PostgreSQL, as the database would do by itself
after a bulk load), so each command always starts from the same storage. A round runs the
three commands one after the other (in a new order each round, so a slow moment of the
machine doesn't always hit the same one). On PostgreSQL a ``CHECKPOINT`` comes before each
command, so that none pays for writing out the pages that the restore or the previous
command left dirty (without it, the times follow whichever command a checkpoint happened to
land on, and each command writes a full image of every page it is first to change after one,
as in production). Measured:

- seconds: the wall-clock time of the whole command (``call_command``), median of the timed
  rounds (``--rounds``, default 5);
- peak memory: in one more round, under ``tracemalloc``, the highest total of Python
  allocations while the command ran (tracing starts empty with the command, so what was
  allocated before doesn't count; memory that C libraries allocate on their own is not
  seen). Tracing slows Python down, so this round is not timed.

Targets: ours on the db engine no slower than Django's ``clearsessions``; peak memory under
100 MB for each of ours. Like ``benchmarks/run.py``, the verdicts are printed for
information and the exit status ignores them.

The sessions are made by the engines' own code and written in bulk (see
``benchmarks/revocation.py``): ``bulk_create`` for the tables, pipelined calls of the
engine's own save script for Redis. Each user has one expired session (the same session as
if made a day earlier) and one live one (two weeks to go). In Redis the record of an expired
session is deleted, as Redis's own expiry would have done, which leaves what
``clearsecuresessions`` is for there: its entry in its user's index.

Environment: ``DATABASE_URL`` as for ``benchmarks/run.py`` (the benchmark creates and
destroys a database of its own); ``REDIS_URL``, on database 13 unless it names another one
(never 0), which must be empty and is flushed at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in {None, ""}:
    # Run as a script: make the repository root importable, for `benchmarks` and `tests`.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from io import StringIO
from time import perf_counter
from typing import Any, Final
from urllib.parse import urlsplit

import django
from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DjangoDbStore
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction
from django.db.models import Model
from django.db.models.functions import Now
from django.test.utils import override_settings
from django.utils.crypto import get_random_string

from benchmarks import report
from benchmarks.settings import (
    DEFAULT_REDIS_URL,
    Backends,
    database_from_environment,
    django_settings,
    redis_url_with_database,
)
from benchmarks.workloads import payload, redis_client
from django_secure_sessions.backends import redis as redis_engine
from django_secure_sessions.backends.base import PendingWrite, now_epoch
from django_secure_sessions.management.commands._common import positive_int

FULL: Final = 100_000
QUICK: Final = 10_000
ROUNDS: Final = 5
REDIS_DATABASE: Final = 13
BATCH: Final = 1000
DAY: Final = 24 * 3600
LIVE_FOR: Final = timedelta(weeks=2)
MEMORY_LIMIT_MB: Final = 100.0
# Live sessions outlast the run: no idle or absolute timeout cuts them short.
LONG_LIVED: Final = {"SECURE_SESSIONS_IDLE_TIMEOUT": None, "SECURE_SESSIONS_ABSOLUTE_TIMEOUT": None}


@dataclass(frozen=True)
class Case:
    label: str
    engine: str  # SESSION_ENGINE
    command: str
    options: tuple[str, ...] = ()


DJANGO_DB: Final = Case("django db", "django.contrib.sessions.backends.db", "clearsessions")
OURS_DB: Final = Case("ours db", "django_secure_sessions.backends.db", "clearsecuresessions")
OURS_REDIS: Final = Case(
    "ours redis", "django_secure_sessions.backends.redis", "clearsecuresessions"
)


def cases(batch_size: int | None) -> tuple[Case, ...]:
    options = () if batch_size is None else ("--batch-size", str(batch_size))
    return DJANGO_DB, replace(OURS_DB, options=options), replace(OURS_REDIS, options=options)


@dataclass
class Result:
    label: str
    command: str
    seconds: list[float] = field(default_factory=list)
    peak_mb: float = 0.0

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK:,} sessions of each kind, not {FULL:,}"
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=ROUNDS, help=f"timed rounds (default {ROUNDS})"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="clearsecuresessions --batch-size (default: the command's own default)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def redis_url() -> str:
    """REDIS_URL on ``REDIS_DATABASE`` unless it names a database (never 0)."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    parts = urlsplit(url)
    if not parts.path.strip("/"):
        url = parts._replace(path=f"/{REDIS_DATABASE}").geturl()
    return redis_url_with_database(url)


# -- the sessions -----------------------------------------------------------------------


def ended_a_day_ago(record: PendingWrite) -> PendingWrite:
    """The same session, had it been made early enough to have ended a day ago."""
    meta = record.meta
    earlier = meta.expires - int(meta.created) + DAY
    ended = replace(
        meta,
        created=meta.created - earlier,
        last_activity=meta.last_activity - earlier,
        last_auth=None if meta.last_auth is None else meta.last_auth - earlier,
        absolute_expiry=None if meta.absolute_expiry is None else meta.absolute_expiry - earlier,
        expires=meta.expires - earlier,
    )
    return replace(record, meta=ended)


def our_records(count: int) -> Iterator[PendingWrite]:
    """``count`` expired and ``count`` live sessions, one of each per user."""
    from benchmarks.revocation import new_records  # needs the app registry

    with override_settings(**LONG_LIVED):
        for number, record in enumerate(new_records(0, 2 * count)):
            yield ended_a_day_ago(record) if number % 2 == 0 else record


def index_expired(records: Sequence[PendingWrite]) -> None:
    """What Redis holds of sessions that expired: their entries in their users' indexes
    (Redis's own expiry deleted their records; and the engine's save script, which
    prunes an index of what has expired, can't write them)."""
    keys = redis_engine._connection().keys
    with redis_client().pipeline(transaction=False) as pipe:
        for record in records:
            user_index = keys.user(str(record.meta.user_id))  # every payload has a user
            pipe.zadd(user_index, {record.session_id: record.meta.expires})
        pipe.execute()


def store_our_sessions(count: int) -> None:
    from benchmarks.revocation import batches, insert_rows, run_save_scripts  # app registry

    now = now_epoch()
    for batch in batches(our_records(count), BATCH):
        insert_rows(batch)
        # The live sessions first: saving one prunes its user's index of what expired.
        run_save_scripts([record for record in batch if record.meta.expires > now])
        index_expired([record for record in batch if record.meta.expires <= now])


def store_django_sessions(count: int) -> None:
    """Rows of Django's db engine, encoded by it: one expired and one live per user."""
    from django.contrib.sessions.models import Session

    from benchmarks.revocation import other_user

    encoder = DjangoDbStore()
    now = datetime.now(tz=timezone.utc)
    live, expired = now + LIVE_FOR, now - timedelta(days=1)
    for first in range(0, 2 * count, BATCH):
        rows = [
            Session(
                session_key=get_random_string(32, VALID_KEY_CHARS),  # as Django makes them
                session_data=encoder.encode(payload(other_user(number))),
                expire_date=expired if number % 2 == 0 else live,
            )
            for number in range(first, min(first + BATCH, 2 * count))
        ]
        with transaction.atomic():
            Session.objects.bulk_create(rows)


# -- a copy of the storage, put back before each round ------------------------------------


def tables() -> list[str]:
    from django.contrib.sessions.models import Session

    from django_secure_sessions.models import SecureSession

    return [Session._meta.db_table, SecureSession._meta.db_table]


def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def copy_of(table: str) -> str:
    """The quoted name of the copy of ``table``."""
    return connection.ops.quote_name(f"{table}_benchmark_copy")


@dataclass
class Snapshot:
    """The tables, copied aside in the database; the per-user indexes of Redis (what
    ``clearsecuresessions`` changes there), dumped with their TTL."""

    indexes: list[tuple[bytes, bytes, int]]

    @classmethod
    def take(cls) -> Snapshot:
        for table in tables():
            quoted = connection.ops.quote_name(table)
            execute(f"CREATE TABLE {copy_of(table)} AS SELECT * FROM {quoted}")  # noqa: S608
        client = redis_client()
        names = list(client.scan_iter(match=redis_engine._connection().keys.user("*"), count=BATCH))
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.dump(name)
                pipe.pttl(name)
            found = pipe.execute()
        return cls([(name, found[2 * n], found[2 * n + 1]) for n, name in enumerate(names)])

    def restore(self) -> None:
        from benchmarks.revocation import settle_table  # needs the app registry

        # TRUNCATE (DELETE on SQLite): a table as new, not one full of dead rows.
        for statement in connection.ops.sql_flush(no_style(), tables()):
            execute(statement)
        for table in tables():
            quoted = connection.ops.quote_name(table)
            execute(f"INSERT INTO {quoted} SELECT * FROM {copy_of(table)}")  # noqa: S608
            settle_table(table)
        with redis_client().pipeline(transaction=False) as pipe:
            for name, value, ttl in self.indexes:
                pipe.restore(name, max(ttl, 0), value, replace=True)
            pipe.execute()


def counts(case: Case) -> tuple[int, int]:
    """(sessions stored, of which expired): rows, or entries of the per-user indexes."""
    from django.contrib.sessions.models import Session

    from django_secure_sessions.models import SecureSession

    if case.engine != OURS_REDIS.engine:
        model: type[Model] = Session if case.engine == DJANGO_DB.engine else SecureSession
        rows = model._default_manager.all()
        return rows.count(), rows.filter(expire_date__lt=Now()).count()
    client = redis_client()
    pattern = redis_engine._connection().keys.user("*")
    with client.pipeline(transaction=False) as pipe:
        for name in client.scan_iter(match=pattern, count=BATCH):
            pipe.zcard(name)
        stored = sum(pipe.execute())
    return stored, sum(redis_engine.SessionStore.expired_batches(BATCH, dry_run=True))


def check(case: Case, expected: tuple[int, int]) -> None:
    found = counts(case)
    if found != expected:
        raise RuntimeError(f"{case.label}: (stored, expired) is {found}, not {expected}")


# -- the measures ------------------------------------------------------------------------


def run_command(case: Case) -> None:
    with override_settings(SESSION_ENGINE=case.engine):
        call_command(case.command, *case.options, stdout=StringIO())


def seconds_taken(case: Case) -> float:
    start = perf_counter()
    run_command(case)
    return perf_counter() - start


def peak_megabytes(case: Case) -> float:
    tracemalloc.start()
    try:
        run_command(case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def run_round(
    snapshot: Snapshot, count: int, order: Sequence[Case], measure: Callable[[Case], float]
) -> dict[str, float]:
    snapshot.restore()
    measured = {}
    for case in order:
        checkpoint()
        measured[case.label] = measure(case)
        check(case, (count, 0))
    return measured


def checkpoint() -> None:
    """On PostgreSQL, write out what the restore and the previous command left dirty
    (``CHECKPOINT``), so that no command pays for flushing another's writes. Needs a
    superuser (or, from PostgreSQL 15, the role ``pg_checkpoint``); without one, the
    commands run as they come."""
    if connection.vendor != "postgresql":
        return
    with suppress(DatabaseError):
        execute("CHECKPOINT")


def benchmark(count: int, rounds: int, measured: Sequence[Case]) -> list[Result]:
    start = perf_counter()
    store_our_sessions(count)
    store_django_sessions(count)
    for case in measured:
        check(case, (2 * count, count))
    snapshot = Snapshot.take()
    say(f"  stored in {perf_counter() - start:.0f} s")
    results = {case.label: Result(case.label, case.command) for case in measured}
    for number in range(rounds):
        order = [*measured[number % len(measured) :], *measured[: number % len(measured)]]
        for label, seconds in run_round(snapshot, count, order, seconds_taken).items():
            results[label].seconds.append(seconds)
        say(f"  timed round {number + 1} of {rounds}")
    for label, peak in run_round(snapshot, count, measured, peak_megabytes).items():
        results[label].peak_mb = peak
    say("  traced the memory")
    return list(results.values())


# -- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: str
    limit: str
    passed: bool


def verdicts(results: Sequence[Result]) -> list[Verdict]:
    by_label = {result.label: result for result in results}
    ours, theirs = by_label[OURS_DB.label], by_label[DJANGO_DB.label]
    ratio = ours.median_seconds / theirs.median_seconds
    judged = [Verdict("ours db / django db: seconds", f"{ratio:.2f}x", "≤ 1.00x", ratio <= 1)]
    judged += [
        Verdict(
            f"{result.label}: peak memory",
            f"{result.peak_mb:.1f} MB",
            f"< {MEMORY_LIMIT_MB:.0f} MB",
            result.peak_mb < MEMORY_LIMIT_MB,
        )
        for result in results
        if result.label != DJANGO_DB.label
    ]
    return judged


def results_table(results: Sequence[Result]) -> str:
    return report.table(
        ["engine", "command", "seconds (median)", "rounds", "peak MB (tracemalloc)"],
        [
            [
                result.label,
                result.command,
                f"{result.median_seconds:.3f}",
                " ".join(f"{seconds:.3f}" for seconds in result.seconds),
                f"{result.peak_mb:.2f}",
            ]
            for result in results
        ],
    )


def verdicts_table(judged: Sequence[Verdict]) -> str:
    return report.table(
        ["target", "measured", "limit", "verdict"],
        [[v.name, v.measured, v.limit, "PASS" if v.passed else "FAIL"] for v in judged],
    )


def to_json(environment: dict[str, str], count: int, results: Sequence[Result]) -> dict[str, Any]:
    return {
        "environment": environment,
        "sessions": {"expired": count, "live": count},
        "results": [
            {**asdict(result), "median_seconds": result.median_seconds} for result in results
        ],
        "verdicts": [asdict(verdict) for verdict in verdicts(results)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    count = QUICK if arguments.quick else FULL
    database, origin = database_from_environment()
    backends = Backends(database, origin, redis_url())
    with tempfile.TemporaryDirectory(prefix="secure-sessions-cleanup-") as workdir:
        settings.configure(**django_settings(backends, Path(workdir)))
        django.setup()
        from benchmarks.run import benchmark_storage

        with benchmark_storage(backends.redis_url):
            environment = report.environment(backends)
            lines = "\n".join(f"{key}: {value}" for key, value in environment.items())
            say(report.section("Environment", lines))
            say(f"\nRemoving {count:,} expired sessions among {2 * count:,}, per engine ...")
            results = benchmark(count, arguments.rounds, cases(arguments.batch_size))
    judged = verdicts(results)
    say(report.section("Cleanup", results_table(results)))
    say(report.section("Targets", verdicts_table(judged)))
    say(
        f"\n{sum(v.passed for v in judged)} of {len(judged)} targets met "
        "(informational: the exit status ignores it)"
    )
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(to_json(environment, count, results), indent=2) + "\n")
        say(f"Results written to {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
