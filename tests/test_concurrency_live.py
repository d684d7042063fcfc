"""Parallel requests of one session, and parallel logins of one user, through a real
server: two tabs and their background requests on one session while it is revoked, its
user's password changes or it times out, and a burst of logins over ``MAX_PER_USER``.

The suite's project runs in a process of its own (tests/live_server.py), on a threaded
WSGI server, a database of its own (a SQLite file, or a fresh PostgreSQL database when the
suite runs on PostgreSQL) and its own clock (tests/clock.py), once per engine. Activity is
written on every request (``ACTIVITY_RESOLUTION`` 0), so that every background read races
the writes with a write of its own.

What is promised (docs/reference/engines.rst, "Concurrency"): a request that only records
activity never overwrites data; two requests that both change the data have their changes
merged, so no acknowledged write is lost (of one key written by both, the last save's
value is kept); a session that ended is never brought back by a concurrent save (that
request gets a 400, never a 500). The tests count what the server
acknowledged and what storage holds afterwards, and print the counts (``pytest -s``).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings

from django_secure_sessions.backends.base import session_id_for_key
from django_secure_sessions.models import SecureSession
from tests.live_client import LOGIN_PATH, Browser, Response, live_env, own_database
from tests.live_server import PASSWORD
from tests.redis_server import LiveRedis, live_redis
from tests.served import ServedProcess, launch

REDIS_ENGINE = "django_secure_sessions.backends.redis"
MAX_PER_USER = 3
IDLE_TIMEOUT = 1800  # SECURE_SESSIONS_IDLE_TIMEOUT's default
# The Redis database of the servers (not the suite's, which other tests empty).
LIVE_REDIS_DATABASE = 11
# Background requests per tab, and requests each one goes on making once the fault is
# over, so that some race it and some come after it.
READERS = 4
REQUESTS_BEFORE_FAULT = 40
REQUESTS_AFTER_FAULT = 8
# How long a burst may take on a slow machine before the test gives up on it.
TRAFFIC_TIMEOUT = 120


# -- the server and its storage -----------------------------------------------------------


@dataclass
class Live:
    """A server, and a way to look at its storage from the outside."""

    server: ServedProcess
    engine: str
    database_url: str
    redis: LiveRedis
    redis_prefix: str

    def session_id(self, key: str | None) -> str:
        """The id the server stores the session of ``key`` under: on Redis Cluster, the
        routed id (backends/routing.py), which this process computes only with the Redis
        engine configured."""
        assert key is not None
        if self.redis.cluster is None:
            return session_id_for_key(key)
        with override_settings(SESSION_ENGINE=REDIS_ENGINE, SECURE_SESSIONS_REDIS_CLUSTER=True):
            return session_id_for_key(key)

    def stored_ids(self, username: str) -> set[str]:
        """The ids of the sessions of ``username`` that storage holds."""
        ((user_id,),) = self._rows("SELECT id FROM auth_user WHERE username = {}", [username])
        if self.engine == "db":
            table = SecureSession._meta.db_table
            query = f'SELECT id FROM "{table}" WHERE user_id = {{}}'  # noqa: S608
            return {session_id for (session_id,) in self._rows(query, [user_id])}
        # Each session's hash names the index of its user (see backends/redis.py); on
        # Redis Cluster, with the session's routing tag: u:{<tag>}<user id>.
        keys = f"{self.redis_prefix}:secure_sessions:"
        index = re.compile(rf"{re.escape(keys)}u:(\{{[0-9a-f]+\}})?{user_id}")
        with self.redis.client() as client:
            return {
                name.decode().rsplit(":", 1)[1].replace("{", "").replace("}", "")
                for name in client.scan_iter(match=f"{keys}s:*", count=1000)
                if index.fullmatch((client.hget(name, "u") or b"").decode())
            }

    def _rows(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """The rows of ``query`` (its placeholders written ``{}``) on the server's database."""
        if self.database_url.startswith("sqlite"):
            with closing(sqlite3.connect(urlsplit(self.database_url).path)) as connection:
                return connection.execute(query.format("?"), params).fetchall()
        url = self.database_url.replace("postgres://", "postgresql://")
        with psycopg.connect(url) as connection:
            return connection.execute(query.format("%s"), params).fetchall()


@pytest.fixture(scope="module", params=["db", "redis"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    engine: str = request.param
    # What the db engine's server never uses.
    own_redis = LiveRedis("redis://127.0.0.1:6379/0")
    if engine == "redis":
        own_redis = live_redis(request, LIVE_REDIS_DATABASE)
    directory = tmp_path_factory.mktemp(f"concurrency-{engine}")
    with own_database(directory) as database_url:
        env = live_env(
            f"django_secure_sessions.backends.{engine}",
            database_url,
            own_redis.url,
            LIVE_CLOCK="1",
            LIVE_REDIS_CLUSTER=own_redis.env["LIVE_REDIS_CLUSTER"],
            LIVE_ACTIVITY_RESOLUTION="0",
            LIVE_MAX_PER_USER=str(MAX_PER_USER),
        )
        served = launch("tests.live_server", env, directory / "server.log", LOGIN_PATH)
        prefix = env["LIVE_REDIS_KEY_PREFIX"]
        try:
            yield Live(served, engine, database_url, own_redis, prefix)
        finally:
            served.stop()
            if engine == "redis":
                own_redis.delete_prefixed(prefix)


def assert_no_server_error(live: Live) -> None:
    log = live.server.log()
    assert "Traceback" not in log, log
    assert "Internal Server Error" not in log, log


def listed_ids(browser: Browser) -> set[str]:
    """The ids that "Your sessions" lists to this browser's user."""
    answer = browser.request("GET", "/account/sessions/", accept="application/json")
    assert answer.status == HTTPStatus.OK, answer.body
    return {session["id"] for session in json.loads(answer.body)["sessions"]}


def notes_of(browser: Browser) -> tuple[str, dict[str, str]]:
    answer = browser.request("GET", "/notes/")
    assert answer.status == HTTPStatus.OK, answer.body
    found = json.loads(answer.body)
    return found["user"], found["notes"]


# -- traffic on one session ----------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request of the traffic and its answer, timed by the test's clock."""

    worker: str
    kind: str  # "write" or "read"
    value: str
    started: float
    finished: float
    status: int
    user: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def acknowledged(self) -> bool:
        return self.kind == "write" and self.status == HTTPStatus.OK


def exchange(browser: Browser, worker: str, kind: str, value: str) -> Exchange:
    started = time.monotonic()
    if kind == "write":
        answer = browser.request("GET", f"/notes/{worker}/?value={value}")
    else:
        answer = browser.request("GET", "/notes/")
    finished = time.monotonic()
    body: dict[str, Any] = {}
    if answer.status == HTTPStatus.OK:
        body = json.loads(answer.body)
    return Exchange(
        worker,
        kind,
        value,
        started,
        finished,
        answer.status,
        body.get("user", ""),
        body.get("notes", {}),
    )


class Traffic:
    """Tabs and background requests of one browser, all on one session cookie: each
    worker makes its requests one after the other (as a tab does), every worker at the
    same time as the others, until told to stop. Writers set their own key of the
    session to 1, 2, 3 ...; readers read it."""

    def __init__(self, server: ServedProcess, cookies: dict[str, str], writers: int) -> None:
        self.exchanges: list[Exchange] = []
        # Notified at each exchange, so that the test waits for the traffic itself.
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._after: float | None = None
        names = [f"tab{n}" for n in range(writers)] + [f"xhr{n}" for n in range(READERS)]
        self._pool = ThreadPoolExecutor(max_workers=len(names))
        self._futures = [
            self._pool.submit(self._work, Browser(server, dict(cookies)), name, name[:3] == "tab")
            for name in names
        ]

    def _work(self, browser: Browser, name: str, writes: bool) -> None:
        for n in range(1, 10_000):
            done = exchange(browser, name, "write" if writes else "read", str(n))
            with self._lock:
                self.exchanges.append(done)
                self._lock.notify_all()
            if self._stop.is_set():
                return

    def count(self) -> int:
        with self._lock:
            return len(self.exchanges)

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        with self._lock:
            reached = self._lock.wait_for(predicate, timeout=TRAFFIC_TIMEOUT)
        assert reached, "the traffic did not get that far"

    def stop_after(self, requests_each: int, since: float) -> list[Exchange]:
        """Let every worker make ``requests_each`` more requests started after ``since``,
        then stop them all; every exchange, in the order they were answered."""

        def enough() -> bool:
            with self._lock:
                later = Counter(e.worker for e in self.exchanges if e.started > since)
            return len(later) == len(self._futures) and min(later.values()) >= requests_each

        try:
            self.wait_for(enough)
        finally:
            self._stop.set()
            self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()  # a worker's own failure, if any
        return self.exchanges


def report(title: str, exchanges: list[Exchange], **figures: object) -> None:
    statuses = Counter((e.kind, e.status) for e in exchanges)
    shown = ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(statuses.items()))
    extra = ", ".join(f"{name.replace('_', ' ')}: {value}" for name, value in figures.items())
    print(f"\n{title}: {len(exchanges)} requests ({shown}); {extra}")


# -- no fault: what parallel requests on one session keep --------------------------------


def traffic_without_fault(
    live: Live, username: str, writers: int
) -> tuple[Browser, list[Exchange], list[Exchange]]:
    """The tab signed in as ``username``, every exchange of the traffic on its session, and
    its writes, once every request was answered and every write acknowledged."""
    tab = Browser(live.server)
    tab.sign_in(username)
    traffic = Traffic(live.server, tab.cookies, writers=writers)
    traffic.wait_for(lambda: traffic.count() >= REQUESTS_BEFORE_FAULT)
    exchanges = traffic.stop_after(REQUESTS_AFTER_FAULT, time.monotonic())
    writes = [e for e in exchanges if e.kind == "write"]
    assert {e.status for e in exchanges} == {HTTPStatus.OK}
    assert all(e.acknowledged for e in writes)
    return tab, exchanges, writes


def test_parallel_reads_that_record_activity_lose_no_acknowledged_write(live: Live) -> None:
    tab, exchanges, writes = traffic_without_fault(live, "ada", writers=1)
    # Every write (all acknowledged) saved on top of the one before (none undone by a
    # read's activity) ...
    assert [e.notes["tab0"] for e in writes] == [str(n) for n in range(1, len(writes) + 1)]
    # ... every read saw the writes it came after, never an older value again ...
    for reader in {e.worker for e in exchanges if e.kind == "read"}:
        seen = [int(e.notes.get("tab0", "0")) for e in exchanges if e.worker == reader]
        assert seen == sorted(seen), reader
    # ... and storage holds the last one.
    user, notes = notes_of(tab)
    assert (user, notes) == ("ada", {"tab0": str(len(writes))})
    report(
        "reads racing one writer",
        exchanges,
        writes_acknowledged=len(writes),
        writes_found=int(notes["tab0"]),
    )
    assert_no_server_error(live)


def test_parallel_writes_of_different_keys_lose_no_acknowledged_write(live: Live) -> None:
    tab, exchanges, writes = traffic_without_fault(live, "grace", writers=4)
    # Every write (all acknowledged) ...
    for write in writes:
        assert write.notes[write.worker] == write.value  # its own write is in what it saved
    # ... every read saw each tab's writes in order, never an older value again ...
    tabs = sorted({e.worker for e in writes})
    for reader in {e.worker for e in exchanges if e.kind == "read"}:
        for writer in tabs:
            seen = [int(e.notes.get(writer, "0")) for e in exchanges if e.worker == reader]
            assert seen == sorted(seen), (reader, writer)
    # ... and storage holds the last write of every tab's key: the concurrent saves of the
    # other keys merged with it, none undid it.
    user, notes = notes_of(tab)
    assert user == "grace"
    last = {e.worker: e.value for e in writes}
    assert len(last) == len(tabs) == 4
    assert notes == last
    report(
        "writers of different keys",
        exchanges,
        writes_acknowledged=len(writes),
        last_write_of_each_key_found=f"{len(last)} of {len(last)}",
    )
    assert_no_server_error(live)


# -- faults: the session ends while its requests run ---------------------------------------


def revoked_by_its_user(live: Live, other: Browser, target_id: str) -> None:
    """ "Your sessions" -> sign out that device, from another of the user's devices."""
    path = f"/account/sessions/{target_id}/revoke/"
    answer = other.request("POST", path, {}, accept="application/json")
    assert answer.status == HTTPStatus.OK, answer.body
    assert json.loads(answer.body) == {"revoked": [target_id]}


def signed_out_everywhere_else(live: Live, other: Browser, target_id: str) -> None:
    path = "/account/sessions/revoke-others/"
    answer = other.request("POST", path, {}, accept="application/json")
    assert answer.status == HTTPStatus.OK, answer.body
    assert json.loads(answer.body)["revoked_count"] >= 1


def password_changed(live: Live, other: Browser, target_id: str) -> None:
    new = f"new {secrets.token_hex(8)}"
    form = {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    answer = other.request("POST", "/accounts/password/", form)
    assert answer.status == HTTPStatus.FOUND, answer.body


def idle_timeout(live: Live, other: Browser, target_id: str) -> None:
    """No request for longer than the idle timeout: the server's clock moves past it."""
    assert live.server.request("POST", "/clock/", {"seconds": str(IDLE_TIMEOUT + 1)}) == 204


FAULTS: dict[str, tuple[Callable[[Live, Browser, str], None], str, bool]] = {
    # The fault, the user it happens to, and whether the other session survives it.
    "revoked-by-its-user": (revoked_by_its_user, "edsger", True),
    "signed-out-everywhere-else": (signed_out_everywhere_else, "barbara", True),
    "password-changed": (password_changed, "margaret", True),
    "idle-timeout": (idle_timeout, "alan", False),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_session_ended_during_parallel_requests_never_comes_back(live: Live, fault: str) -> None:
    end_session, username, other_survives = FAULTS[fault]
    tab, other = Browser(live.server), Browser(live.server)
    tab.sign_in(username)
    other.sign_in(username)
    assert other.request("GET", "/notes/kept/?value=yes").status == HTTPStatus.OK
    assert tab.session_key is not None
    target_id, old_key = live.session_id(tab.session_key), tab.session_key
    assert target_id in live.stored_ids(username)

    traffic = Traffic(live.server, tab.cookies, writers=2)
    traffic.wait_for(lambda: traffic.count() >= REQUESTS_BEFORE_FAULT)
    fault_started = time.monotonic()
    end_session(live, other, target_id)
    fault_over = time.monotonic()
    exchanges = traffic.stop_after(REQUESTS_AFTER_FAULT, fault_over)

    before = [e for e in exchanges if e.finished < fault_started]
    racing = [e for e in exchanges if e.finished >= fault_started and e.started <= fault_over]
    after = [e for e in exchanges if e.started > fault_over]
    # Before: signed in, every write acknowledged.
    assert {(e.status, e.user) for e in before} == {(HTTPStatus.OK, username)}
    # Racing the fault: answered either way, or refused as interrupted (400), never a 500.
    for e in racing:
        assert (e.status, e.user) in {
            (HTTPStatus.OK, username),
            (HTTPStatus.OK, ""),  # a read that came after
            (HTTPStatus.BAD_REQUEST, ""),  # a write whose session ended meanwhile
            (HTTPStatus.FORBIDDEN, ""),  # a write that came after: anonymous
        }, e
    # After: every tab and background request is anonymous, no write is acknowledged.
    assert {(e.kind, e.status, e.user) for e in after} <= {
        ("read", HTTPStatus.OK, ""),
        ("write", HTTPStatus.FORBIDDEN, ""),
    }
    assert {e.worker for e in after} == {e.worker for e in exchanges}
    # Nothing brought it back: storage no longer holds it, it is listed nowhere, and its
    # cookie replayed is anonymous.
    assert target_id not in live.stored_ids(username)
    assert notes_of(Browser(live.server, {settings.SESSION_COOKIE_NAME: old_key})) == ("", {})
    if other_survives:
        assert notes_of(other) == (username, {"kept": "yes"})  # its write is kept
        assert target_id not in listed_ids(other)
        assert other.session_key is not None
        assert live.stored_ids(username) == {live.session_id(other.session_key)}
    else:
        assert notes_of(other) == ("", {})
        assert live.stored_ids(username) == set()
    report(
        f"{fault} during traffic",
        exchanges,
        before_the_fault=len(before),
        racing_it=len(racing),
        after_it=len(after),
        writes_acknowledged=sum(e.acknowledged for e in exchanges),
        writes_interrupted=sum(e.status == HTTPStatus.BAD_REQUEST for e in exchanges),
    )
    assert_no_server_error(live)


# -- parallel logins over MAX_PER_USER -----------------------------------------------------


def test_parallel_logins_over_max_per_user_keep_exactly_the_limit(live: Live) -> None:
    logins = 4 * MAX_PER_USER
    browsers = [Browser(live.server) for _ in range(logins)]
    for browser in browsers:
        browser.request("GET", LOGIN_PATH)  # its CSRF cookie

    def log_in(browser: Browser) -> Response:
        form = {"username": "radia", "password": PASSWORD}
        return browser.request("POST", LOGIN_PATH, form)

    with ThreadPoolExecutor(max_workers=logins) as pool:
        answers = list(pool.map(log_in, browsers))

    # Signed in, or (a login whose session was among the oldest by the time it was
    # saved) refused as a session ended during the request; never a 500.
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {HTTPStatus.FOUND, HTTPStatus.BAD_REQUEST}, statuses
    signed_in = [browser for browser in browsers if notes_of(browser)[0] == "radia"]
    stored = live.stored_ids("radia")
    listed = listed_ids(signed_in[0]) if signed_in else set()
    print(
        f"\n{logins} parallel logins, MAX_PER_USER {MAX_PER_USER}: statuses {dict(statuses)}, "
        f"{len(stored)} stored, {len(signed_in)} cookies signed in, {len(listed)} listed"
    )
    assert len(stored) == MAX_PER_USER
    assert len(signed_in) == MAX_PER_USER
    assert {live.session_id(b.session_key) for b in signed_in} == stored == listed
    assert_no_server_error(live)
