"""pytest plugin: find the Redis server the test suite uses, before Django reads its settings.

Loaded with ``-p tests.redis_server`` (``addopts`` in pyproject.toml), so it is active for
``make test``, tox and a plain ``pytest`` alike.

Environment:

``REDIS_URL``
    The server to use, ``redis://127.0.0.1:6379`` by default. The suite uses its database 15
    unless the URL names a database, so a developer's database 0 is left alone.
``REQUIRE_REDIS``
    ``1`` turns a missing Redis into an error that stops the run (CI sets it); otherwise the
    tests that need Redis are skipped, and the report header says why.

When that server does not answer and ``redis-server`` is on ``PATH``, a throwaway server is
started on a free port, keeping nothing on disk, and stopped when pytest exits.

The URL in use is published in the environment variable ``TEST_REDIS_URL``, which
tests/settings.py reads for ``CACHES``, and returned by the session fixture ``redis_url``.

Tests that need servers of their own start them with ``start_throwaway`` (a server, or
the replica of one) and ``replicated_redis`` (a primary, its replica and a Sentinel
watching them, for failover tests).

Redis Cluster, the third Redis mode beside a single server (and Sentinel):

``REDIS_CLUSTER``
    ``1`` runs the Redis engine's tests on a throwaway Redis Cluster of three primaries,
    started with ``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``
    in temporary directories and stopped when pytest exits. Its nodes' URLs are published
    in ``TEST_REDIS_CLUSTER_URLS`` (comma-separated), which makes tests/settings.py set
    ``SECURE_SESSIONS_REDIS_CLUSTER = True`` with them as the cache's ``LOCATION``.
``REDIS_CLUSTER_PORT``
    The first of the loopback ports the cluster's nodes take (each also takes its port +
    10000 for the cluster bus); free ports below 30000 by default.
``REQUIRE_REDIS_CLUSTER``
    ``1`` turns a cluster that can't be started into an error that stops the run (CI sets
    it); otherwise the Redis tests are skipped, and the report header says why loudly.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

DEFAULT_URL = "redis://127.0.0.1:6379"
TEST_DATABASE = 15
RESOLVED_URL_VARIABLE = "TEST_REDIS_URL"
STARTUP_SECONDS = 10.0
READY_MESSAGE = b"Ready to accept connections"
# What redis-server --sentinel says once it watches its primary (it never says the above).
SENTINEL_READY_MESSAGE = b"+monitor master"
TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"", "0", "false", "no", "off"}


@dataclass
class RedisServer:
    """The Redis the suite talks to, or why there is none (``unavailable``)."""

    url: str
    description: str
    unavailable: str | None = None
    process: subprocess.Popen[bytes] | None = None
    directory: tempfile.TemporaryDirectory[str] | None = None

    def stop(self) -> None:
        """Stop the throwaway server, if this plugin started one."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STARTUP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.directory is not None:
            self.directory.cleanup()
            self.directory = None


server_key = pytest.StashKey[RedisServer]()
cluster_key = pytest.StashKey["RedisClusterServers | None"]()
CLUSTER_URLS_VARIABLE = "TEST_REDIS_CLUSTER_URLS"
# Short, so that a failover (tests/test_cluster_failover.py) takes a second or two.
CLUSTER_NODE_TIMEOUT_MS = 1000
CLUSTER_PRIMARIES = 3


@dataclass
class RedisClusterServers:
    """A throwaway Redis Cluster: its nodes (primaries first, then replicas), or why there
    is none (``unavailable``)."""

    nodes: list[RedisServer]
    unavailable: str | None = None

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def ports(self) -> list[int]:
        return [int(urlsplit(url).port or 0) for url in self.urls]

    def client(self) -> RedisCluster:
        """A cluster client on these nodes."""
        nodes = [ClusterNode("127.0.0.1", port) for port in self.ports]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, socket_timeout=5, socket_connect_timeout=5)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def cluster_port_pair() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            # Ephemeral ports are above 32768: take one below 30000 instead.
            port = 20000 + port % 10000
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


CLUSTER_NODE_OPTIONS = [
    "--cluster-enabled",
    "yes",
    "--cluster-node-timeout",
    str(CLUSTER_NODE_TIMEOUT_MS),
]


def start_cluster(
    primaries: int = CLUSTER_PRIMARIES, first_port: int | None = None
) -> RedisClusterServers:
    """Start ``primaries`` cluster-enabled servers, join them with ``redis-cli --cluster
    create``, and wait until every node says the cluster is ok."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        return RedisClusterServers([], unavailable="redis-server or redis-cli is not on PATH")
    ports = (
        [cluster_port_pair() for _ in range(primaries)]
        if first_port is None
        else list(range(first_port, first_port + primaries))
    )
    cluster = RedisClusterServers([])
    for port in ports:
        node = start_throwaway(server, "a cluster node", port=port, extra=CLUSTER_NODE_OPTIONS)
        cluster.nodes.append(node)
        if node.unavailable is not None:
            cluster.stop()
            cluster.unavailable = node.unavailable
            return cluster
    addresses = [f"127.0.0.1:{port}" for port in ports]
    problem = run_cli(cli, "--cluster", "create", *addresses, "--cluster-yes")
    problem = problem or wait_until_formed(cluster)
    if problem is not None:
        cluster.stop()
        cluster.unavailable = f"the throwaway Redis Cluster did not form ({problem})"
    return cluster


def add_replica(
    cluster: RedisClusterServers, primary_port: int, port: int | None = None
) -> str | None:
    """Start one more node, as a replica of the primary on ``primary_port``, and wait
    until it is in sync: None, or why it could not."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    assert server is not None
    assert cli is not None
    port = cluster_port_pair() if port is None else port
    node = start_throwaway(server, "a replica", port=port, extra=CLUSTER_NODE_OPTIONS)
    cluster.nodes.append(node)
    if node.unavailable is not None:
        return node.unavailable
    with redis.Redis(port=primary_port) as primary:
        primary_id = primary.cluster("myid")
    primary_id = primary_id.decode() if isinstance(primary_id, bytes) else str(primary_id)
    problem = run_cli(
        cli,
        "--cluster",
        "add-node",
        f"127.0.0.1:{port}",
        f"127.0.0.1:{primary_port}",
        "--cluster-slave",
        "--cluster-master-id",
        primary_id,
    )
    return problem or wait_until_formed(cluster)


def run_cli(cli: str, *args: str) -> str | None:
    """Run ``redis-cli`` with ``args``; None if it succeeded, else its output."""
    done = subprocess.run(  # noqa: S603 - our own command line
        [cli, *args], capture_output=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return (done.stdout + done.stderr).decode(errors="replace")[-1000:]
    return None


def wait_until_formed(cluster: RedisClusterServers) -> str | None:
    """Poll (briefly) until every node reports ``cluster_state:ok`` and knows every
    other node, and every replica has synced with its primary."""
    clients = [redis.Redis(port=port, socket_timeout=2) for port in cluster.ports]
    try:
        if poll(
            lambda: all(formed(client, len(clients)) for client in clients), 3 * STARTUP_SECONDS
        ):
            return None
    finally:
        for client in clients:
            client.close()
    return "cluster_state never became ok on every node"


def formed(client: redis.Redis, nodes: int) -> bool:
    info = client.cluster("info")
    if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != nodes:
        return False
    replication = client.info("replication")
    return replication["role"] == "master" or replication.get("master_link_status") == "up"


def with_test_database(url: str) -> str:
    """``url`` pointing at ``TEST_DATABASE``, unless it names a database already."""
    parts = urlsplit(url)
    if parts.path.strip("/") or "db" in parse_qs(parts.query):
        return url
    return parts._replace(path=f"/{TEST_DATABASE}").geturl()


def ping(url: str) -> str | None:
    """``None`` if a Redis answers at ``url``, else why not."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    except ValueError as error:  # not a Redis URL
        return str(error)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"{type(error).__name__}: {str(error).rstrip('.')}"
    finally:
        client.close()
    return None


def free_port() -> int:
    # The port could be taken again before redis-server binds it; then startup fails and
    # says so, which is rare enough not to retry.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_throwaway(
    executable: str,
    why: str,
    *,
    port: int | None = None,
    persist_in: str | None = None,
    replica_of: int | None = None,
    extra: list[str] | None = None,
) -> RedisServer:
    """Start ``redis-server`` on a free port (or ``port``) and wait for it. It keeps nothing
    on disk, in a temporary directory, unless ``persist_in`` names a directory: there it
    keeps an append-only file written through on every command, so that killed and
    started again on it, it has everything it acknowledged. With ``replica_of`` (a port of
    127.0.0.1), it is that server's replica."""
    directory = None if persist_in else tempfile.TemporaryDirectory(prefix="secure-sessions-redis-")
    port = free_port() if port is None else port
    where = persist_in or (directory.name if directory else "")
    command = [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", where]
    if persist_in:
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    else:
        command += ["--save", "", "--appendonly", "no"]
    # A replica's first copy starts at once, not after the 5 s that Redis waits by default
    # for more replicas to share it.
    command += ["--repl-diskless-sync-delay", "0"]
    if replica_of is not None:
        command += ["--replicaof", "127.0.0.1", str(replica_of)]
    command += extra or []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"redis://127.0.0.1:{port}"
    if "--cluster-enabled" not in command:  # a cluster node has database 0 only
        url = with_test_database(url)
    return _started(
        RedisServer(url, f"throwaway redis-server at {url} ({why})", None, process, directory),
        why,
        READY_MESSAGE,
    )


def start_sentinel(
    executable: str, *, service: str, primary_port: int, directory: Path, down_after_ms: int
) -> RedisServer:
    """Start ``redis-server --sentinel`` on a free port, watching the primary on
    ``primary_port`` of 127.0.0.1 as ``service``, with a quorum of 1 (it alone decides a
    failover): the primary is down after ``down_after_ms`` without an answer. Sentinel
    rewrites its configuration file; it is kept in ``directory``."""
    port = free_port()
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {service} 127.0.0.1 {primary_port} 1\n"
        f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
        f"sentinel failover-timeout {service} {10 * down_after_ms}\n"
    )
    command = [executable, str(config), "--sentinel"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"redis://127.0.0.1:{port}"  # database 0: a sentinel has no other
    why = f"sentinel of {service}"
    return _started(
        RedisServer(url, f"redis sentinel at {url}", None, process), why, SENTINEL_READY_MESSAGE
    )


def _started(server: RedisServer, why: str, ready_message: bytes) -> RedisServer:
    """``server`` once its process says it is ready and answers, else stopped, and
    ``unavailable`` saying why."""
    assert server.process is not None
    ready, output = wait_until_ready(server.process, ready_message)
    problem = ping(server.url) if ready else "it did not say it was ready"
    if problem is not None:
        server.stop()
        server.unavailable = (
            f"{why}, and the throwaway {server.description} did not start ({problem}): "
            f"{output[-1000:]}"
        )
    return server


def port_of(server: RedisServer) -> int:
    port = urlsplit(server.url).port
    assert port is not None
    return port


@dataclass
class ReplicatedRedis:
    """A primary, its replica, and a Sentinel that watches them as ``service``."""

    service: str
    primary: RedisServer
    replica: RedisServer
    sentinel: RedisServer

    def primary_port(self) -> int:
        """The port of the primary that clients discover now: what ``SENTINEL MASTERS``
        says, which is what redis-py's Sentinel client asks. (``SENTINEL
        GET-MASTER-ADDR-BY-NAME`` gives the promoted replica a moment earlier, while the
        failover still runs.)"""
        with redis.Redis.from_url(self.sentinel.url, socket_timeout=2) as client:
            port: int = client.sentinel_masters()[self.service]["port"]
            return port

    def replicas_known(self) -> int:
        with redis.Redis.from_url(self.sentinel.url, socket_timeout=2) as client:
            return len(client.sentinel_slaves(self.service))


# How often a real server's state is asked while a test waits for it to get somewhere (a
# node to join, a replica to be promoted): that is no passing of time a clock could move.
POLL_SECONDS = 0.05


def poll(condition: Callable[[], bool], seconds: float) -> bool:
    """Ask ``condition`` (a server's state) until it holds: False if it still doesn't
    after ``seconds``. The one place the suite waits on a server by asking again."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def wait_for(condition: Callable[[], bool], what: str, seconds: float = STARTUP_SECONDS) -> None:
    """Wait until ``condition`` (a server's state) holds, or fail the test."""
    if not poll(condition, seconds):
        pytest.fail(f"Gave up waiting after {seconds} s: {what}")


def replica_in_sync(replica: RedisServer) -> bool:
    with redis.Redis.from_url(replica.url, socket_timeout=2) as client:
        status: str | None = client.info("replication").get("master_link_status")
        return status == "up"


@contextmanager
def replicated_redis(
    executable: str, directory: Path, *, service: str = "sessions", down_after_ms: int = 500
) -> Iterator[ReplicatedRedis]:
    """A primary and its replica (neither keeping anything on disk) and a Sentinel, on free
    loopback ports, stopped at the end: once it yields, the replica holds a copy of the
    primary and the sentinel knows both, so killing the primary promotes the replica
    about ``down_after_ms`` later."""
    servers: list[RedisServer] = []
    try:
        primary = start_throwaway(executable, "failover test: primary")
        servers.append(primary)
        if primary.unavailable:
            pytest.fail(primary.unavailable)
        replica = start_throwaway(executable, "failover test: replica", replica_of=port_of(primary))
        servers.append(replica)
        if replica.unavailable:
            pytest.fail(replica.unavailable)
        # The sentinel finds replicas in what the primary reports: started after the
        # replica is in sync, it knows it at once instead of at its next look (10 s).
        wait_for(lambda: replica_in_sync(replica), "the replica to copy its primary")
        sentinel = start_sentinel(
            executable,
            service=service,
            primary_port=port_of(primary),
            directory=directory,
            down_after_ms=down_after_ms,
        )
        servers.append(sentinel)
        if sentinel.unavailable:
            pytest.fail(sentinel.unavailable)
        group = ReplicatedRedis(service, primary, replica, sentinel)
        wait_for(lambda: group.replicas_known() == 1, "the sentinel to know the replica")
        yield group
    finally:
        for server in reversed(servers):
            server.stop()


def wait_until_ready(
    process: subprocess.Popen[bytes], ready_message: bytes = READY_MESSAGE
) -> tuple[bool, str]:
    """Read the server's output until it says it is ready, exits, or STARTUP_SECONDS pass.

    Blocks on the output (no polling loop); once ready, a thread keeps draining it so
    the server never blocks on a full pipe.
    """
    assert process.stdout is not None
    stdout = process.stdout
    output = b""
    deadline = time.monotonic() + STARTUP_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0 and selector.select(remaining):
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:  # the server exited
                break
            output += chunk
            if ready_message in output:
                threading.Thread(target=drain, args=(stdout,), daemon=True).start()
                return True, output.decode(errors="replace")
    return False, output.decode(errors="replace")


def drain(stream: IO[bytes]) -> None:
    # Until the server exits; then the pipe is closed here, where it is read.
    with stream:
        while stream.read(4096):
            pass


def find_redis() -> RedisServer:
    source = "REDIS_URL" if os.environ.get("REDIS_URL") else "default REDIS_URL"
    url = with_test_database(os.environ.get("REDIS_URL") or DEFAULT_URL)
    problem = ping(url)
    if problem is None:
        return RedisServer(url=url, description=f"{url} ({source})")
    why = f"nothing answers at {url} ({source}; {problem})"
    executable = shutil.which("redis-server")
    if executable is None:
        return RedisServer(
            url=url,
            description=url,
            unavailable=f"{why}, and there is no redis-server on PATH to start one",
        )
    return start_throwaway(executable, why)


def required(variable: str) -> bool:
    """Whether the environment variable ``variable`` (``REQUIRE_REDIS`` and the like) turns
    a missing part into an error; a value that is neither yes nor no stops the run."""
    value = os.environ.get(variable, "").strip().lower()
    if value not in TRUE_VALUES | FALSE_VALUES:
        msg = f"{variable}={value!r}: use 1 or 0."
        raise pytest.UsageError(msg)
    return value in TRUE_VALUES


# A wrapper, because pytest-django imports the settings in its own implementation of this
# hook, and a wrapper runs before every plain implementation whatever the plugin order.
@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    must_have = required("REQUIRE_REDIS")
    server = find_redis()
    early_config.add_cleanup(server.stop)
    if server.unavailable is not None and must_have:
        msg = f"REQUIRE_REDIS=1 but Redis is not available: {server.unavailable}."
        raise pytest.UsageError(msg)
    early_config.stash[server_key] = server
    os.environ[RESOLVED_URL_VARIABLE] = server.url
    early_config.stash[cluster_key] = find_cluster(early_config)
    return (yield)


def find_cluster(config: pytest.Config) -> RedisClusterServers | None:
    """The throwaway cluster of ``REDIS_CLUSTER=1``, or None in the other modes."""
    must_have = required("REQUIRE_REDIS_CLUSTER")
    if not (required("REDIS_CLUSTER") or must_have):
        return None
    port = os.environ.get("REDIS_CLUSTER_PORT")
    cluster = start_cluster(first_port=int(port) if port else None)
    config.add_cleanup(cluster.stop)
    if cluster.unavailable is not None and must_have:
        msg = f"REQUIRE_REDIS_CLUSTER=1 but Redis Cluster is not available: {cluster.unavailable}."
        raise pytest.UsageError(msg)
    if cluster.unavailable is None:
        os.environ[CLUSTER_URLS_VARIABLE] = ",".join(cluster.urls)
    return cluster


def pytest_report_header(config: pytest.Config) -> list[str]:
    server = config.stash[server_key]
    if server.unavailable is None:
        lines = [f"redis: {server.description}"]
    else:
        lines = [
            f"redis: !!! NOT AVAILABLE, TESTS THAT NEED REDIS ARE SKIPPED !!! "
            f"{server.unavailable}. Set REDIS_URL or put redis-server on PATH; "
            "REQUIRE_REDIS=1 makes this an error."
        ]
    cluster = config.stash[cluster_key]
    if cluster is None:
        lines.append(
            "redis cluster: not this run (REDIS_CLUSTER=1 runs the Redis tests on a "
            "throwaway Redis Cluster)"
        )
    elif cluster.unavailable is None:
        lines.append(f"redis cluster: the Redis tests run on {', '.join(cluster.urls)}")
    else:
        lines.append(
            f"redis cluster: !!! NOT AVAILABLE, TESTS THAT NEED REDIS ARE SKIPPED !!! "
            f"{cluster.unavailable}. REQUIRE_REDIS_CLUSTER=1 makes this an error."
        )
    return lines


@pytest.fixture
def redis_executable() -> str:
    """The ``redis-server`` on PATH, for a test that starts (and kills) servers of its own;
    skip the test without one, or fail it under REQUIRE_REDIS=1."""
    executable = shutil.which("redis-server")
    if executable is None:
        message = "no redis-server on PATH to start (and kill) a Redis of the test's own"
        if required("REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    return executable


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> str:
    """URL of the Redis database the suite uses (the one in ``CACHES``), or skip the test.

    In the cluster mode (``REDIS_CLUSTER=1``), the URL of the cluster's first node."""
    cluster = pytestconfig.stash[cluster_key]
    if cluster is not None:
        if cluster.unavailable is not None:
            pytest.skip(f"REDIS CLUSTER NOT AVAILABLE: {cluster.unavailable}")
        return cluster.urls[0]
    server = pytestconfig.stash[server_key]
    if server.unavailable is not None:
        pytest.skip(f"REDIS NOT AVAILABLE: {server.unavailable}")
    return server.url


@pytest.fixture(scope="session")
def redis_cluster(pytestconfig: pytest.Config) -> RedisClusterServers | None:
    """The suite's Redis Cluster in the cluster mode, else None."""
    return pytestconfig.stash[cluster_key]


@dataclass
class LiveRedis:
    """Where a server of a test (tests/live_server.py) keeps its Redis sessions: a
    database of the suite's server, or in the cluster mode the suite's cluster."""

    url: str
    cluster: RedisClusterServers | None = None

    @property
    def env(self) -> dict[str, str]:
        """The server's environment for it (see tests/live_settings.py)."""
        return {"LIVE_REDIS_URL": self.url, "LIVE_REDIS_CLUSTER": "1" if self.cluster else ""}

    def client(self) -> redis.Redis | RedisCluster:
        return redis.Redis.from_url(self.url) if self.cluster is None else self.cluster.client()

    def delete_prefixed(self, prefix: str) -> None:
        """Delete every key under ``prefix``: what the server stored."""
        with self.client() as client:
            for name in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(name)


def live_redis(request: pytest.FixtureRequest, database: int) -> LiveRedis:
    """The ``LiveRedis`` of a test's server: database ``database`` of the suite's Redis, or
    the suite's cluster (skipped, like ``redis_url``, when there is none)."""
    suite_url: str = request.getfixturevalue("redis_url")
    cluster: RedisClusterServers | None = request.getfixturevalue("redis_cluster")
    if cluster is not None:
        return LiveRedis(",".join(cluster.urls), cluster)
    return LiveRedis(urlsplit(suite_url)._replace(path=f"/{database}").geturl())
