"""Real storage faults during traffic, through a real server: Redis killed and started
again (with and without persistence), PostgreSQL terminating the server's connection, and
a statement timeout. Each time the sessions fail closed (anonymous, or a clean 503 for a
request that must write), no traceback reaches the client, the log says it once, and once
the storage answers again the sessions that it kept work and nothing ended comes back.

The suite's project runs in a process of its own (tests/live_server.py) on a database of
its own; the Redis is the test's own, on a free loopback port (never the shared one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from django_secure_sessions.models import SecureSession
from tests.live_client import LOGIN_PATH, Browser, Response, live_env, own_database
from tests.live_server import PASSWORD
from tests.redis_server import RedisServer, free_port, start_throwaway
from tests.served import ServedProcess, launch

DB_ENGINE = "django_secure_sessions.backends.db"
REDIS_ENGINE = "django_secure_sessions.backends.redis"
# How many requests each outage gets: enough for a per-request log line to show.
REQUESTS_DURING_OUTAGE = 10
STATEMENT_TIMEOUT_MS = 300
TABLE = SecureSession._meta.db_table


def failures_logged(server: ServedProcess, since: int, engine: str) -> int:
    return server.log(since).count(f"Session storage ({engine}) failed")


def recoveries_logged(server: ServedProcess, since: int, engine: str) -> int:
    return server.log(since).count(f"Session storage ({engine}) answers again")


def assert_unavailable(response: Response) -> None:
    """A clean refusal: 503, with when to try again, and nothing of the failure."""
    assert response.status == HTTPStatus.SERVICE_UNAVAILABLE, response.body
    assert response.headers.get("Retry-After") == "10"
    assert "could not be saved" in response.body
    assert "Traceback" not in response.body
    assert "Error" not in response.body


def assert_no_server_error(server: ServedProcess, since: int) -> None:
    log = server.log(since)
    assert "Traceback" not in log, log
    assert "Internal Server Error" not in log, log
    # The outage is logged by the engine, once; not a line per 503.
    assert "Service Unavailable" not in log, log


def who(browser: Browser) -> str:
    answer = browser.request("GET", "/poll/")
    assert answer.status == HTTPStatus.OK, answer.body
    return answer.body


def add_to_cart(browser: Browser) -> Response:
    return browser.request("GET", "/cart/add/")


# -- Redis -------------------------------------------------------------------------------


@dataclass
class KillableRedis:
    """A redis-server of the test's own, on a port of its own, that the test kills (as a
    crash would) and starts again on the same port, with or without what it stored."""

    executable: str
    directory: Path
    persistent: bool
    port: int
    server: RedisServer | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persist_in = str(self.directory) if self.persistent else None
        server = start_throwaway(
            self.executable, "fault test", port=self.port, persist_in=persist_in
        )
        if server.unavailable:
            pytest.fail(server.unavailable)
        self.server = server

    def kill(self) -> None:
        assert self.server is not None
        assert self.server.process is not None
        self.server.process.kill()
        self.server.process.wait()
        self.server.stop()  # its temporary directory, if any
        self.server = None


@contextmanager
def killable_redis(
    executable: str, directory: Path, *, persistent: bool
) -> Iterator[KillableRedis]:
    directory.mkdir()
    own = KillableRedis(executable, directory, persistent, free_port())
    own.start()
    try:
        yield own
    finally:
        if own.server is not None:
            own.kill()


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "not-persistent"])
def test_redis_killed_during_traffic_fails_closed_logs_once_and_resurrects_nothing(
    persistent: bool, redis_executable: str, tmp_path: Path
) -> None:
    with (
        killable_redis(redis_executable, tmp_path / "redis", persistent=persistent) as own,
        own_database(tmp_path) as database_url,
    ):
        server = launch(
            "tests.live_server",
            live_env(REDIS_ENGINE, database_url, own.url),
            tmp_path / "server.log",
            LOGIN_PATH,
        )
        try:
            ada, grace = Browser(server), Browser(server)
            ada.sign_in("ada")
            assert add_to_cart(ada).body == "book"
            grace.sign_in("grace")
            assert grace.request("GET", "/revoke-own-session/").body == "still answered"
            newcomer = Browser(server)
            newcomer.request("GET", LOGIN_PATH)  # its CSRF cookie, before the outage
            key, since = ada.session_key, len(server.log())

            own.kill()
            polls = [who(ada) for _ in range(REQUESTS_DURING_OUTAGE)]
            writes = [add_to_cart(ada) for _ in range(REQUESTS_DURING_OUTAGE)]
            login = newcomer.request(
                "POST", LOGIN_PATH, {"username": "edsger", "password": PASSWORD}
            )

            # Fail closed: nobody is signed in without the storage to prove it, and what
            # must be written is refused, cleanly.
            assert polls == ["anonymous"] * REQUESTS_DURING_OUTAGE
            for response in [*writes, login]:
                assert_unavailable(response)
            assert newcomer.session_key is None
            assert ada.session_key == key  # the cookie is kept, for when Redis is back
            assert failures_logged(server, since, REDIS_ENGINE) == 1
            assert_no_server_error(server, since)

            own.start()
            if persistent:
                # What Redis acknowledged is back, and nothing refused was written.
                assert who(ada) == "ada"
                assert add_to_cart(ada).body == "book,book"
            else:
                assert who(ada) == "anonymous"
                ada.sign_in("ada")
                assert who(ada) == "ada"
            assert recoveries_logged(server, since, REDIS_ENGINE) == 1
            # The session revoked before the outage stays revoked.
            assert who(grace) == "anonymous"
            newcomer.sign_in("edsger")
            assert who(newcomer) == "edsger"
            assert_no_server_error(server, since)
        finally:
            server.stop()


# -- PostgreSQL --------------------------------------------------------------------------


def postgres_admin() -> psycopg.Connection[tuple[object, ...]]:
    database = settings.DATABASES["default"]
    return psycopg.connect(
        host=database["HOST"],
        port=database["PORT"],
        user=database["USER"],
        password=database["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    )


def database_name(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1]


def terminate_backends(database_url: str) -> int:
    """Terminate every connection to the server's database, as a failover or an
    administrator would: how many there were."""
    with postgres_admin() as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database_name(database_url)],
        ).fetchall()
    return len(rows)


@contextmanager
def session_table_locked(database_url: str) -> Iterator[None]:
    """Hold a lock that makes every statement on the sessions table wait, so that the
    server's statements run into its statement timeout."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as holder:
        holder.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        yield
        holder.rollback()


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[tuple[ServedProcess, str]]:
    """The db engine on PostgreSQL, served on one thread that keeps its connection between
    requests (CONN_MAX_AGE None, no health checks), with a statement timeout."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("PostgreSQL faults: the suite runs on SQLite (set DATABASE_URL)")
    with own_database(tmp_path) as database_url:
        env = live_env(
            DB_ENGINE,
            database_url,
            "redis://127.0.0.1:6379/0",  # never used by the db engine
            LIVE_THREADED="0",
            LIVE_CONN_MAX_AGE="none",
            LIVE_STATEMENT_TIMEOUT_MS=str(STATEMENT_TIMEOUT_MS),
        )
        server = launch("tests.live_server", env, tmp_path / "server.log", LOGIN_PATH)
        try:
            yield server, database_url
        finally:
            server.stop()


def test_postgres_connection_terminated_fails_closed_then_reconnects(
    postgres_server: tuple[ServedProcess, str],
) -> None:
    server, database_url = postgres_server
    ada = Browser(server)
    ada.sign_in("ada")
    assert add_to_cart(ada).body == "book"
    since = len(server.log())

    # A write on the dropped connection: refused, and the next request reconnects.
    assert terminate_backends(database_url) == 1
    assert_unavailable(add_to_cart(ada))
    assert who(ada) == "ada"
    # A read on the dropped connection: anonymous, not a 500.
    assert terminate_backends(database_url) == 1
    assert who(ada) == "anonymous"
    assert who(ada) == "ada"

    assert add_to_cart(ada).body == "book,book"  # the refused write was never made
    assert failures_logged(server, since, DB_ENGINE) == 2  # once per outage
    assert recoveries_logged(server, since, DB_ENGINE) == 2
    assert_no_server_error(server, since)


def test_postgres_statement_timeout_fails_closed_and_loses_nothing(
    postgres_server: tuple[ServedProcess, str],
) -> None:
    server, database_url = postgres_server
    ada = Browser(server)
    ada.sign_in("ada")
    assert add_to_cart(ada).body == "book"
    since = len(server.log())

    with session_table_locked(database_url):
        polls = [who(ada) for _ in range(REQUESTS_DURING_OUTAGE)]
        writes = [add_to_cart(ada) for _ in range(REQUESTS_DURING_OUTAGE)]

    assert polls == ["anonymous"] * REQUESTS_DURING_OUTAGE
    for response in writes:
        assert_unavailable(response)
    assert who(ada) == "ada"
    assert add_to_cart(ada).body == "book,book"
    assert failures_logged(server, since, DB_ENGINE) == 1
    assert recoveries_logged(server, since, DB_ENGINE) == 1
    assert_no_server_error(server, since)
