"""Real storage faults during traffic, through a real server: Redis killed and started
again (with and without persistence), PostgreSQL terminating the server's connection, and
a statement timeout. Each time the sessions fail closed (anonymous, or a clean 503 for a
request that must write), no traceback reaches the client, the log says it once, and once
the storage answers again the sessions that it kept work and nothing ended comes back. In
the cluster mode of the suite (REDIS_CLUSTER=1), a primary of a Redis Cluster of the test's
own is killed and its replica takes over, with the same outcome.

The suite's project runs in a process of its own (tests/live_server.py) on a database of
its own; the Redis is the test's own, on a free loopback port (never the shared one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings
from redis.cluster import RedisCluster

from django_secure_sessions.backends import routing
from django_secure_sessions.models import SecureSession
from tests.live_client import LOGIN_PATH, Browser, Response, live_env, own_database
from tests.live_server import PASSWORD, USERS
from tests.redis_server import (
    RedisClusterServers,
    RedisServer,
    add_replica,
    free_port,
    start_cluster,
    start_throwaway,
    wait_for,
)
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


# -- Redis Cluster: a primary fails over to its replica ------------------------------------


@pytest.fixture
def failover_cluster(
    redis_cluster: RedisClusterServers | None,
) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of the test's own (it kills one of its primaries): three primaries,
    on ports of its own. Only in the cluster mode of the suite."""
    if redis_cluster is None:
        pytest.skip("only in the cluster mode of the suite (REDIS_CLUSTER=1)")
    if redis_cluster.unavailable is not None:
        pytest.skip(f"REDIS CLUSTER NOT AVAILABLE: {redis_cluster.unavailable}")
    cluster = start_cluster()  # free ports, cluster bus ports (+10000) free too
    try:
        if cluster.unavailable is not None:
            pytest.fail(cluster.unavailable)
        yield cluster
    finally:
        cluster.stop()


def primary_port_of(cluster: RedisCluster, key: str) -> int:
    """The port of the primary holding the session of ``key`` (its slot: its tag's)."""
    node = cluster.get_node_from_key("{" + routing.key_tag(key) + "}")  # type: ignore[no-untyped-call]
    return int(node.port)


def wait_for_failover(cluster: RedisClusterServers, killed: int) -> None:
    """Poll (briefly) until the surviving nodes say the cluster is ok again: the killed
    primary's replica has taken over its slots."""
    survivors = [
        redis.Redis(port=port, socket_timeout=2) for port in cluster.ports if port != killed
    ]
    try:
        wait_for(
            lambda: all(node.cluster("info").get("cluster_state") == "ok" for node in survivors),
            "the replica to take over",
            seconds=30,
        )
    finally:
        for node in survivors:
            node.close()


def test_redis_cluster_primary_killed_during_traffic_fails_closed_and_resurrects_nothing(
    failover_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    cluster, client = failover_cluster, failover_cluster.client()
    with own_database(tmp_path) as database_url:
        env = live_env(REDIS_ENGINE, database_url, ",".join(cluster.urls), LIVE_REDIS_CLUSTER="1")
        server = launch("tests.live_server", env, tmp_path / "server.log", LOGIN_PATH)
        try:
            browsers = {name: Browser(server) for name in USERS}
            for name, browser in browsers.items():
                browser.sign_in(name)
            # The primary to kill: the first user's; who is on it and who isn't.
            first = next(iter(browsers.values()))
            killed = primary_port_of(client, first.session_key or "")
            on_killed = [
                n
                for n, b in browsers.items()
                if primary_port_of(client, b.session_key or "") == killed
            ]
            elsewhere = [n for n in browsers if n not in on_killed]
            assert elsewhere, "every user's sessions are on one primary: use other users"
            problem = add_replica(cluster, killed)
            assert problem is None, problem
            replica = redis.Redis(port=cluster.ports[-1])
            # The replica takes over when the test says (CLUSTER FAILOVER TAKEOVER below),
            # not by itself a second after the kill: the window is the test's to see.
            replica.config_set("cluster-replica-no-failover", "yes")
            # A second session of a user on that primary, revoked before the failure.
            victim = on_killed[0]
            revoked = Browser(server)
            revoked.sign_in(victim)
            assert revoked.request("GET", "/revoke-own-session/").body == "still answered"
            assert add_to_cart(browsers[victim]).body == "book"
            # Replication is asynchronous: what the primary acknowledged just before it
            # died may not have reached its replica (docs/howto/redis.rst says so).
            # WAIT makes sure it has, here, so that what is checked is the engine.
            with redis.Redis(port=killed) as primary:
                primary.set("{" + routing.key_tag(first.session_key or "") + "}-wait", 1)
                assert primary.wait(1, 5000) == 1
            since = len(server.log())

            node = next(n for n in cluster.nodes if urlsplit(n.url).port == killed)
            assert node.process is not None
            node.process.kill()  # as a crash would
            node.process.wait()
            # While no replica has taken over (the client retries for a few seconds,
            # then gives up): the sessions on the dead primary fail closed, and so do
            # the others once the cluster sees that slots are uncovered.
            assert who(browsers[victim]) == "anonymous"
            assert_unavailable(add_to_cart(browsers[victim]))
            assert who(browsers[elsewhere[0]]) in {elsewhere[0], "anonymous"}
            assert failures_logged(server, since, REDIS_ENGINE) == 1
            assert_no_server_error(server, since)

            replica.cluster("failover", "takeover")
            wait_for_failover(cluster, killed)
            replica.close()

            # The replica took over: every session works, on every slot, the killed
            # primary's included (it had them all), and the revoked one stays revoked.
            assert {name: who(browser) for name, browser in browsers.items()} == {
                name: name for name in USERS
            }
            assert who(revoked) == "anonymous"
            assert add_to_cart(browsers[victim]).body == "book,book"  # the 503 wrote nothing
            assert recoveries_logged(server, since, REDIS_ENGINE) == 1
            newcomer = Browser(server)
            newcomer.sign_in(USERS[0])
            assert who(newcomer) == USERS[0]
            assert_no_server_error(server, since)
        finally:
            server.stop()
            client.close()


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
