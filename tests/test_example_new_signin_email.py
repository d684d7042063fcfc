"""The example project's "new sign-in" e-mail (example_project/demo/signins.py).

The example runs on a real server (tests/e2e/server.py, the ``db`` engine, a fresh SQLite
database); the tests sign in through its login page as browsers do, each with a user agent
of its own. The demo's e-mail backend is the console's: the e-mails it sends are in the
server's log, as the user would receive them.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_string
from email.message import Message

import pytest

from tests.e2e.harness import CHROME_ON_LINUX, FIREFOX_ON_WINDOWS, DemoServer, start_server
from tests.live_client import Browser

SUBJECT = "New sign-in to your account"
# What the console backend writes after each message.
SEPARATOR = "-" * 79
# Firefox on Windows again, one version later: the same device.
NEWER_FIREFOX_ON_WINDOWS = FIREFOX_ON_WINDOWS.replace("133.0", "134.0")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    server = start_server("db", tmp_path_factory.mktemp("new-signin-email"))
    yield server
    server.stop()


def sign_in(demo: DemoServer, username: str, user_agent: str) -> Browser:
    browser = Browser(demo, user_agent=user_agent)
    browser.sign_in(username)  # asserts the login page's redirect: signed in
    return browser


def emails_to(demo: DemoServer, address: str) -> list[Message]:
    """The e-mails the server has sent to ``address``, oldest first."""
    found = []
    for block in demo.log().split(SEPARATOR):
        start = block.find("Content-Type: ")
        if start != -1:
            message = message_from_string(block[start:])
            if message["To"] == address:
                found.append(message)
    return found


def test_a_sign_in_on_a_new_device_emails_the_user(demo: DemoServer) -> None:
    first = sign_in(demo, "alice", FIREFOX_ON_WINDOWS)
    # The first device an account signs in from is nothing to warn about.
    assert emails_to(demo, "alice@example.com") == []

    second = sign_in(demo, "alice", CHROME_ON_LINUX)

    [email] = emails_to(demo, "alice@example.com")
    assert email["Subject"] == SUBJECT
    assert email["From"] == "security@demo.example"
    body = email.get_payload()
    assert isinstance(body, str)
    assert "Chrome on Linux" in body
    assert f"{demo.base_url}/account/sessions/" in body
    # Nothing in it opens the account: neither session's key, nor the CSRF token.
    for browser in (first, second):
        for value in browser.cookies.values():
            assert value not in body


def test_signing_in_again_on_a_known_device_sends_nothing(demo: DemoServer) -> None:
    sign_in(demo, "bob", FIREFOX_ON_WINDOWS)
    sign_in(demo, "bob", CHROME_ON_LINUX)
    assert len(emails_to(demo, "bob@example.com")) == 1

    # The same browser again, in another session, and after it updated itself.
    sign_in(demo, "bob", FIREFOX_ON_WINDOWS)
    sign_in(demo, "bob", NEWER_FIREFOX_ON_WINDOWS)
    sign_in(demo, "bob", CHROME_ON_LINUX)

    assert len(emails_to(demo, "bob@example.com")) == 1
