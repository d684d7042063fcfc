"""What the end-to-end tests share: the server, the browser's settings, the devices.

``start_server()`` runs tests/e2e/server.py in a process of its own, on a free port of
127.0.0.1 and a fresh SQLite database; ``DemoServer`` stops it, reads its log and moves its
clock. The fixtures are in conftest.py.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from tests.served import ROOT, ServedProcess, launch

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SCREENSHOTS = ROOT / "docs" / "_static" / "screenshots"

# The Redis database of the Redis engine's server (see e2e_redis_url): not the suite's (15)
# nor the benchmarks' (14).
E2E_REDIS_DATABASE = 13
# The re-authentication window of the served demo (DEMO_REAUTH_MAX_AGE).
REAUTH_MAX_AGE = 60
# How often the demo writes activity down (its SECURE_SESSIONS_ACTIVITY_RESOLUTION).
ACTIVITY_RESOLUTION = 60
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
class DemoServer(ServedProcess):
    """The example project, served by tests/e2e/server.py in a process of its own."""

    engine: str = ""
    redis_key_prefix: str = ""
    log_offset: int = field(default=0)

    def advance_clock(self, seconds: int) -> None:
        """Move the server's clock forward (tests/clock.py): time passes, at once."""
        status = self.request("POST", "/__e2e__/clock/", {"seconds": str(seconds)})
        assert status == HTTPStatus.NO_CONTENT, f"moving the clock answered {status}"


def start_server(engine: str, directory: Path, redis_url: str | None = None) -> DemoServer:
    """Start the example project on ``engine`` and return once it answers."""
    redis_key_prefix = f"e2e-{secrets.token_hex(4)}"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.e2e.server_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
        "E2E_DATABASE": str(directory / "db.sqlite3"),
        "DEMO_SESSION_ENGINE": engine,
        "DEMO_REAUTH_MAX_AGE": str(REAUTH_MAX_AGE),
        "E2E_REDIS_KEY_PREFIX": redis_key_prefix,
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    served = launch("tests.e2e.server", env, directory / "server.log", "/accounts/login/")
    return DemoServer(
        served.host, served.port, served.process, served.log_path, engine, redis_key_prefix
    )


def e2e_redis_url(redis_url: str) -> str:
    """The suite's Redis server, but database ``E2E_REDIS_DATABASE``.

    The server of the Redis engine lives for the whole run, while other tests empty the
    suite's database before each of theirs (and so do those of any other test run on the
    same machine): sessions would vanish under a test. Nothing is emptied here: the keys
    of each run have a prefix of their own (``E2E_REDIS_KEY_PREFIX``), deleted at the end.
    """
    return urlsplit(redis_url)._replace(path=f"/{E2E_REDIS_DATABASE}", query="").geturl()
