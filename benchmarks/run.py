"""Our session engines against Django's, side by side on the same Redis and database.

Usage: ``python benchmarks/run.py [--quick] [--json FILE]`` (or ``make bench``); see
README.md for what is measured and ``benchmarks/settings.py`` for the environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in {None, ""}:
    # Run as a script: make the repository root importable, for `benchmarks` and `tests`.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Final, TypeVar

import django
import redis
from django.conf import settings
from django.db import connection

from benchmarks import report
from benchmarks.settings import Backends, backends_from_environment, django_settings
from benchmarks.timing import Operation, Plan, Summary, measure
from benchmarks.workloads import (
    ENGINES,
    PAYLOADS,
    RoundTrips,
    floors,
    make_pool,
    operations,
    round_trips,
)

if TYPE_CHECKING:
    from benchmarks.middleware_requests import RequestResults
    from benchmarks.revocation import RevocationResult


@dataclass(frozen=True)
class Scale:
    plan: Plan
    pool: int  # existing sessions per engine, for load, update and no-change
    revocation_totals: tuple[int, ...]
    revocation_repeats: int


FULL: Final = Scale(Plan(rounds=1000, warmup=50), 200, (1_000, 100_000), 60)
QUICK: Final = Scale(Plan(rounds=150, warmup=10), 50, (1_000, 10_000), 15)

FLOOR: Final = "floor"

Value = TypeVar("Value")


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="fewer calls and 10k sessions: a smoke run"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


# -- storage -------------------------------------------------------------------------------


@contextmanager
def benchmark_storage(redis_url: str) -> Iterator[redis.Redis]:
    """A database of our own for the run, and the Redis database emptied at the end."""
    client = redis.Redis.from_url(redis_url)
    if not client.connection_pool.connection_kwargs.get("db"):
        raise SystemExit(f"{redis_url}: the benchmark never uses (and flushes) database 0.")
    try:
        stored = client.dbsize()
    except redis.ConnectionError as exc:
        raise SystemExit(f"Redis at {redis_url} does not answer ({exc}); set REDIS_URL.") from exc
    if stored:
        raise SystemExit(
            f"The Redis database {redis_url} is not empty, and the benchmark flushes it at the "
            "end: empty it, or name another database in REDIS_URL."
        )
    try:
        name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            yield client
        finally:
            connection.creation.destroy_test_db(name, verbosity=0)
    finally:
        client.flushdb()


def empty_storage(client: redis.Redis) -> None:
    from django.contrib.sessions.models import Session

    from django_secure_sessions.models import SecureSession

    client.flushdb()
    Session.objects.all().delete()
    SecureSession.objects.all().delete()


# -- the benchmarks ----------------------------------------------------------------------


def engine_cases(pool_size: int) -> dict[tuple[str, str], Operation]:
    cases = {}
    for engine in ENGINES:
        pool = make_pool(engine, pool_size)
        for op, operation in operations(engine, pool).items():
            cases[engine.label, op] = operation
    for label, operation in floors().items():
        cases[label, FLOOR] = operation
    return cases


def by_label(measured: Mapping[tuple[str, str], Value]) -> dict[str, dict[str, Value]]:
    grouped: dict[str, dict[str, Value]] = {}
    for (label, op), value in measured.items():
        grouped.setdefault(label, {})[op] = value
    return grouped


@dataclass(frozen=True)
class OperationResults:
    timings: dict[str, dict[str, Summary]]
    floors: dict[str, Summary]
    round_trips: dict[str, dict[str, RoundTrips]]
    verdicts: list[report.Verdict]


def operations_benchmark(scale: Scale) -> OperationResults:
    cases = engine_cases(scale.pool)
    plan = scale.plan
    say(
        f"\nTiming {len(cases)} cases: {plan.warmup} warm-up calls each, then {plan.rounds} "
        "rounds of one call of each, in a new order every round ..."
    )
    measured = measure(cases, plan)
    floors_measured = {label: summary for (label, op), summary in measured.items() if op == FLOOR}
    timings = by_label({key: summary for key, summary in measured.items() if key[1] != FLOOR})
    counts = by_label(
        {key: round_trips(operation) for key, operation in cases.items() if key[1] != FLOOR}
    )
    verdicts = report.ratio_verdicts(timings)
    say(report.section("Time per operation", report.timings_table(timings)))
    say(report.section("Floor", report.floors_table(floors_measured)))
    say(report.section("Round trips", report.round_trips_table(counts)))
    say(report.section("Ours / Django's", report.ratios_table(verdicts)))
    return OperationResults(timings, floors_measured, counts, verdicts)


def request_benchmark(scale: Scale) -> RequestResults:
    from benchmarks import middleware_requests as requests  # needs the app registry

    plan = scale.plan
    say(
        f"\nRequests through the middleware stack, with and without ours, on "
        f"{' and '.join(engine.label for engine in requests.ENGINES)}: {plan.warmup} warm-up "
        f"requests each, then {plan.rounds} rounds of one of each, in a new order every round ..."
    )
    results = requests.request_benchmark(plan)
    timed = results.timings
    say(
        report.section(
            "Authenticated request, nothing changed",
            report.requests_table(timed.timings, results.verdicts, timed.written_while_timed),
        )
    )
    say(
        f"(timed rounds: {timed.seconds:.1f} s; activity is written at most once per "
        f"ACTIVITY_RESOLUTION, {results.writes[0].resolution} s)"
    )
    writes = results.writes[0]
    say(
        f"\nActivity writes: {writes.requests:,} requests {writes.seconds_apart} s apart "
        "(simulated time), with ours"
    )
    for count in results.writes:
        say(f"  {count.engine}: {count} {'PASS' if count.passed else 'FAIL'}")
    return results


@dataclass(frozen=True)
class RevocationResults:
    runs: list[RevocationResult]
    verdicts: list[report.Verdict]


def revocation_benchmark(scale: Scale) -> RevocationResults:
    from benchmarks import revocation  # needs the app registry

    say(
        f"\nRevocation: {revocation.REVOKED_USER_SESSIONS} sessions of one user among "
        f"{' then '.join(f'{total:,}' for total in scale.revocation_totals)} in all, "
        f"{scale.revocation_repeats} runs each ..."
    )
    runs = revocation.revocation_benchmark(scale.revocation_totals, scale.revocation_repeats)
    for result in runs:
        say(f"  stored {result.total_sessions:,} sessions in {result.seconds_to_populate:.1f} s")
    timings = {result.total_sessions: {**result.by_engine, **result.floors} for result in runs}
    growth = report.revocation_verdicts(timings, judged=[e.label for e in revocation.ENGINES])
    say(report.section("revoke_user_sessions", report.revocation_table(timings, growth)))
    return RevocationResults(runs, growth)


@dataclass(frozen=True)
class Results:
    environment: dict[str, str]
    scale: Scale
    payload_bytes: int
    operations: OperationResults
    requests: RequestResults
    revocation: RevocationResults


def run(backends: Backends, scale: Scale, client: redis.Redis) -> Results:
    environment = report.environment(backends)
    say(report.section("Environment", "\n".join(f"{k}: {v}" for k, v in environment.items())))
    payload_bytes = len(json.dumps(PAYLOADS[0], separators=(",", ":")))
    say(f"payload: {payload_bytes} bytes of JSON")
    operations = operations_benchmark(scale)
    empty_storage(client)
    requests = request_benchmark(scale)
    empty_storage(client)
    revocation = revocation_benchmark(scale)
    verdicts = operations.verdicts + requests.verdicts + revocation.verdicts
    say(f"\n{report.summary_line(verdicts)} (informational: the exit status ignores it)")
    return Results(environment, scale, payload_bytes, operations, requests, revocation)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    scale = QUICK if arguments.quick else FULL
    backends = backends_from_environment()
    with tempfile.TemporaryDirectory(prefix="secure-sessions-benchmark-") as workdir:
        settings.configure(**django_settings(backends, Path(workdir)))
        django.setup()
        with benchmark_storage(backends.redis_url) as client:
            results = run(backends, scale, client)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(asdict(results), indent=2) + "\n")
        say(f"Results written to {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
