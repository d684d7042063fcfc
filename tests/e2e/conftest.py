"""Fixtures of the end-to-end tests: the example project on a real server, and a browser.

One server per engine for the whole run (started on first use, each on a fresh SQLite
database and a free port of 127.0.0.1), one headless Chromium, and a new browser context
(cookies of its own: a device, as the server sees it) for every ``open_browser()``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from tests.browser import CHROMIUM
from tests.e2e.harness import (
    ACTION_TIMEOUT_MS,
    CHROME_ON_LINUX,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    DemoServer,
    OpenBrowser,
    Screenshot,
    e2e_redis_url,
    start_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page


@pytest.fixture(scope="session")
def db_demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    server = start_server("db", tmp_path_factory.mktemp("e2e-db"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_demo_server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[DemoServer]:
    url = e2e_redis_url(redis_url)
    server = start_server("redis", tmp_path_factory.mktemp("e2e-redis"), url)
    yield server
    server.stop()
    with redis.Redis.from_url(url) as client:
        for key in client.scan_iter(match=f"{server.redis_key_prefix}*", count=1000):
            client.delete(key)


@pytest.fixture(params=["db", "redis"])
def server(request: pytest.FixtureRequest) -> DemoServer:
    """The demo served on each engine in turn. Both servers live for the whole run: tests
    run in random order, and one server per engine switch would be slow."""
    demo_server: DemoServer = request.getfixturevalue(f"{request.param}_demo_server")
    demo_server.log_offset = len(demo_server.log_path.read_bytes())
    return demo_server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def open_browser(browser: Browser, server: DemoServer) -> Iterator[OpenBrowser]:
    """Opens a page in a new browser context: to the server, another device."""
    contexts: list[BrowserContext] = []

    def open_page(user_agent: str = CHROME_ON_LINUX, width: int = 1000) -> Page:
        context = browser.new_context(
            base_url=server.base_url,
            user_agent=user_agent,
            viewport={"width": width, "height": 700},
            # The server's: the admin would note the difference on its date fields.
            timezone_id="UTC",
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot(server: DemoServer) -> Screenshot:
    """``screenshot(page_or_element, name)`` saves docs/_static/screenshots/<name>.png when
    the environment has SCREENSHOTS=1 (from the db engine's run only: one picture each)."""

    def take(target: Page | Locator, name: str) -> None:
        from playwright.sync_api import Locator

        if os.environ.get("SCREENSHOTS") != "1" or server.engine != "db":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if isinstance(target, Locator):
            target.screenshot(path=path)
        else:
            target.screenshot(path=path, full_page=True)

    return take


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report shows what the server logged meanwhile."""
    report = yield
    demo_server = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(demo_server, DemoServer):
        report.sections.append(
            (f"{demo_server.engine} demo server log", demo_server.log(demo_server.log_offset))
        )
    return report
