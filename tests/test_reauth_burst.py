"""The re-authentication lockout against parallel guesses, and other parallel requests of
one user, through a real server.

The suite's project runs in a process of its own (tests/live_server.py), on a threaded
WSGI server and a database of its own (a SQLite file, or a fresh PostgreSQL database when
the suite runs on PostgreSQL), once per engine. Its password checks pass through a gate
(tests/gate.py) that counts them exactly and can hold them, so that a burst is timed the
worst way for the lockout: the one check it allows is held until every other attempt of
the burst has been answered.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from http import HTTPStatus

import pytest

from tests.gate import Gate
from tests.live_client import LOGIN_PATH, REQUEST_TIMEOUT, Browser, Response, own_database
from tests.live_server import PASSWORD
from tests.redis_server import LiveRedis, live_redis
from tests.served import ServedProcess, launch

MAX_FAILURES = 5  # SECURE_SESSIONS_REAUTH_MAX_FAILURES's default
USER_MAX_FAILURES = 8  # tests/live_settings.py
WRONG = "not the password"
# The Redis database of the servers (not the suite's, which other tests empty).
LIVE_REDIS_DATABASE = 12


def sessions_left(server: ServedProcess, username: str) -> int:
    """How many sessions ``username`` has besides a new one, as "Your sessions" lists them:
    none may be left behind by a lockout, reachable or not."""
    browser = Browser(server)
    browser.sign_in(username)
    listed = browser.request("GET", "/account/sessions/", accept="application/json")
    return len(json.loads(listed.body)["sessions"]) - 1


def attempt_with(server: ServedProcess, cookies: dict[str, str], password: str) -> Response:
    """One attempt with a copy of these cookies (parallel requests of one browser)."""
    return Browser(server, dict(cookies)).attempt(password)


@pytest.fixture(scope="module")
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.close()


@pytest.fixture(scope="module", params=["db", "redis"])
def server(
    request: pytest.FixtureRequest, gate: Gate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """The suite's project on a real server, on each engine in turn."""
    engine: str = request.param
    # What the db engine's server never uses.
    own_redis = LiveRedis("redis://127.0.0.1:6379/0")
    if engine == "redis":
        own_redis = live_redis(request, LIVE_REDIS_DATABASE)
    prefix = f"live-{secrets.token_hex(4)}"
    directory = tmp_path_factory.mktemp(f"live-{engine}")
    with own_database(directory) as database_url:
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.live_settings",
            "LIVE_DATABASE_URL": database_url,
            "LIVE_SESSION_ENGINE": f"django_secure_sessions.backends.{engine}",
            "LIVE_REDIS_KEY_PREFIX": prefix,
            "LIVE_GATE": gate.address,
            **own_redis.env,
        }
        served = launch("tests.live_server", env, directory / "server.log", LOGIN_PATH)
        yield served
        served.stop()
    if engine == "redis":
        own_redis.delete_prefixed(prefix)


def answered_while_held(futures: list[Future[Response]], count: int) -> int:
    """Wait until ``count`` of the requests are answered (or REQUEST_TIMEOUT); return how
    many were."""
    pending = set(futures)
    while len(futures) - len(pending) < count:
        done, pending = wait(pending, timeout=REQUEST_TIMEOUT, return_when=FIRST_COMPLETED)
        if not done:
            break
    return len(futures) - len(pending)


def failures_logged(log: str) -> list[int]:
    """The attempt numbers of the failures the server logged (as reauth_failed sends)."""
    return [int(n) for n in re.findall(r"failed re-authentication \(attempt (\d+)\)", log)]


def test_a_burst_of_parallel_guesses_gets_one_check_and_ends_the_session(
    server: ServedProcess, gate: Gate
) -> None:
    browser = Browser(server)
    browser.sign_in("ada")
    log_start, checks_before = len(server.log_path.read_bytes()), gate.checks
    for _ in range(MAX_FAILURES - 1):
        assert browser.attempt(WRONG).status == HTTPStatus.OK  # the form, with its error
    assert gate.checks - checks_before == MAX_FAILURES - 1

    # 30 wrong guesses and the right password, at once. The one check left is held at the
    # gate until everything else has been answered.
    passwords = [WRONG] * 30
    passwords.insert(secrets.randbelow(31), PASSWORD)
    gate.shut()
    pool = ThreadPoolExecutor(max_workers=len(passwords))
    try:
        futures = [
            pool.submit(attempt_with, server, browser.cookies, password) for password in passwords
        ]
        answered = answered_while_held(futures, len(futures) - 1)
        checks_while_held = gate.checks - checks_before
    finally:
        gate.open()
        pool.shutdown(wait=True)
    responses = [future.result() for future in futures]

    assert checks_while_held == MAX_FAILURES  # exactly one more check ...
    assert answered == len(futures) - 1  # ... and every other attempt got no check
    assert gate.checks - checks_before == MAX_FAILURES
    # Every attempt, the right password's included, ends signed out.
    for response in responses:
        assert response.status == HTTPStatus.FOUND, response.body
        assert response.location.startswith(LOGIN_PATH)
    assert browser.signed_in_as() == ""
    # Not even the right password brings it back, and it is not even checked.
    assert browser.attempt(PASSWORD).location.startswith(LOGIN_PATH)
    assert gate.checks - checks_before == MAX_FAILURES
    assert sessions_left(server, "ada") == 0
    log = server.log(log_start)
    assert log.count("revoked (reauth_failures)") == 1, log
    # Every failure has a number of its own, as counted in storage. (The burst's first,
    # the one checked, is no failure when the right password drew it: it is refused once
    # checked, as the burst ended the session meanwhile.)
    numbers = failures_logged(log)
    assert len(numbers) == len(set(numbers))
    assert set(range(1, MAX_FAILURES)) <= set(numbers) <= set(range(1, len(passwords) + 5))


def test_a_right_password_in_flight_yields_no_session_once_the_lockout_ended_it(
    server: ServedProcess, gate: Gate
) -> None:
    browser = Browser(server)
    browser.sign_in("edsger")
    for _ in range(MAX_FAILURES - 1):
        browser.attempt(WRONG)
    checks_before = gate.checks

    gate.shut()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        right = pool.submit(attempt_with, server, browser.cookies, PASSWORD)
        # The right password's check (the last allowed) is under way ...
        assert gate.wait_for_checks(checks_before + 1, REQUEST_TIMEOUT) == checks_before + 1
        # ... when one more guess ends the session, unchecked.
        late = attempt_with(server, browser.cookies, WRONG)
    finally:
        gate.open()
        pool.shutdown(wait=True)

    assert late.location.startswith(LOGIN_PATH)
    assert right.result().status == HTTPStatus.FOUND
    assert right.result().location.startswith(LOGIN_PATH)  # confirmed, but too late
    assert gate.checks == checks_before + 1
    assert browser.signed_in_as() == ""
    assert sessions_left(server, "edsger") == 0


def test_more_sessions_buy_no_more_guesses(server: ServedProcess, gate: Gate) -> None:
    browsers = [Browser(server) for _ in range(3)]
    for browser in browsers:
        browser.sign_in("grace")
    checks_before = gate.checks

    with ThreadPoolExecutor(max_workers=30) as pool:
        futures = [
            pool.submit(attempt_with, server, browser.cookies, WRONG)
            for browser in browsers
            for _ in range(10)
        ]
    statuses = [future.result().status for future in futures]

    # Each session numbers exactly MAX_FAILURES attempts that may be checked (15), of
    # which the user's limit lets 8 through; the other 7 are refused unchecked.
    assert gate.checks - checks_before == USER_MAX_FAILURES
    assert statuses.count(HTTPStatus.TOO_MANY_REQUESTS) == 3 * MAX_FAILURES - USER_MAX_FAILURES
    assert set(statuses) <= {HTTPStatus.OK, HTTPStatus.FOUND, HTTPStatus.TOO_MANY_REQUESTS}


def test_a_right_password_still_confirms(server: ServedProcess) -> None:
    browser = Browser(server)
    browser.sign_in("barbara")
    old_key = browser.session_key

    assert browser.attempt(WRONG).status == HTTPStatus.OK
    confirmed = browser.attempt(PASSWORD)

    assert confirmed.status == HTTPStatus.FOUND
    assert not confirmed.location.startswith(LOGIN_PATH)
    assert browser.session_key not in {None, old_key}
    assert browser.signed_in_as() == "barbara"


def test_parallel_sign_outs_everywhere_else_all_get_an_answer(server: ServedProcess) -> None:
    # Each deletes the user's other sessions while the others do the same: on SQLite, a
    # read-then-delete transaction would fail at once ("database is locked") as soon as
    # another wrote meanwhile.
    browsers = [Browser(server) for _ in range(8)]
    for browser in browsers:
        browser.sign_in("margaret")

    with ThreadPoolExecutor(max_workers=len(browsers)) as pool:
        futures = [
            pool.submit(browser.request, "POST", "/account/sessions/revoke-others/", {})
            for browser in browsers
        ]
    answers = [future.result() for future in futures]

    assert {answer.status for answer in answers} <= {HTTPStatus.FOUND}, answers
    assert sum(browser.signed_in_as() == "margaret" for browser in browsers) <= 1
