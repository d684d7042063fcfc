"""End to end, in a real browser: the example project's flows, on both engines.

Headless Chromium (Playwright) against the example project on a real server (see
conftest.py). Each test signs in its own user (tests/e2e/server.py), so the order doesn't
matter. Time never passes by waiting: a test that needs the re-authentication window to
be over moves the server's clock past it.

With SCREENSHOTS=1 the pages are saved to docs/_static/screenshots/ for the docs.
"""

from __future__ import annotations

import re

import pytest

from tests.browser import playwright_missing, skip_reason

pytestmark = pytest.mark.e2e
pytest.importorskip("playwright", reason=skip_reason(playwright_missing() or "not importable"))

from playwright.sync_api import Page, expect  # noqa: E402

from tests.e2e.harness import (  # noqa: E402
    ACTIVITY_RESOLUTION,
    FIREFOX_ON_WINDOWS,
    REAUTH_MAX_AGE,
    DemoServer,
    OpenBrowser,
    Screenshot,
)
from tests.e2e.server import ADMIN, PASSWORD  # noqa: E402

LOGIN_PAGE = re.compile(r"/accounts/login/\?next=")


def click_menu(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Signed in as {username}")


def expect_signed_out(page: Page) -> None:
    """The next click of a signed-out page: a page that needs signing in sends it to."""
    click_menu(page, "Account")
    expect(page).to_have_url(LOGIN_PAGE)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_signing_in_shows_the_session(open_browser: OpenBrowser, screenshot: Screenshot) -> None:
    page = open_browser()
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are not signed in")

    sign_in(page, "alice")

    facts = page.locator(".facts")
    expect(facts).to_contain_text("At least 29 minutes left")  # of the 30 of idle time
    expect(facts).to_contain_text("11 hours, 59 minutes left")  # of the 12 of absolute time
    expect(facts).to_contain_text("127.0.0.0/24")
    expect(facts).to_contain_text("Chrome on Linux")
    expect(page.get_by_role("main")).to_contain_text("Your sessions: 1 signed in")
    screenshot(page, "home")

    page.get_by_role("navigation").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are not signed in")


def test_signing_out_another_session(open_browser: OpenBrowser, screenshot: Screenshot) -> None:
    laptop, other = open_browser(), open_browser(FIREFOX_ON_WINDOWS)
    sign_in(laptop, "bob")
    sign_in(other, "bob")

    click_menu(laptop, "Your sessions")
    sessions = laptop.locator(".secure-sessions-list > li")
    expect(sessions).to_have_count(2)
    expect(sessions.filter(has_text="This device")).to_contain_text("Chrome · Linux")
    screenshot(laptop, "sessions")
    laptop.get_by_role(
        "button", name=re.compile(r"^Sign out Firefox · Windows, signed in ")
    ).click()

    expect(laptop.get_by_role("status")).to_have_text("That device is signed out.")
    expect(sessions).to_have_count(1)
    expect(sessions).to_contain_text("This device")
    expect_signed_out(other)


def test_sensitive_action_asks_for_the_password_again(
    server: DemoServer, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    page = open_browser()
    sign_in(page, "carol")
    click_menu(page, "Account")
    # Just signed in: the password was given moments ago.
    page.get_by_role("link", name="Change email address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change email address")
    page.go_back()

    server.advance_clock(REAUTH_MAX_AGE + 1)
    page.get_by_role("link", name="Change email address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your password")
    expect(page).to_have_url(re.compile(r"/account/sessions/reauth/\?next=%2Faccount%2Femail%2F$"))
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That password is not correct. Please try again."
    )
    screenshot(page, "reauth")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Change email address")
    page.get_by_label("New email address").fill("carol@new.example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Your email address is changed.")
    expect(page.get_by_role("main")).to_contain_text("carol@new.example.com")


def test_changing_the_password_signs_the_other_sessions_out(open_browser: OpenBrowser) -> None:
    laptop, other = open_browser(), open_browser(FIREFOX_ON_WINDOWS)
    sign_in(laptop, "dave")
    sign_in(other, "dave")
    new_password = "a brand new passphrase"

    click_menu(laptop, "Account")
    laptop.get_by_role("link", name="Change password").click()
    laptop.get_by_label("Old password").fill(PASSWORD)
    laptop.get_by_label("New password:", exact=True).fill(new_password)
    laptop.get_by_label("New password confirmation").fill(new_password)
    laptop.get_by_role("button", name="Change password").click()

    expect(laptop.get_by_role("status")).to_contain_text("Your password is changed.")
    expect(laptop.get_by_role("heading", level=1)).to_have_text("Account")
    expect_signed_out(other)
    sign_in(other, "dave", new_password)


def test_polling_is_not_activity(server: DemoServer, open_browser: OpenBrowser) -> None:
    page = open_browser()
    sign_in(page, "frank")

    def idle_deadline() -> str:
        # As a page's script would poll: a request with the cookie, and nothing else (a
        # navigation would also fetch /favicon.ico, a request like any other).
        response = page.request.get("/api/poll/")
        answer = response.json()
        assert answer["authenticated"], answer
        return str(answer["idle_deadline"])

    signed_in = idle_deadline()
    # Past ACTIVITY_RESOLUTION: a request now would be written down as activity...
    server.advance_clock(ACTIVITY_RESOLUTION + 1)
    # ...but not this one, whose path is in SECURE_SESSIONS_PASSIVE_URLS.
    assert idle_deadline() == signed_in
    assert idle_deadline() == signed_in

    page.goto("/")
    assert idle_deadline() > signed_in


def test_the_admin_signs_a_user_out_everywhere(
    open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    user = open_browser(FIREFOX_ON_WINDOWS)
    sign_in(user, "erin")
    admin = open_browser(width=1280)
    sign_in(admin, ADMIN)

    click_menu(admin, "Admin")
    admin.get_by_role("link", name="Sessions", exact=True).click()
    expect(admin.locator("#result_list")).to_contain_text("erin")
    expect(admin.locator("#changelist-filter")).to_contain_text("By last activity")
    expect(admin.locator("select[name=action]")).to_contain_text("Revoke selected sessions")
    # Every column fits a 1280-pixel screen: neither the table nor the page scrolls sideways.
    assert admin.evaluate(
        "[document.querySelector('.results'), document.documentElement]"
        ".every(box => box.scrollWidth <= box.clientWidth)"
    )
    screenshot(admin, "admin-sessions")

    admin.goto("/admin/auth/user/?q=erin")
    admin.get_by_role("link", name="erin", exact=True).click()
    user_sessions = admin.locator("fieldset", has_text="Active sessions")
    expect(user_sessions).to_contain_text("Firefox")
    screenshot(user_sessions, "admin-user-sessions")
    admin.get_by_role("button", name="Sign out everywhere").click()

    expect(admin.locator(".messagelist")).to_contain_text("Revoked 1 session.")
    expect(admin.locator(".field-secure_sessions")).to_contain_text("No active sessions.")
    expect_signed_out(user)
