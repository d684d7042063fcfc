"""The load generator: many users, each with a session of their own, over HTTP (httpx on
asyncio), a fixed number of requests in flight (a closed loop), bounded in requests and
in time.

Every answer is checked (status, and the user the page names): a request whose session
was lost is an error, not a fast answer.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from time import perf_counter
from typing import Final

import httpx

from benchmarks.load_project import API, LOGIN, NOTE, PAGE, PASSWORD
from benchmarks.settings import USER_AGENT

SESSION_COOKIE: Final = "sessionid"
CSRF_COOKIE: Final = "csrftoken"
REQUEST_TIMEOUT: Final = 60.0

# The mixed traffic: half pages, 40 % JSON, one request in ten writes to the session.
MIXED: Final = (PAGE, API, PAGE, API, NOTE, PAGE, API, PAGE, API, PAGE)
# Requests that change nothing in the session, for counting writes.
UNCHANGED: Final = (PAGE, API)


@dataclass(frozen=True)
class Visitor:
    """A signed-in user: what their browser sends."""

    username: str
    cookie: str  # the Cookie header
    csrf_token: str

    def headers(self, kind: str) -> dict[str, str]:
        headers = {"Cookie": self.cookie, "User-Agent": USER_AGENT}
        if kind == NOTE:
            headers["X-CSRFToken"] = self.csrf_token
        return headers

    def answered(self, kind: str, response: httpx.Response) -> bool:
        if response.status_code != HTTPStatus.OK:
            return False
        if kind == PAGE:
            return f"Signed in as {self.username}," in response.text
        return f'"user": "{self.username}"' in response.text


def client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    """A client that keeps no cookies of its own: each request carries its user's."""
    return httpx.AsyncClient(
        base_url=base_url,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=REQUEST_TIMEOUT,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        trust_env=False,
    )


class SignInError(Exception):
    pass


async def csrf_form(http: httpx.AsyncClient) -> tuple[str, str]:
    """A CSRF cookie and a token for it, as the login page gives them."""
    form = await http.get(LOGIN, headers={"User-Agent": USER_AGENT})
    cookie = form.cookies.get(CSRF_COOKIE)
    if form.status_code != HTTPStatus.OK or cookie is None:
        raise SignInError(f"GET {LOGIN}: {form.status_code} {form.text[:200]}")
    return cookie, form.json()["csrf"]


async def sign_in(http: httpx.AsyncClient, username: str, form: tuple[str, str]) -> Visitor:
    csrf_cookie, csrf_token = form
    answer = await http.post(
        LOGIN,
        data={"username": username, "password": PASSWORD},
        headers={
            "Cookie": f"{CSRF_COOKIE}={csrf_cookie}",
            "X-CSRFToken": csrf_token,
            "User-Agent": USER_AGENT,
        },
    )
    session = answer.cookies.get(SESSION_COOKIE)
    if answer.status_code != HTTPStatus.OK or session is None:
        raise SignInError(f"POST {LOGIN}: {answer.status_code} {answer.text[:200]}")
    # Login rotates the CSRF secret; the cookie holds it, and a header may repeat it.
    csrf = answer.cookies.get(CSRF_COOKIE) or csrf_cookie
    return Visitor(username, f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={csrf}", csrf)


async def asign_in_all(base_url: str, usernames: Sequence[str], concurrency: int) -> list[Visitor]:
    """Each user signs in (raises SignInError if one can't). A CSRF cookie is not tied to
    a session: one, from one visit of the login page, serves every first visit."""
    gate = asyncio.Semaphore(concurrency)

    async def one(http: httpx.AsyncClient, username: str, form: tuple[str, str]) -> Visitor:
        async with gate:
            return await sign_in(http, username, form)

    async with client(base_url, concurrency) as http:
        form = await csrf_form(http)
        return list(await asyncio.gather(*(one(http, name, form) for name in usernames)))


@dataclass(frozen=True)
class Traffic:
    """``per_user`` requests of each visitor, the kinds in turn from ``kinds``."""

    kinds: tuple[str, ...]
    per_user: int
    concurrency: int
    time_limit: float  # seconds: no request starts after that

    def schedule(self, visitors: Sequence[Visitor], seed: int) -> list[tuple[Visitor, str]]:
        """Every visitor once per repeat, in a new order each time, as users come back."""
        shuffle = random.Random(seed).shuffle  # noqa: S311 - an order, not a secret
        requests = []
        for repeat in range(self.per_user):
            order = list(enumerate(visitors))
            shuffle(order)
            requests += [(v, self.kinds[(n + repeat) % len(self.kinds)]) for n, v in order]
        return requests


@dataclass(frozen=True)
class Pass:
    """One run of some traffic against one server."""

    requests: int  # answered as expected
    errors: int
    seconds: float
    latencies_ms: list[float]
    first_error: str | None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, percent: int) -> float:
        if len(self.latencies_ms) < 2:  # noqa: PLR2004 - quantiles needs two
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[percent - 1]


async def drive(base_url: str, visitors: Sequence[Visitor], traffic: Traffic, seed: int) -> Pass:
    requests = iter(traffic.schedule(visitors, seed))
    latencies: list[float] = []
    errors: list[str] = []

    async with client(base_url, traffic.concurrency) as http:

        async def worker(deadline: float) -> None:
            # One shared iterator: each request is taken by one worker.
            for visitor, kind in requests:
                if perf_counter() > deadline:
                    return
                started = perf_counter()
                try:
                    if kind == NOTE:
                        response = await http.post(kind, headers=visitor.headers(kind))
                    else:
                        response = await http.get(kind, headers=visitor.headers(kind))
                except httpx.HTTPError as error:
                    errors.append(f"{kind}: {type(error).__name__}: {error}")
                    continue
                elapsed = perf_counter() - started
                if visitor.answered(kind, response):
                    latencies.append(elapsed * 1000)
                else:
                    errors.append(f"{kind}: {response.status_code} {response.text[:200]!r}")

        start = perf_counter()
        deadline = start + traffic.time_limit
        await asyncio.gather(*(worker(deadline) for _ in range(traffic.concurrency)))
        seconds = perf_counter() - start
    return Pass(len(latencies), len(errors), seconds, latencies, errors[0] if errors else None)


def sign_in_all(base_url: str, usernames: Sequence[str], concurrency: int) -> list[Visitor]:
    return asyncio.run(asign_in_all(base_url, usernames, concurrency))


def run(base_url: str, visitors: Sequence[Visitor], traffic: Traffic, seed: int) -> Pass:
    return asyncio.run(drive(base_url, visitors, traffic, seed))
