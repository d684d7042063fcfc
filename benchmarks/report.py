"""The report: environment, timing tables, ratios against the targets, JSON."""

from __future__ import annotations

import os
import platform
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Final

import django
import redis
from django.db import connection

from benchmarks.settings import Backends
from benchmarks.timing import Summary
from benchmarks.workloads import (
    DJANGO_CACHE,
    DJANGO_CACHED_DB,
    DJANGO_DB,
    OPERATIONS,
    OURS_DB,
    OURS_REDIS,
    Engine,
    RoundTrips,
    redis_client,
)

# Results per case label ("ours redis"), then per operation ("load").
Results = Mapping[str, Mapping[str, Summary]]

REVOCATION_GROWTH_LIMIT: Final = 1.5

# The request benchmark's two cases per engine, and its target.
WITHOUT: Final = "without ours"
WITH: Final = "with ours"
REQUEST_RATIO_LIMIT: Final = 1.10

_DATABASE_VERSION_QUERIES: Final = {
    "postgresql": "SHOW server_version",
    "sqlite": "SELECT sqlite_version()",
}


def environment(backends: Backends) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(_DATABASE_VERSION_QUERIES.get(connection.vendor, "SELECT 'unknown'"))
        (database_version,) = cursor.fetchone() or ("unknown",)
    hiredis = redis.utils.HIREDIS_AVAILABLE
    return {
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "Django": django.get_version(),
        "django-redis": version("django-redis"),
        "redis-py": redis.__version__,
        "hiredis": f"yes ({version('hiredis')})" if hiredis else "no",
        "database": f"{connection.vendor} {database_version}, "
        f"{connection.settings_dict['NAME']} ({backends.database_origin})",
        "Redis": f"{redis_client().info('server')['redis_version']}, {backends.redis_url}",
    }


# -- text tables -------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others, columns sized to fit."""
    lines = [header, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]

    def render(line: Sequence[str]) -> str:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in rows)])


def section(title: str, body: str) -> str:
    return f"\n{title}\n{'=' * len(title)}\n{body}"


def microseconds(summary: Summary) -> str:
    return f"{summary.median:,.0f} / {summary.p95:,.0f}"


def timings_table(results: Results) -> str:
    rows = [
        [label, *(microseconds(by_op[op]) for op in OPERATIONS)] for label, by_op in results.items()
    ]
    return table(["µs per op: median / p95", *OPERATIONS], rows)


def floors_table(floors: Mapping[str, Summary]) -> str:
    return table(
        ["one round trip", "µs: median / p95"],
        [[label, microseconds(summary)] for label, summary in floors.items()],
    )


def round_trips_table(counts: Mapping[str, Mapping[str, RoundTrips]]) -> str:
    rows = [[label, *(str(by_op[op]) for op in OPERATIONS)] for label, by_op in counts.items()]
    return table(["round trips per op", *OPERATIONS], rows)


# -- targets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Ours against Django's; ``limits`` per operation (None: for information only)."""

    ours: Engine
    theirs: Engine
    limits: Mapping[str, float] | None

    @property
    def label(self) -> str:
        return f"{self.ours.label} / {self.theirs.label}"


COMPARISONS: Final = (
    # A request that changes nothing is a load: it gets the load's target.
    Comparison(
        OURS_REDIS, DJANGO_CACHE, {"create": 1.2, "load": 1.0, "update": 1.2, "no-change": 1.0}
    ),
    Comparison(OURS_DB, DJANGO_DB, dict.fromkeys(OPERATIONS, 1.15)),
    Comparison(OURS_DB, DJANGO_CACHED_DB, None),
    Comparison(OURS_REDIS, DJANGO_CACHED_DB, None),
)


@dataclass(frozen=True)
class Verdict:
    """A ratio against its limit; ``passed`` is None for a ratio given for information."""

    name: str
    ratio: float
    limit: float | None
    passed: bool | None

    @classmethod
    def judge(cls, name: str, ratio: float, limit: float | None) -> Verdict:
        return cls(name, ratio, limit, None if limit is None else ratio <= limit)

    def __str__(self) -> str:
        if self.limit is None:
            return f"{self.ratio:.2f}x"
        return f"{self.ratio:.2f}x ≤{self.limit:.2f} {'PASS' if self.passed else 'FAIL'}"


def ratio_verdicts(results: Results) -> list[Verdict]:
    verdicts = []
    for comparison in COMPARISONS:
        ours, theirs = results[comparison.ours.label], results[comparison.theirs.label]
        for op in OPERATIONS:
            limit = None if comparison.limits is None else comparison.limits[op]
            ratio = ours[op].median / theirs[op].median
            verdicts.append(Verdict.judge(f"{comparison.label}: {op}", ratio, limit))
    return verdicts


def ratios_table(verdicts: Sequence[Verdict]) -> str:
    by_name = {verdict.name: verdict for verdict in verdicts}
    rows = [
        [comparison.label, *(str(by_name[f"{comparison.label}: {op}"]) for op in OPERATIONS)]
        for comparison in COMPARISONS
    ]
    return table(["median ratio", *OPERATIONS], rows)


def revocation_verdicts(
    timings: Mapping[int, Mapping[str, Summary]], judged: Collection[str]
) -> list[Verdict]:
    """How each column grows from the smallest total of sessions to the largest; only
    the ``judged`` ones have a limit (the floors show how the machine itself varied)."""
    smallest, largest = min(timings), max(timings)
    return [
        Verdict.judge(
            f"{label}: revocation at {largest:,} / at {smallest:,} sessions",
            timings[largest][label].median / summary.median,
            REVOCATION_GROWTH_LIMIT if label in judged else None,
        )
        for label, summary in timings[smallest].items()
    ]


def revocation_table(
    timings: Mapping[int, Mapping[str, Summary]], growth: Sequence[Verdict]
) -> str:
    labels = list(timings[min(timings)])
    rows = [
        [f"{total:,} sessions", *(microseconds(by_label[label]) for label in labels)]
        for total, by_label in timings.items()
    ]
    rows.append(["growth", *(str(verdict) for verdict in growth)])
    return table(["revoke 5 sessions; floors. µs: median / p95", *labels], rows)


def request_verdicts(timings: Mapping[str, Mapping[str, Summary]]) -> list[Verdict]:
    return [
        Verdict.judge(
            f"{label}: request with / without our middleware",
            by_case[WITH].median / by_case[WITHOUT].median,
            REQUEST_RATIO_LIMIT,
        )
        for label, by_case in timings.items()
    ]


def requests_table(
    timings: Mapping[str, Mapping[str, Summary]],
    verdicts: Sequence[Verdict],
    written_while_timed: Mapping[str, bool],
) -> str:
    by_name = {verdict.name: verdict for verdict in verdicts}
    rows = [
        [
            label,
            microseconds(by_case[WITHOUT]),
            microseconds(by_case[WITH]),
            str(by_name[f"{label}: request with / without our middleware"]),
            "yes" if written_while_timed[label] else "no",
        ]
        for label, by_case in timings.items()
    ]
    header = ["µs per request: median / p95", WITHOUT, WITH, "with / without", "activity written"]
    return table(header, rows)


def summary_line(verdicts: Sequence[Verdict]) -> str:
    judged = [verdict for verdict in verdicts if verdict.passed is not None]
    failed = [verdict.name for verdict in judged if not verdict.passed]
    if not failed:
        return f"All {len(judged)} targets met."
    return f"{len(failed)} of {len(judged)} targets missed: " + "; ".join(failed)
