"""Helpers for the tests that drive the pages through the test client: the re-auth view,
the user's own sessions pages and the admin."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import AsyncClient, Client

from django_secure_sessions.backends.base import session_id_for_key
from tests.factories import PASSWORD

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedASGIResponse, _MonkeyPatchedWSGIResponse

    Response = _MonkeyPatchedWSGIResponse | _MonkeyPatchedASGIResponse

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

JSON = {"Accept": "application/json"}
LOGIN_URL = "/accounts/login/"


class Browser(Client):
    """A test client that sends the same address and user agent on every request, as a
    real browser does (sessions are bound to both), and remembers every session key it
    held and every page it got, for ``Browsers.assert_no_key_shown``."""

    def __init__(
        self,
        user_agent: str = CHROME_ON_WINDOWS,
        ip: str = "198.51.100.7",
        *,
        enforce_csrf_checks: bool = False,
    ) -> None:
        super().__init__(
            enforce_csrf_checks=enforce_csrf_checks, REMOTE_ADDR=ip, HTTP_USER_AGENT=user_agent
        )
        self.keys_held: set[str] = set()
        self.pages: list[bytes] = []

    def request(self, **request: Any) -> Any:
        self._note_key()
        response = super().request(**request)
        self._note_key()
        self.pages.append(response.content)
        return response

    def _note_key(self) -> None:
        if has_session_cookie(self):
            self.keys_held.add(session_key(self))


def browser(
    user_agent: str = CHROME_ON_WINDOWS,
    ip: str = "198.51.100.7",
    *,
    enforce_csrf_checks: bool = False,
) -> Browser:
    return Browser(user_agent, ip, enforce_csrf_checks=enforce_csrf_checks)


class AsyncClientFrom(AsyncClient):
    """An ``AsyncClient`` whose requests come from ``remote_addr``.

    ASGI takes ``REMOTE_ADDR`` from the scope's ``client``, which ``AsyncClient`` has no
    argument for (its keyword arguments become headers).
    """

    remote_addr = "127.0.0.1"

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)  # type: ignore[misc]
        scope["client"] = [self.remote_addr, 50000]
        return scope


async def send_on_either_path(
    client: Client | AsyncClientFrom,
    method: str,
    path: str,
    data: dict[str, str] | None,
    *,
    headers: Mapping[str, str],
    ip: str,
) -> Response:
    """A request from ``ip`` through the middleware's async path (``AsyncClientFrom``) or
    its sync one (``Client``, in a thread), as the tests that run on both paths send it."""
    if isinstance(client, AsyncClientFrom):
        client.remote_addr = ip
        response: Response = await getattr(client, method)(path, data, headers=headers)
        return response
    send = sync_to_async(getattr(client, method))
    return cast("Response", await send(path, data, headers=headers, REMOTE_ADDR=ip))


async def force_login_on_either_path(client: Client | AsyncClientFrom, user: Any) -> None:
    """A login outside any request (the test client's ``force_login``), on either path."""
    assert isinstance(user, User)  # the test suite's AUTH_USER_MODEL
    if isinstance(client, AsyncClientFrom):
        await client.aforce_login(user)
    else:
        await sync_to_async(client.force_login)(user)


class Browsers:
    """The browsers of one test, to check at its end that no page any of them got shows
    a session key any of them held."""

    def __init__(self) -> None:
        self.opened: list[Browser] = []

    def open(
        self,
        user_agent: str = CHROME_ON_WINDOWS,
        ip: str = "198.51.100.7",
        *,
        enforce_csrf_checks: bool = False,
    ) -> Browser:
        opened = browser(user_agent, ip, enforce_csrf_checks=enforce_csrf_checks)
        self.opened.append(opened)
        return opened

    def assert_no_key_shown(self) -> None:
        keys = {key for opened in self.opened for key in opened.keys_held}
        pages = [page for opened in self.opened for page in opened.pages]
        assert keys, "no session was used: nothing was checked"
        assert pages
        for key in keys:
            assert all(key.encode() not in page for page in pages), f"session key {key} shown"


def sign_in(client: Client, user: Any, password: str = PASSWORD) -> None:
    """Sign in through the login page, as a person would (the session is bound to the
    browser at once)."""
    token = csrf_token(client, LOGIN_URL)
    response = client.post(
        LOGIN_URL,
        {"username": user.get_username(), "password": password, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302, response.content


def session_key(client: Client | AsyncClient) -> str:
    """The session cookie's value: the secret that must never show up anywhere."""
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def session_id(client: Client | AsyncClient) -> str:
    """The public id of the client's session."""
    return session_id_for_key(session_key(client))


def has_session_cookie(client: Client | AsyncClient) -> bool:
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie is not None and cookie.value != ""


def csrf_token(client: Client, page: str) -> str:
    """The CSRF token a browser would send after loading ``page``."""
    response = client.get(page)
    assert response.status_code == 200, (page, response.status_code)
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def redirect_target(response: HttpResponseBase) -> tuple[str, dict[str, list[str]]]:
    """Where a redirect goes: its path and its query."""
    assert response.status_code == 302, response.status_code
    parts = urlsplit(response["Location"])
    return parts.path, parse_qs(parts.query)


def cookie_deleted(response: HttpResponseBase) -> bool:
    cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie is not None and cookie.value == "" and cookie["max-age"] == 0


def assert_no_key_in(sent: Iterable[dict[str, Any]], *keys: str) -> None:
    """No argument of any signal carries a session key."""
    assert all(keys), "a key to look for is missing"
    for kwargs in sent:
        for value in kwargs.values():
            if isinstance(value, str):
                assert all(key not in value for key in keys), kwargs


class _Elements(HTMLParser):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == self.tag:
            self.found.append(dict(attrs))


def elements(html: str | bytes, tag: str, **attributes: str) -> list[dict[str, str | None]]:
    """The attributes of each ``tag`` element of ``html`` having ``attributes``."""
    parser = _Elements(tag)
    parser.feed(html.decode() if isinstance(html, bytes) else html)
    return [
        found
        for found in parser.found
        if all(found.get(name) == value for name, value in attributes.items())
    ]
