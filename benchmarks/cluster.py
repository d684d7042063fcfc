"""The Redis engine on Redis Cluster against the same engine on a single Redis server, and
against Django's cache engine on the same cluster, in the same run: load, update (a load
and a save), revoking all of a user's sessions, and the first load of a session imported
from Django's engines (on the cluster, under a new key: its old key's load looks for the
alias first, see backends/aliases.py).

    python benchmarks/cluster.py [--quick] [--port PORT]

It starts its own servers, stopped at the end (tests/redis_server.py's helpers, as the
test suite does): a single ``redis-server`` on ``PORT`` and a cluster of three primaries on
the three ports after it (each also takes its port + 10000 for the cluster bus); free
ports when ``--port`` is not given. Needs ``redis-server`` and ``redis-cli``; no database.
The setups are measured in alternating blocks (each with its warm-up), and a median is
the median of the blocks' medians.

On a cluster, each operation still costs its one round trip (to the primary of the
session's slot); what differs is the cluster client's work of routing a command (its key's
slot, the node for it). Django's cache engine reaches Redis through django-redis, which
has no cluster client: it is tried, and the error it meets is reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in {None, ""}:
    # Run as a script: make the repository root importable, for `benchmarks` and `tests`.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import functools
import secrets
import shutil
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from typing import Any, Final

import django
from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.test import override_settings
from django.utils.crypto import get_random_string

from benchmarks.timing import Plan, Summary, measure, time_call
from benchmarks.workloads import load, payload, update
from tests.redis_server import (
    RedisClusterServers,
    RedisServer,
    cluster_port_pair,
    start_cluster,
    start_throwaway,
)

OURS: Final = "django_secure_sessions.backends.redis"
DJANGOS: Final = "django.contrib.sessions.backends.cache"
# Each setup: its engine, and the cache it reaches Redis through.
SETUPS: Final = {
    "ours, single server": (OURS, "single"),
    "ours, cluster": (OURS, "cluster"),
    "django cache, cluster": (DJANGOS, "cluster"),
}
BASELINE: Final = "ours, single server"
POOL: Final = 200
REVOKED_USER: Final = 1000
IMPORTED_USER: Final = 2000
USER_SESSIONS: Final = 5
BLOCKS: Final = 5


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run")
    parser.add_argument("--port", type=int, help="the single server's port (the cluster's follow)")
    return parser.parse_args(argv)


@contextmanager
def servers(port: int | None) -> Iterator[tuple[RedisServer, RedisClusterServers]]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("No redis-server on PATH.")
    port = cluster_port_pair() if port is None else port
    single = start_throwaway(executable, "the benchmark's single server", port=port)
    cluster = start_cluster(first_port=port + 1)
    try:
        for problem in (single.unavailable, cluster.unavailable):
            if problem is not None:
                raise SystemExit(problem)
        yield single, cluster
    finally:
        single.stop()
        cluster.stop()


def configure(single: RedisServer, cluster: RedisClusterServers) -> None:
    options = {"SOCKET_CONNECT_TIMEOUT": 5, "SOCKET_TIMEOUT": 5}
    backend = "django_redis.cache.RedisCache"
    settings.configure(
        # A throwaway secret: nothing signed here outlives the run.
        SECRET_KEY=secrets.token_urlsafe(50),
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_secure_sessions",
        ],
        CACHES={
            "single": {"BACKEND": backend, "LOCATION": single.url, "OPTIONS": options},
            "cluster": {"BACKEND": backend, "LOCATION": cluster.urls, "OPTIONS": options},
        },
        USE_TZ=True,
    )
    django.setup()


def store_class() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore


def new_session(store: Any, user_id: int) -> str:
    session = store()
    session.update(payload(user_id))
    session.save()
    key: str = session.session_key
    return key


def first_load(store: Any, key: str, number: int) -> None:
    load(store, key)


def first_load_of_imports(rounds: int) -> Summary:
    """The first load through the key of a session of Django's engines, imported afresh,
    untimed, before each call (``importsessions``'s own call)."""
    store = store_class()
    samples = []
    for _ in range(rounds):
        old_key = get_random_string(32, VALID_KEY_CHARS)
        store.import_session(old_key, payload(IMPORTED_USER), int(time.time()) + 3600)
        samples.append(time_call(functools.partial(first_load, store, old_key), 0))
    return Summary.of(samples)


def revoke_all(rounds: int) -> Summary:
    """Revoking all of a user's ``USER_SESSIONS`` sessions (the engine's own call under
    ``revoke_user_sessions``), made afresh, untimed, before each call."""
    store = store_class()
    samples = []
    for _ in range(rounds):
        for _ in range(USER_SESSIONS):
            new_session(store, REVOKED_USER)
        samples.append(time_call(lambda number: store.remove_user_sessions(str(REVOKED_USER)), 0))
    return Summary.of(samples)


@contextmanager
def setup(name: str) -> Iterator[Any]:
    """Inside: the settings of the setup ``name``; gives its store class."""
    engine, alias = SETUPS[name]
    cluster = alias == "cluster"
    with override_settings(
        SESSION_ENGINE=engine, SESSION_CACHE_ALIAS=alias, SECURE_SESSIONS_REDIS_CLUSTER=cluster
    ):
        yield store_class()


def make_pools() -> dict[str, list[str] | str]:
    """Each setup's sessions to load and update, or, for one that can't work, the error
    it met."""
    pools: dict[str, list[str] | str] = {}
    for name in SETUPS:
        with setup(name) as store:
            try:
                pools[name] = [new_session(store, 1001 + n) for n in range(POOL)]
            except Exception as error:  # whatever a setup that cannot work raises
                pools[name] = f"fails: {type(error).__name__}: {str(error)[:120]}"
    return pools


def measure_block(name: str, pool: list[str], plan: Plan) -> dict[str, Summary]:
    with setup(name) as store:
        results = measure(
            {
                "load": lambda number: load(store, pool[number % POOL]),
                "update (load + save)": lambda number: update(store, pool[number % POOL]),
            },
            plan,
        )
        if SETUPS[name][0] == OURS:
            results[f"revoke all ({USER_SESSIONS} sessions)"] = revoke_all(plan.rounds // 5)
            results["first load, imported"] = first_load_of_imports(plan.rounds // 5)
    return results


def combined(blocks: list[dict[str, Summary]]) -> dict[str, Summary]:
    """The median of the blocks' medians and of their p95s, per operation."""
    return {
        operation: Summary(
            statistics.median(block[operation].median for block in blocks),
            statistics.median(block[operation].p95 for block in blocks),
            sum(block[operation].samples for block in blocks),
        )
        for operation in blocks[0]
    }


def run(plan: Plan) -> dict[str, dict[str, Summary] | str]:
    """The setups measured in ``BLOCKS`` alternating blocks, so that a burst of load on
    the machine hits them alike."""
    pools = make_pools()
    working = {name: pool for name, pool in pools.items() if not isinstance(pool, str)}
    blocks: dict[str, list[dict[str, Summary]]] = {name: [] for name in working}
    block_plan = Plan(rounds=plan.rounds // BLOCKS, warmup=plan.warmup)
    for _ in range(BLOCKS):
        for name, pool in working.items():
            blocks[name].append(measure_block(name, pool, block_plan))
    results: dict[str, dict[str, Summary] | str] = {}
    for name, found in pools.items():
        results[name] = found if isinstance(found, str) else combined(blocks[name])
    return results


def report(results: dict[str, dict[str, Summary] | str]) -> None:
    baseline = results[BASELINE]
    if isinstance(baseline, str):
        raise SystemExit(f"{BASELINE}: {baseline}")
    print(f"{'operation':<24} {'setup':<24} {'median µs':>10} {'p95 µs':>10} {'ratio':>7}")
    for operation, base in baseline.items():
        for name, measured in results.items():
            if not isinstance(measured, str) and operation in measured:
                summary = measured[operation]
                print(
                    f"{operation:<24} {name:<24} {summary.median:>10.1f} {summary.p95:>10.1f}"
                    f" {summary.median / base.median:>6.2f}x"
                )
    for name, measured in results.items():
        if isinstance(measured, str):
            print(f"{name}: {measured}")
    print(f"ratio: median against {BASELINE!r}.")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    plan = Plan(rounds=200, warmup=20) if arguments.quick else Plan(rounds=2000, warmup=100)
    with servers(arguments.port) as (single, cluster):
        configure(single, cluster)
        results = run(plan)
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
