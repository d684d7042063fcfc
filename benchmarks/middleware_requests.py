"""An authenticated request that changes nothing, through the whole middleware stack.

Django's test ``Client`` asks for a view that reads ``request.user.username``: with and
without ``SecureSessionMiddleware`` in ``MIDDLEWARE``, on each of our engines, all four
timed in the same interleaved rounds. Each case's session is logged in
(``force_login``) and then bound by one request before timing, as after a real login.

The timed requests come within seconds of that first one, so with the default
``ACTIVITY_RESOLUTION`` (60 s) they write nothing. The activity writes are counted
separately: 1,000 requests one simulated second apart (``time_machine``), which should
write once per 60-second window, not once per request.

Needs the app registry: import this module after ``django.setup()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import time_machine
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from benchmarks.report import WITH, WITHOUT, Verdict, request_verdicts
from benchmarks.settings import MIDDLEWARE, SECURE_SESSION_MIDDLEWARE, USER_AGENT
from benchmarks.timing import Operation, Plan, Summary, measure
from benchmarks.urls import WHOAMI
from benchmarks.workloads import OURS_DB, OURS_REDIS, Engine
from django_secure_sessions.backends import redis as redis_engine
from django_secure_sessions.backends.base import SecureSessionBase
from django_secure_sessions.conf import conf
from django_secure_sessions.models import SecureSession

ENGINES: Final = (OURS_DB, OURS_REDIS)
WRITE_REQUESTS: Final = 1000
SECONDS_APART: Final = 1
USERNAME: Final = "benchmark-requests"


@dataclass(frozen=True)
class Case:
    engine: Engine
    ours: bool  # SecureSessionMiddleware in MIDDLEWARE

    @property
    def middleware(self) -> list[str]:
        return [name for name in MIDDLEWARE if self.ours or name != SECURE_SESSION_MIDDLEWARE]


def get(client: Client) -> None:
    """One request; it must be the logged-in user's."""
    response = client.get(WHOAMI)
    if response.status_code != HTTPStatus.OK or response.content != USERNAME.encode():
        raise RuntimeError(f"{WHOAMI}: {response.status_code} {response.content!r}")


def logged_in_client(case: Case, user: User) -> Client:
    """A client with its own middleware chain and engine, logged in, after its first request
    (which binds the session, with our middleware: a login over HTTP would bind it at once)."""
    client = Client(headers={"user-agent": USER_AGENT})
    # The chain is built here, under these settings, and kept by the client's handler;
    # SessionMiddleware picks its engine when it is built.
    with override_settings(SESSION_ENGINE=case.engine.module, MIDDLEWARE=case.middleware):
        client.handler.load_middleware()
        client.force_login(user)
    get(client)
    return client


def stored_session(case: Case, client: Client) -> SecureSessionBase:
    store = case.engine.store_class(client.cookies[settings.SESSION_COOKIE_NAME].value)
    if not isinstance(store, SecureSessionBase):
        raise TypeError(f"{case.engine.module} is not one of our engines")
    store.get(SESSION_KEY)  # loads it
    return store


def last_activity(case: Case, client: Client) -> int:
    meta = stored_session(case, client).meta
    if meta is None:
        raise RuntimeError(f"{case.engine.label}: the session is gone")
    return meta.last_activity


# -- counting writes -------------------------------------------------------------------


@contextmanager
def counting_sql_writes() -> Iterator[Callable[[], int]]:
    """UPDATEs of the secure session table sent inside the block."""
    table = connection.ops.quote_name(SecureSession._meta.db_table)
    with CaptureQueriesContext(connection) as captured:
        yield lambda: sum(
            1
            for query in captured.captured_queries
            if query["sql"].lstrip().upper().startswith("UPDATE") and table in query["sql"]
        )


@contextmanager
def counting_script_calls() -> Iterator[Callable[[], int]]:
    """Lua script calls (every write of the Redis engine) that succeed inside the block:
    an ``EVALSHA`` refused for an unknown script, then its ``EVAL``, is one write."""
    client = redis_engine._connection().client
    calls = 0

    def counted(name: str) -> Callable[..., Any]:
        send: Callable[..., Any] = getattr(client, name)

        def call(*args: Any, **options: Any) -> Any:
            nonlocal calls
            result = send(*args, **options)
            calls += 1
            return result

        return call

    # Instance attributes shadow the methods, for this client only.
    for name in ("evalsha", "eval"):
        setattr(client, name, counted(name))
    try:
        yield lambda: calls
    finally:
        for name in ("evalsha", "eval"):
            delattr(client, name)


def counting_writes(engine: Engine) -> AbstractContextManager[Callable[[], int]]:
    return counting_script_calls() if engine is OURS_REDIS else counting_sql_writes()


# -- the benchmark ---------------------------------------------------------------------


@dataclass(frozen=True)
class Writes:
    """Storage writes of one engine over ``requests`` requests ``seconds_apart`` apart."""

    engine: str
    requests: int
    seconds_apart: int
    resolution: int
    writes: int

    @property
    def windows(self) -> int:
        """ACTIVITY_RESOLUTION windows begun over the simulated time: the most writes."""
        return math.ceil(self.requests * self.seconds_apart / self.resolution)

    @property
    def passed(self) -> bool:
        return 1 <= self.writes <= self.windows

    @property
    def verdict(self) -> Verdict:
        """At most one write per window (none at all would be as wrong: no activity)."""
        return Verdict(
            f"{self.engine}: activity writes over {self.requests:,} requests, per window",
            self.writes / self.windows,
            1.0,
            self.passed,
        )

    def __str__(self) -> str:
        return (
            f"writes over {self.requests:,} requests: {self.writes} "
            f"(expected ≈ {self.windows}, one per {self.resolution}-s window)"
        )


def activity_writes(engine: Engine, user: User) -> Writes:
    client = logged_in_client(Case(engine, ours=True), user)
    with (
        counting_writes(engine) as written,
        time_machine.travel(time.time(), tick=False) as traveller,
    ):
        for _ in range(WRITE_REQUESTS):
            traveller.shift(SECONDS_APART)
            get(client)
    return Writes(engine.label, WRITE_REQUESTS, SECONDS_APART, conf.ACTIVITY_RESOLUTION, written())


@dataclass(frozen=True)
class RequestTimings:
    timings: dict[str, dict[str, Summary]]  # engine label -> WITHOUT / WITH -> summary
    seconds: float  # how long the timed rounds took
    # Whether the stored last activity moved while timing (it should not, in a run
    # shorter than ACTIVITY_RESOLUTION).
    written_while_timed: dict[str, bool]


def time_requests(user: User, plan: Plan) -> RequestTimings:
    cases = [Case(engine, ours) for engine in ENGINES for ours in (False, True)]
    clients = {case: logged_in_client(case, user) for case in cases}
    before = {case: last_activity(case, clients[case]) for case in cases if case.ours}

    def request(client: Client) -> Operation:
        return lambda number: get(client)

    start = time.perf_counter()
    measured = measure({case: request(client) for case, client in clients.items()}, plan)
    seconds = time.perf_counter() - start
    timings: dict[str, dict[str, Summary]] = {}
    for case, summary in measured.items():
        timings.setdefault(case.engine.label, {})[WITH if case.ours else WITHOUT] = summary
    written = {
        case.engine.label: last_activity(case, clients[case]) != activity
        for case, activity in before.items()
    }
    return RequestTimings(timings, seconds, written)


@dataclass(frozen=True)
class RequestResults:
    timings: RequestTimings
    writes: list[Writes]
    verdicts: list[Verdict]


def request_benchmark(plan: Plan) -> RequestResults:
    user = User.objects.create_user(USERNAME)  # no password: none to hash
    try:
        timings = time_requests(user, plan)
        writes = [activity_writes(engine, user) for engine in ENGINES]
    finally:
        user.delete()  # and with it, its sessions
    verdicts = request_verdicts(timings.timings) + [count.verdict for count in writes]
    return RequestResults(timings, writes, verdicts)
