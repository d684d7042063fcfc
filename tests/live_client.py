"""A client of the suite's project served by a real server (tests/live_server.py), and
the database such a server runs on: shared by the tests through a real server."""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from django.conf import settings

from tests.gate import REAUTH_PATH
from tests.live_server import PASSWORD
from tests.served import ServedProcess

LOGIN_PATH = "/accounts/login/"
# How long one request may take to be answered on a slow machine.
REQUEST_TIMEOUT = 60


@dataclass
class Response:
    status: int
    location: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Browser:
    """A client of the live server with a cookie jar, as one browser (or script) is."""

    server: ServedProcess
    cookies: dict[str, str] = field(default_factory=dict)
    # The User-Agent header it sends; none when empty, as http.client sends.
    user_agent: str = ""

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, accept: str = "*/*"
    ) -> Response:
        connection = http.client.HTTPConnection(
            self.server.host, self.server.port, timeout=REQUEST_TIMEOUT
        )
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Accept": accept,
        }
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        body = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode({**form, "csrfmiddlewaretoken": self.cookies["csrftoken"]})
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            for header in answer.headers.get_all("Set-Cookie") or ():
                self._keep(header)
            return Response(
                answer.status,
                answer.getheader("Location") or "",
                answer.read().decode(),
                dict(answer.getheaders()),
            )
        finally:
            connection.close()

    def _keep(self, header: str) -> None:
        for name, morsel in SimpleCookie(header).items():
            if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    def sign_in(self, username: str) -> None:
        self.request("GET", LOGIN_PATH)
        answer = self.request("POST", LOGIN_PATH, {"username": username, "password": PASSWORD})
        assert answer.status == HTTPStatus.FOUND, answer.body

    @property
    def session_key(self) -> str | None:
        return self.cookies.get(settings.SESSION_COOKIE_NAME)

    def signed_in_as(self) -> str:
        """Who the server says is signed in here ("" for nobody)."""
        return self.request("GET", "/whoami/").body

    def attempt(self, password: str) -> Response:
        return self.request("POST", REAUTH_PATH, {"password": password})


def live_env(engine: str, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of tests/live_server.py (see tests/live_settings.py): ``engine``
    (a module path) on these databases, its Redis keys under a prefix of its own."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "LIVE_DATABASE_URL": database_url,
        "LIVE_SESSION_ENGINE": engine,
        "LIVE_REDIS_URL": redis_url,
        "LIVE_REDIS_KEY_PREFIX": f"live-{secrets.token_hex(4)}",
        "LIVE_GATE": "",
        **extra,
    }


@contextmanager
def own_database(directory: Path) -> Iterator[str]:
    """The URL of a new database for a server, on the suite's database server."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        yield f"sqlite:///{directory / 'db.sqlite3'}"
        return
    name = f"dss_live_{secrets.token_hex(4)}"
    params = {
        "host": database["HOST"],
        "port": database["PORT"],
        "user": database["USER"],
        "password": database["PASSWORD"],
        "dbname": "postgres",
    }
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        user = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
        yield f"postgres://{user}@{database['HOST']}:{database['PORT']}/{name}"
    finally:
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
