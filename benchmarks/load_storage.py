"""The load benchmark's storage: a PostgreSQL database per configuration, and the storage
writes counted there and in Redis.

Every configuration gets a database of its own, a copy of one template that holds every
configuration's tables and the benchmark's users. So the writes of one configuration are
the writes of its database, as PostgreSQL counts them (``pg_stat_user_tables``: rows
inserted, updated and deleted); in Redis, they are the calls of write commands (as
``COMMAND INFO`` flags them, a script's own calls included) in ``INFO commandstats``,
which counts for the whole server: the benchmark has a Redis server of its own, and
counts one configuration at a time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql

from benchmarks.load_project import Configuration

# A backend reports its counts to PostgreSQL's statistics when it goes idle, at most once
# a second, else within 10 seconds (PGSTAT_IDLE_INTERVAL, PostgreSQL 15+); the servers'
# pooled connections stay open, so the counts are read that long after the last request.
STATISTICS_DELAY: Final = 11.0


@dataclass(frozen=True)
class Postgres:
    """The server the benchmark's databases are made on, and their names' prefix."""

    database: Mapping[str, Any]  # Django's settings of a database on that server
    prefix: str

    def __post_init__(self) -> None:
        if not self.database["ENGINE"].endswith("postgresql"):
            raise SystemExit(
                "The load benchmark needs PostgreSQL (several server processes share the "
                "database): set DATABASE_URL=postgres://user@host:port/name."
            )

    def name(self, configuration: Configuration | None) -> str:
        return f"{self.prefix}_{configuration.slug if configuration else 'template'}"

    def url(self, name: str) -> str:
        database = self.database
        password = f":{quote(database['PASSWORD'])}" if database["PASSWORD"] else ""
        port = database["PORT"] or "5432"
        return f"postgres://{quote(database['USER'])}{password}@{database['HOST']}:{port}/{name}"

    def connect(self, name: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(name), autocommit=True)

    def create(self, name: str, template: str | None = None) -> None:
        self.drop(name)  # left over by a run that was killed
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self.connect() as admin:
            admin.execute(statement)

    def drop(self, name: str) -> None:
        with self.connect() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def rows_written(self, name: str) -> int:
        """Rows inserted, updated and deleted in the database ``name``, as counted so far."""
        with self.connect(name) as connection:
            row = connection.execute(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint "
                "FROM pg_stat_user_tables"
            ).fetchone()
        return int(row[0]) if row else 0


def migrate(configuration: Configuration, environment: Mapping[str, str], root: Path) -> str | None:
    """Create ``configuration``'s tables with its own settings (``migrate`` in a process of
    its own); None, or why it failed (the end of the command's output)."""
    result = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"],
        env=dict(environment),
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"migrate exited with {result.returncode}"


@contextmanager
def databases(postgres: Postgres, configurations: list[Configuration]) -> Iterator[None]:
    """The template, then one copy per configuration (made by ``clone()``), dropped at
    the end."""
    names = [postgres.name(None), *(postgres.name(c) for c in configurations)]
    postgres.create(postgres.name(None))
    try:
        yield
    finally:
        for name in names:
            postgres.drop(name)


def clone(postgres: Postgres, configuration: Configuration) -> None:
    postgres.create(postgres.name(configuration), template=postgres.name(None))


# -- Redis --------------------------------------------------------------------------------


class RedisWrites:
    """Calls of write commands on the benchmark's Redis server."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._writes: dict[str, bool] = {}

    def _is_write(self, command: str) -> bool:
        if command not in self._writes:
            # redis-py answers COMMAND INFO with {name: {"flags": [...], ...}}.
            info: dict[str, dict[str, Any]] = self.client.execute_command(  # type: ignore[no-untyped-call]
                "COMMAND", "INFO", command
            )
            flags = info.get(command, {}).get("flags", [])
            self._writes[command] = "write" in flags
        return self._writes[command]

    def count(self) -> Counter[str]:
        """Calls so far, per write command."""
        calls: Counter[str] = Counter()
        for name, values in self.client.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            # Subcommands ("config|set") are administration, never a session's write.
            if "|" not in command and self._is_write(command):
                calls[command] = int(values["calls"])
        return calls


@dataclass(frozen=True)
class Writes:
    """Storage writes of one configuration over ``requests`` requests."""

    rows: int  # rows written in its PostgreSQL database
    redis_commands: dict[str, int]  # write commands run by Redis, scripts' own included
    requests: int
    seconds: float  # that the requests took

    @property
    def redis(self) -> int:
        return sum(self.redis_commands.values())

    def per_thousand(self, count: int) -> float:
        return count * 1000 / self.requests if self.requests else float("nan")

    def __str__(self) -> str:
        """Rows + Redis commands."""
        return f"{self.per_thousand(self.rows):,.1f} + {self.per_thousand(self.redis):,.1f}"


def wait_for_statistics() -> None:
    time.sleep(STATISTICS_DELAY)
