"""What the end-to-end tests share: the server, the browser's settings, the devices.

``start_server()`` runs tests/e2e/server.py in a process of its own, on a free port of
127.0.0.1 and a fresh SQLite database; ``DemoServer`` stops it, reads its log and moves its
clock. The fixtures are in conftest.py.
"""

from __future__ import annotations

import http.client
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode, urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "_static" / "screenshots"

# The Redis database of the Redis engine's server (see e2e_redis_url): not the suite's (15)
# nor the benchmarks' (14).
E2E_REDIS_DATABASE = 13
# The re-authentication window of the served demo (DEMO_REAUTH_MAX_AGE).
REAUTH_MAX_AGE = 60
# How often the demo writes activity down (its SECURE_SESSIONS_ACTIVITY_RESOLUTION).
ACTIVITY_RESOLUTION = 60
# Long enough for the server to migrate its database on a slow machine; it normally answers
# in a few seconds.
STARTUP_TIMEOUT = 120
# Playwright's timeout for each action (a click, a navigation); assertions wait 5 s.
ACTION_TIMEOUT_MS = 15_000

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The devices the tests sign in from: what the server records and shows, and what binding
# compares. Any browser engine can send any user agent; Chromium sends both.
CHROME_ON_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
)


class OpenBrowser(Protocol):
    """The fixture ``open_browser``: a page in a new browser context, another device."""

    def __call__(self, user_agent: str = CHROME_ON_LINUX, width: int = 1000) -> Page: ...


# The fixture ``screenshot``: ``screenshot(page_or_element, name)``.
Screenshot = Callable[["Page | Locator", str], None]


@dataclass
class DemoServer:
    """The example project, served by tests/e2e/server.py in a process of its own."""

    engine: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    redis_key_prefix: str
    log_offset: int = field(default=0)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> int:
        """Send one request outside any browser; return the status."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=STARTUP_TIMEOUT)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            connection.request(method, path, body=urlencode(body or {}), headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()

    def advance_clock(self, seconds: int) -> None:
        """Move the server's clock forward (tests/e2e/clock.py): time passes, at once."""
        status = self.request("POST", "/__e2e__/clock/", {"seconds": str(seconds)})
        assert status == HTTPStatus.NO_CONTENT, f"moving the clock answered {status}"

    def log(self, since: int = 0) -> str:
        return self.log_path.read_bytes()[since:].decode(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(engine: str, directory: Path, redis_url: str | None = None) -> DemoServer:
    """Start the example project on ``engine`` and return once it answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    host, port = listener.getsockname()
    redis_key_prefix = f"e2e-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e.server_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
        "E2E_DATABASE": str(directory / "db.sqlite3"),
        "DEMO_SESSION_ENGINE": engine,
        "DEMO_REAUTH_MAX_AGE": str(REAUTH_MAX_AGE),
        "E2E_REDIS_KEY_PREFIX": redis_key_prefix,
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    log_path = directory / "server.log"
    with listener, log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "-m", "tests.e2e.server", str(listener.fileno())],
            pass_fds=[listener.fileno()],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # The child has its own copy of the listening socket (ours is closed): if it dies, the
    # socket goes with it and this request fails at once instead of waiting.
    server = DemoServer(engine, host, port, process, log_path, redis_key_prefix)
    problem: str | None
    try:
        status = server.request("GET", "/accounts/login/")
    except OSError as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        problem = None if status == HTTPStatus.OK else f"status {status}"
    if problem is not None:
        server.stop()
        pytest.fail(f"The {engine} demo server did not start ({problem}):\n{server.log()}")
    return server


def e2e_redis_url(redis_url: str) -> str:
    """The suite's Redis server, but database ``E2E_REDIS_DATABASE``.

    The server of the Redis engine lives for the whole run, while other tests empty the
    suite's database before each of theirs (and so do those of any other test run on the
    same machine): sessions would vanish under a test. Nothing is emptied here: the keys
    of each run have a prefix of their own (``E2E_REDIS_KEY_PREFIX``), deleted at the end.
    """
    return urlsplit(redis_url)._replace(path=f"/{E2E_REDIS_DATABASE}", query="").geturl()
