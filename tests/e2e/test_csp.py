"""The package's own pages (not the example project's, which has a layout of its own) in
Chromium, under a Content Security Policy that allows only the site's own styles and
scripts: they render styled, and the browser reports no violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import playwright_missing, skip_reason
from tests.live_client import LOGIN_PATH, own_database
from tests.live_server import PASSWORD
from tests.served import ServedProcess, launch

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e
pytest.importorskip("playwright", reason=skip_reason(playwright_missing() or "not importable"))

# What a page records of the policy's violations, from before its first script runs.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@pytest.fixture(scope="module")
def csp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedProcess]:
    directory = tmp_path_factory.mktemp("csp")
    with own_database(directory) as database_url:
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.live_settings",
            "LIVE_DATABASE_URL": database_url,
            "LIVE_SESSION_ENGINE": "django_secure_sessions.backends.db",
            "LIVE_REDIS_URL": "redis://127.0.0.1:6379/0",  # never used by the db engine
            "LIVE_REDIS_KEY_PREFIX": "csp",
            "LIVE_GATE": "",
            "LIVE_CSP": "1",
        }
        server = launch("tests.live_server", env, Path(directory) / "server.log", LOGIN_PATH)
        yield server
        server.stop()


@pytest.mark.parametrize("path", ["/account/sessions/", "/account/sessions/reauth/"])
def test_the_pages_render_styled_under_a_content_security_policy(
    browser: Browser, csp_server: ServedProcess, path: str
) -> None:
    context = browser.new_context(base_url=csp_server.base_url)
    try:
        page = context.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(LOGIN_PATH)
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", PASSWORD)
        page.click("button")
        page.wait_for_load_state()

        response = page.goto(path)

        assert response is not None
        assert response.status == 200
        assert response.headers["content-security-policy"] == "default-src 'self'"
        assert page.evaluate("window.cspViolations") == []
        assert [text for text in console if "Content Security Policy" in text] == []
        # Styled: the stylesheet's rules apply (46rem wide content, its button colours).
        assert page.eval_on_selector("main", "e => getComputedStyle(e).maxWidth") == "736px"
        back = page.locator("a.secure-sessions-back")
        assert back.get_attribute("href") == "/"
        assert back.evaluate("e => getComputedStyle(e).display") == "inline-block"
    finally:
        context.close()
