"""The load benchmark: a small project served by gunicorn and uvicorn, driven over HTTP by
many signed-in users, on every configuration in the same run: Django's engines, the peers
(django-user-sessions, django-qsessions) and ours.

Usage: ``python benchmarks/load.py [--quick | --tiny] [--only LABEL ...] [--json FILE]
[--readme FILE]`` (``make bench`` runs it); README.md says what is measured and how.
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
import platform
import random
import secrets
import shutil
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Final

import django
import redis
from django.conf import settings

from benchmarks import report
from benchmarks.load_project import (
    CONFIGURATIONS,
    DJANGO_CACHE,
    DJANGO_DB,
    OURS_DB,
    OURS_REDIS,
    PASSWORD,
    QSESSIONS,
    USER_SESSIONS,
    Configuration,
    project_settings,
    served_environment,
    username,
)
from benchmarks.load_servers import KINDS, Kind, Server, start
from benchmarks.load_storage import (
    Postgres,
    RedisWrites,
    Writes,
    clone,
    databases,
    migrate,
    wait_for_statistics,
)
from benchmarks.load_traffic import (
    MIXED,
    UNCHANGED,
    Pass,
    SignInError,
    Traffic,
    Visitor,
    sign_in_all,
)
from benchmarks.load_traffic import run as drive
from benchmarks.settings import database_from_environment
from tests.redis_server import free_port, start_throwaway

ROOT: Final = Path(__file__).resolve().parent.parent
README: Final = ROOT / "benchmarks" / "README.md"
TABLE_START: Final = "<!-- load table: start -->"
TABLE_END: Final = "<!-- load table: end -->"

# Ours against Django's engine on the same store, and against the peers.
GOAL: Final = 1.10


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    per_user: int  # requests of each user per timed pass
    rounds: int
    concurrency: int  # requests in flight
    time_limit: float  # seconds per pass at most
    unchanged_per_user: int  # requests of each user when counting writes


FULL: Final = Scale(
    "full", users=200, per_user=2, rounds=8, concurrency=4, time_limit=60, unchanged_per_user=2
)
QUICK: Final = Scale(
    "quick", users=40, per_user=3, rounds=3, concurrency=4, time_limit=15, unchanged_per_user=1
)
# The smallest run that goes through every step: for the test of the benchmark itself.
TINY: Final = Scale(
    "tiny", users=5, per_user=1, rounds=1, concurrency=2, time_limit=15, unchanged_per_user=1
)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="50 users, 3 rounds: under 2 minutes")
    size.add_argument("--tiny", action="store_true", help="a few requests: does it work?")
    parser.add_argument(
        "--only",
        action="append",
        metavar="LABEL",
        choices=[c.label for c in CONFIGURATIONS],
        help="serve only this configuration (repeatable)",
    )
    parser.add_argument("--rounds", type=int, help="this many timed rounds instead")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument(
        "--readme", type=Path, metavar="FILE", help="write the table into FILE (full runs only)"
    )
    parser.add_argument(
        "--first-port", type=int, default=0, help="servers on this port and the next ones"
    )
    parser.add_argument("--redis-port", type=int, default=0, help="for the benchmark's Redis")
    parser.add_argument(
        "--database-prefix",
        default=f"secure_sessions_load_{os.getpid()}",
        help="names of the benchmark's databases (prefix_template, prefix_<configuration>)",
    )
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


# -- setting up ---------------------------------------------------------------------------


@dataclass
class Run:
    """What one run sets up, and what each configuration has come to."""

    postgres: Postgres
    redis_url: str  # the benchmark's Redis server, without a database
    secret_key: str
    scale: Scale
    unavailable: dict[str, str] = field(default_factory=dict)  # label -> why "n/a"

    def redis_database(self, configuration: Configuration) -> str:
        # A database per configuration (1 to 7), so none reads another's sessions.
        return f"{self.redis_url}/{CONFIGURATIONS.index(configuration) + 1}"

    def environment(
        self, configuration: Configuration, kind: Kind | None, database: str | None = None
    ) -> dict[str, str]:
        """Of a process serving ``configuration`` (or, with no ``kind``, running a command),
        on its database or on ``database``."""
        return {
            **os.environ,
            **served_environment(
                configuration,
                database_url=self.postgres.url(database or self.postgres.name(configuration)),
                redis_url=self.redis_database(configuration),
                secret_key=self.secret_key,
                async_views=kind is not None and kind.async_views,
            ),
        }

    def mark(self, configuration: Configuration, why: str) -> None:
        self.unavailable.setdefault(configuration.label, why)
        say(f"  {configuration.label}: n/a: {why}")


def make_template(run: Run, configurations: Sequence[Configuration]) -> None:
    """Every configuration's tables and the users, in the template database."""
    template = run.postgres.name(None)
    setup = project_settings(
        DJANGO_DB,
        database_url=run.postgres.url(template),
        redis_url=run.redis_database(DJANGO_DB),
        secret_key=run.secret_key,
        async_views=False,
    )
    setup["DATABASES"]["default"]["OPTIONS"] = {}  # no pool: the template is copied next
    settings.configure(**setup)
    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    # One hash for all (same password): hashing is not what is measured.
    password = make_password(PASSWORD)  # with the project's one, fast, hasher
    User.objects.bulk_create(
        User(username=username(n), password=password) for n in range(run.scale.users)
    )
    connection.close()
    migrated = {tuple(DJANGO_DB.installed_apps)}
    for configuration in configurations:
        apps = tuple(configuration.installed_apps)
        if apps in migrated:
            continue
        environment = run.environment(configuration, None, database=template)
        if (problem := migrate(configuration, environment, ROOT)) is not None:
            run.mark(configuration, f"migrate failed: {problem}")
        else:
            migrated.add(apps)
    for configuration in configurations:
        if configuration.label not in run.unavailable:
            clone(run.postgres, configuration)


@contextmanager
def serving(
    run: Run, configurations: Sequence[Configuration], first_port: int, logs: Path
) -> Iterator[dict[Configuration, dict[Kind, Server]]]:
    """Both servers of every configuration, all started at once; those that answer."""
    servers: list[Server] = []
    try:
        for configuration in configurations:
            for kind in KINDS:
                port = first_port + len(servers) if first_port else free_port()
                log = logs / f"{configuration.slug}-{kind.name}.log"
                environment = run.environment(configuration, kind)
                servers.append(
                    start(
                        kind,
                        configuration=configuration,
                        port=port,
                        environment=environment,
                        log_path=log,
                        root=ROOT,
                    )
                )
        ready: dict[Configuration, dict[Kind, Server]] = {}
        for server in servers:
            if (problem := server.wait_until_ready()) is not None:
                run.mark(server.configuration, f"{server.kind.name} did not start: {problem}")
            else:
                ready.setdefault(server.configuration, {})[server.kind] = server
        yield {
            configuration: by_kind
            for configuration, by_kind in ready.items()
            if configuration.label not in run.unavailable
        }
    finally:
        for server in servers:
            server.stop()


def signed_in(run: Run, servers: Mapping[Kind, Server]) -> list[Visitor] | None:
    """Every user signed in (through the first server: both share the storage)."""
    server = next(iter(servers.values()))
    usernames = [username(n) for n in range(run.scale.users)]
    try:
        return sign_in_all(server.base_url, usernames, run.scale.concurrency)
    except SignInError as error:
        run.mark(server.configuration, f"sign-in failed: {error}; {server.log_tail(2)}")
        return None


# -- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Medians over the rounds of one configuration on one server."""

    throughput: float  # requests per second
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    first_error: str | None

    @classmethod
    def of(cls, passes: Sequence[Pass]) -> Measured:
        errors = [p.first_error for p in passes if p.first_error]
        return cls(
            statistics.median(p.throughput for p in passes),
            statistics.median(p.percentile(50) for p in passes),
            statistics.median(p.percentile(99) for p in passes),
            sum(p.requests for p in passes),
            sum(p.errors for p in passes),
            errors[0] if errors else None,
        )


Served = Mapping[Configuration, Mapping[Kind, Server]]


class WriteCount:
    """The storage writes of each configuration over the passes driven through it: rows
    (from PostgreSQL's statistics, once they are in) and Redis write commands (counted
    around each pass: one pass runs at a time)."""

    def __init__(
        self,
        run: Run,
        redis_writes: RedisWrites,
        served: Served,
        rows_before: dict[Configuration, int] | None = None,
    ) -> None:
        self.run, self.redis_writes, self.served = run, redis_writes, served
        self.rows_before = self._rows() if rows_before is None else rows_before
        self.redis: dict[Configuration, Counter[str]] = {c: Counter() for c in served}
        self.requests = dict.fromkeys(served, 0)
        self.seconds = dict.fromkeys(served, 0.0)

    def _rows(self) -> dict[Configuration, int]:
        wait_for_statistics()  # for the counts of what came before
        postgres = self.run.postgres
        return {c: postgres.rows_written(postgres.name(c)) for c in self.served}

    def drive(self, server: Server, visitors: list[Visitor], traffic: Traffic, seed: int) -> Pass:
        before = self.redis_writes.count()
        result = drive(server.base_url, visitors, traffic, seed)
        configuration = server.configuration
        self.redis[configuration] += self.redis_writes.count() - before
        self.requests[configuration] += result.requests
        self.seconds[configuration] += result.seconds
        return result

    def end(self) -> tuple[dict[str, Writes], WriteCount]:
        """The writes counted, and a count that starts here."""
        rows = self._rows()
        writes = {
            c.label: Writes(
                rows[c] - self.rows_before[c],
                dict(self.redis[c]),
                self.requests[c],
                self.seconds[c],
            )
            for c in self.served
        }
        return writes, WriteCount(self.run, self.redis_writes, self.served, rows)


def timed_rounds(
    run: Run, served: Served, visitors: Mapping[Configuration, list[Visitor]], count: WriteCount
) -> dict[str, dict[str, Measured]]:
    """Rounds of one pass on every server, in a new order every round, so a busy moment
    of the machine hits every configuration alike."""
    scale = run.scale
    traffic = Traffic(MIXED, scale.per_user, scale.concurrency, scale.time_limit)
    pairs = [(c, k) for c, by_kind in served.items() for k in by_kind]
    passes: dict[tuple[Configuration, Kind], list[Pass]] = {pair: [] for pair in pairs}
    order = random.Random(0)  # noqa: S311 - an order, not a secret
    for number in range(1, scale.rounds + 1):
        order.shuffle(pairs)
        for configuration, kind in pairs:
            server = served[configuration][kind]
            passes[configuration, kind].append(
                count.drive(server, visitors[configuration], traffic, seed=number)
            )
        say(f"  round {number} of {scale.rounds} done")
    measured: dict[str, dict[str, Measured]] = {}
    for (configuration, kind), results in passes.items():
        measured.setdefault(configuration.label, {})[kind.name] = Measured.of(results)
    return measured


def warm_up(run: Run, served: Served, visitors: Mapping[Configuration, list[Visitor]]) -> None:
    """One request of each user on every server: every worker has imported what it
    needs and opened its connections."""
    traffic = Traffic(MIXED, 1, run.scale.concurrency, run.scale.time_limit)
    for configuration, by_kind in served.items():
        for server in by_kind.values():
            drive(server.base_url, visitors[configuration], traffic, seed=0)


def unchanged_requests(
    run: Run, served: Served, visitors: Mapping[Configuration, list[Visitor]], count: WriteCount
) -> None:
    """Requests that change nothing, on both servers of each configuration in turn."""
    scale = run.scale
    traffic = Traffic(UNCHANGED, scale.unchanged_per_user, scale.concurrency, scale.time_limit)
    for configuration, by_kind in served.items():
        for server in by_kind.values():
            count.drive(server, visitors[configuration], traffic, seed=0)


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    date: str
    machine: str
    environment: dict[str, str]
    scale: Scale
    measured: dict[str, dict[str, Measured]]  # label -> server -> medians
    mixed_writes: dict[str, Writes]  # over the timed rounds
    unchanged_writes: dict[str, Writes]
    unavailable: dict[str, str]
    verdicts: list[report.Verdict]


def comparisons() -> list[tuple[Configuration, Configuration, float]]:
    """(ours, theirs, limit): within GOAL of Django's engine on the same store, and ahead
    of the peers (both keep their sessions in the database)."""
    same_store = [(OURS_DB, DJANGO_DB, GOAL), (OURS_REDIS, DJANGO_CACHE, GOAL)]
    return same_store + [(OURS_DB, peer, 1.0) for peer in (USER_SESSIONS, QSESSIONS)]


def verdicts(measured: Mapping[str, Mapping[str, Measured]]) -> list[report.Verdict]:
    """p50 as ours / theirs, throughput as theirs / ours: above 1, ours is slower."""
    found = []
    for ours, theirs, limit in comparisons():
        if ours.label not in measured or theirs.label not in measured:
            continue
        for kind in KINDS:
            mine, other = measured[ours.label][kind.name], measured[theirs.label][kind.name]
            name = f"{ours.label} / {theirs.label}, {kind.name}"
            found += [
                report.Verdict.judge(f"{name}: p50", mine.p50_ms / other.p50_ms, limit),
                report.Verdict.judge(
                    f"{name}: throughput (theirs / ours)", other.throughput / mine.throughput, limit
                ),
            ]
    return found


def results_table(results: Results) -> str:
    header = ["configuration", "sessions in"]
    for kind in KINDS:
        header += [f"{kind.name} req/s", "p50 ms", "p99 ms"]
    header += ["writes / 1,000: mixed", "unchanged", "errors"]
    rows = []
    for configuration in CONFIGURATIONS:
        label = configuration.label
        stores = " + ".join(configuration.stores)
        if label in results.unavailable:  # why: under the table
            rows.append([label, stores, *["n/a"] * (len(header) - 2)])
            continue
        if label not in results.measured:
            continue
        row = [label, stores]
        for kind in KINDS:
            m = results.measured[label][kind.name]
            row += [f"{m.throughput:,.0f}", f"{m.p50_ms:.1f}", f"{m.p99_ms:.1f}"]
        errors = sum(m.errors for m in results.measured[label].values())
        writes = [str(w[label]) for w in (results.mixed_writes, results.unchanged_writes)]
        rows.append([*row, *writes, str(errors)])
    return report.table(header, rows)


def ratios_table(results: Results) -> str:
    by_name = {verdict.name: verdict for verdict in results.verdicts}
    rows = []
    for ours, theirs, _ in comparisons():
        row = [f"{ours.label} / {theirs.label}"]
        for kind in KINDS:
            name = f"{ours.label} / {theirs.label}, {kind.name}"
            for measure in ("p50", "throughput (theirs / ours)"):
                verdict = by_name.get(f"{name}: {measure}")
                row.append(str(verdict) if verdict else "n/a")
        rows.append(row)
    header = ["ratio", *(f"{k.name} {m}" for k in KINDS for m in ("p50", "req/s slowdown"))]
    return report.table(header, rows)


def rendered(results: Results) -> str:
    scale = results.scale
    return "\n".join(
        [
            f"{results.date}, {results.machine}.",
            f"{scale.name} run: {scale.users} users, {scale.rounds} rounds of "
            f"{scale.users * scale.per_user:,} requests per configuration and server, "
            f"{scale.concurrency} in flight; medians over the rounds.",
            "",
            results_table(results),
            *(f"{label}: n/a: {why}" for label, why in results.unavailable.items()),
            "",
            ratios_table(results),
            "",
            *redis_breakdown(results),
            report.summary_line(results.verdicts),
        ]
    )


def redis_breakdown(results: Results) -> list[str]:
    """Which write commands Redis ran, and how long each count ran (our activity writes
    come at most once per session per SECURE_SESSIONS_ACTIVITY_RESOLUTION)."""
    lines = []
    for phase, writes in (("mixed", results.mixed_writes), ("unchanged", results.unchanged_writes)):
        for label, counted in writes.items():
            commands = ", ".join(f"{n} {c}" for c, n in sorted(counted.redis_commands.items()))
            lines.append(
                f"{label}, {phase}: {counted.requests:,} requests in {counted.seconds:.0f} s; "
                f"{counted.rows:,} rows written; Redis: {commands or 'no write'}"
            )
    return [*lines, ""]


def write_readme(path: Path, text: str) -> None:
    content = path.read_text()
    start, end = content.index(TABLE_START), content.index(TABLE_END)
    block = f"{TABLE_START}\n```\n{text}\n```\n"
    path.write_text(content[:start] + block + content[end:])


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def environment(client: redis.Redis, postgres: Postgres) -> dict[str, str]:
    packages = {}
    for name in ("gunicorn", "uvicorn", "httpx", "django-user-sessions", "django-qsessions"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    with postgres.connect() as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return {
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "PostgreSQL": str(row[0]) if row else "?",
        "Redis": str(client.info("server")["redis_version"]),
        **packages,
    }


# -- the run ----------------------------------------------------------------------------------


def benchmark(
    run: Run,
    configurations: Sequence[Configuration],
    first_port: int,
    client: redis.Redis,
    logs: Path,
) -> Results:
    for configuration in configurations:
        if (why := configuration.missing()) is not None:
            run.mark(configuration, why)
    available = [c for c in configurations if c.label not in run.unavailable]
    say(f"\nCreating the tables and {run.scale.users} users ...")
    make_template(run, available)
    available = [c for c in available if c.label not in run.unavailable]
    say(f"Starting {len(available) * len(KINDS)} servers ...")
    with serving(run, available, first_port, logs) as served:
        say("Signing every user in on every configuration ...")
        visitors = {}
        for configuration, servers in served.items():
            if (signed := signed_in(run, servers)) is not None:
                visitors[configuration] = signed
        ready = {c: s for c, s in served.items() if c in visitors}
        warm_up(run, ready, visitors)
        count = WriteCount(run, RedisWrites(client), ready)
        say(f"Timing {run.scale.rounds} rounds over {len(ready)} configurations ...")
        measured = timed_rounds(run, ready, visitors, count)
        mixed_writes, count = count.end()
        say("Counting the writes of requests that change nothing ...")
        unchanged_requests(run, ready, visitors, count)
        unchanged_writes, _ = count.end()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Results(
        now,
        machine(),
        environment(client, run.postgres),
        run.scale,
        measured,
        mixed_writes,
        unchanged_writes,
        run.unavailable,
        verdicts(measured),
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    scale = TINY if arguments.tiny else QUICK if arguments.quick else FULL
    if arguments.rounds:
        scale = replace(
            scale, name=f"{scale.name}, {arguments.rounds} rounds", rounds=arguments.rounds
        )
    configurations = [c for c in CONFIGURATIONS if not arguments.only or c.label in arguments.only]
    database, _ = database_from_environment()
    postgres = Postgres(database, arguments.database_prefix)
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("The load benchmark starts a Redis of its own: put redis-server on PATH.")
    port = arguments.redis_port or free_port()
    redis_server = start_throwaway(executable, "the load benchmark's own", port=port)
    with ExitStack() as stack:
        stack.callback(redis_server.stop)
        if redis_server.unavailable is not None:
            raise SystemExit(redis_server.unavailable)
        client = redis.Redis(port=port)
        run = Run(postgres, f"redis://127.0.0.1:{port}", secrets.token_urlsafe(50), scale)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-benchmark-")))
        stack.enter_context(databases(postgres, configurations))
        results = benchmark(run, configurations, arguments.first_port, client, logs)
    text = rendered(results)
    environment_lines = (f"{name}: {value}" for name, value in results.environment.items())
    say(report.section("Load benchmark", "\n".join(environment_lines)))
    say("\n" + text)
    if arguments.readme is not None:
        if scale == FULL:
            write_readme(arguments.readme, text)
            say(f"Table written into {arguments.readme}")
        else:
            say(f"({arguments.readme} keeps the table of the last full run)")
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(asdict(results), indent=2, default=str) + "\n")
        say(f"Results written to {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
