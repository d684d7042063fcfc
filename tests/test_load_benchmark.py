"""The load benchmark (benchmarks/load.py) in its tiniest run: real servers, real storage,
a few requests per configuration, and the writes it counts are the ones that happened.

Needs the ``bench`` extra (gunicorn, uvicorn, httpx), ``redis-server`` on PATH (the
benchmark starts its own) and PostgreSQL (several server processes share the database):
skipped otherwise, saying why, unless ``REQUIRE_BENCH=1`` (CI sets it), which makes that a
failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.live_client import own_database

ROOT = Path(__file__).resolve().parents[1]
# Ours on each store and Django's engine to compare with; five users, so each timed pass
# has one request that writes to the session (benchmarks/load_traffic.py: MIXED).
ONLY = ("django db", "ours db", "ours redis")
USERS = 5
SERVERS = ("gunicorn", "uvicorn")


def missing_parts() -> str | None:
    absent = [
        name for name in ("gunicorn", "uvicorn", "httpx") if not importlib.util.find_spec(name)
    ]
    if absent:
        return f"the bench extra is not installed ({', '.join(absent)}): pip install -e '.[bench]'"
    if shutil.which("redis-server") is None:
        return "no redis-server on PATH for the benchmark's own Redis"
    if connection.vendor != "postgresql":
        return "the load benchmark runs on PostgreSQL (DATABASE_URL=postgres://...)"
    return None


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if (why := missing_parts()) is not None:
        if os.environ.get("REQUIRE_BENCH") == "1":
            pytest.fail(f"REQUIRE_BENCH=1, but {why}")
        pytest.skip(why)
    directory = tmp_path_factory.mktemp("load")
    output = directory / "results.json"
    with own_database(directory) as database_url:  # names the server the benchmark uses
        command = [
            sys.executable,
            "benchmarks/load.py",
            "--tiny",
            *(argument for label in ONLY for argument in ("--only", label)),
            "--database-prefix",
            f"dss_load_{secrets.token_hex(4)}",
            "--json",
            str(output),
        ]
        finished = subprocess.run(  # noqa: S603 - our own command line
            command,
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    loaded: dict[str, Any] = json.loads(output.read_text())
    loaded["stdout"] = finished.stdout
    return loaded


def test_every_configuration_is_served_by_both_servers_without_an_error(
    results: dict[str, Any],
) -> None:
    assert results["unavailable"] == {}
    assert set(results["measured"]) == set(ONLY)
    for label in ONLY:
        for server in SERVERS:
            measured = results["measured"][label][server]
            assert (measured["requests"], measured["errors"]) == (USERS, 0), (label, server)
            assert measured["throughput"] > 0
            assert 0 < measured["p50_ms"] <= measured["p99_ms"]


def test_the_writes_counted_are_the_sessions_written(results: dict[str, Any]) -> None:
    mixed, unchanged = results["mixed_writes"], results["unchanged_writes"]
    # One request of each timed pass (one per server) saves its session: the db engines
    # update one row for it, ours on Redis runs its save script (one HSET of the record).
    for label in ("django db", "ours db"):
        assert (mixed[label]["rows"], mixed[label]["redis_commands"]) == (len(SERVERS), {})
    assert mixed["ours redis"]["rows"] == 0
    assert mixed["ours redis"]["redis_commands"]["hset"] == len(SERVERS)
    # Requests that change nothing: Django's engine writes nothing; ours writes at most
    # the activity, once per session in an ACTIVITY_RESOLUTION window.
    assert (unchanged["django db"]["rows"], unchanged["django db"]["redis_commands"]) == (0, {})
    assert unchanged["ours db"]["rows"] <= USERS
    assert unchanged["ours redis"]["rows"] == 0
    assert unchanged["ours redis"]["redis_commands"].get("hset", 0) <= USERS


def test_the_report_gives_the_ratio_to_djangos_engine_on_the_same_store(
    results: dict[str, Any],
) -> None:
    names = {verdict["name"] for verdict in results["verdicts"]}
    assert names == {
        f"ours db / django db, {server}: {measure}"
        for server in SERVERS
        for measure in ("p50", "throughput (theirs / ours)")
    }
    assert "ours db / django db" in results["stdout"]
