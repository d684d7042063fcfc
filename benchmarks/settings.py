"""The benchmark's Django settings, built from the environment.

``DATABASE_URL``
    ``postgres://user:password@host:port/name`` or ``sqlite://...``. Unset: PostgreSQL at
    ``postgres://postgres@127.0.0.1:5432/test`` when it answers, else SQLite. The named
    database is never written to: the benchmark creates its own database beside it
    (PostgreSQL) or a file in a temporary directory (SQLite), and destroys it at the end.
``REDIS_URL``
    ``redis://127.0.0.1:6379`` by default. The benchmark uses database 14 unless the URL
    names another one, refuses database 0, and flushes its database at the end.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

from tests.settings import database_from_url

DEFAULT_POSTGRES_URL: Final = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379"
REDIS_DATABASE: Final = 14
CONNECT_TIMEOUT: Final = 2
CACHE_ALIAS: Final = "default"

SECURE_SESSION_MIDDLEWARE: Final = "django_secure_sessions.middleware.SecureSessionMiddleware"
# A project's usual stack (Django's startproject, plus ours after authentication), for the
# request benchmark, which also runs it without ours.
MIDDLEWARE: Final = (
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    SECURE_SESSION_MIDDLEWARE,
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)

# A real browser's, for the requests of the benchmarks: binding to the user agent parses it.
USER_AGENT: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Backends:
    """Where the benchmark runs, and why there (printed with the results)."""

    database: dict[str, Any]
    database_origin: str
    redis_url: str


def postgres_answers(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT).close()
    except psycopg.Error:
        return False
    return True


def database_from_environment() -> tuple[dict[str, Any], str]:
    if url := os.environ.get("DATABASE_URL"):
        return database_from_url(url), "DATABASE_URL"
    if postgres_answers(DEFAULT_POSTGRES_URL):
        return database_from_url(DEFAULT_POSTGRES_URL), f"default, {DEFAULT_POSTGRES_URL}"
    return database_from_url("sqlite://"), f"fallback: {DEFAULT_POSTGRES_URL} does not answer"


def redis_url_with_database(url: str) -> str:
    """``url`` on the benchmark's database: the one it names, else ``REDIS_DATABASE``."""
    parts = urlsplit(url)
    named = parse_qs(parts.query).get("db", [""])[0]
    if parts.scheme != "unix":  # a unix socket URL's path is the socket's
        named = parts.path.strip("/") or named
    if named == "0":
        # The benchmark flushes its database at the end: never a developer's default one.
        msg = f"REDIS_URL {url!r} names database 0; use another one (default {REDIS_DATABASE})."
        raise ImproperlyConfigured(msg)
    if named:
        return url
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}db={REDIS_DATABASE}"
    return parts._replace(path=f"/{REDIS_DATABASE}").geturl()


def backends_from_environment() -> Backends:
    database, origin = database_from_environment()
    redis_url = redis_url_with_database(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    return Backends(database, origin, redis_url)


def benchmark_database_name(database: dict[str, Any], workdir: Path) -> str:
    """A database of the benchmark's own: a file in ``workdir`` or a per-process name,
    so a concurrent test run (which uses ``test_<name>``) is never clobbered."""
    if database["ENGINE"].endswith("sqlite3"):
        return str(workdir / "benchmark.sqlite3")
    return f"secure_sessions_benchmark_{os.getpid()}"


def django_settings(backends: Backends, workdir: Path) -> dict[str, Any]:
    """Keyword arguments for ``settings.configure()``."""
    database = backends.database
    return {
        # A throwaway secret: nothing signed here outlives the run.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_secure_sessions",
        ],
        # For the request benchmark; SESSION_ENGINE is set per case there.
        "MIDDLEWARE": list(MIDDLEWARE),
        "ROOT_URLCONF": "benchmarks.urls",
        "ALLOWED_HOSTS": ["testserver"],  # the test client's host
        "DATABASES": {
            "default": {**database, "TEST": {"NAME": benchmark_database_name(database, workdir)}}
        },
        "CACHES": {
            CACHE_ALIAS: {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": backends.redis_url,
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 5, "SOCKET_TIMEOUT": 5},
            }
        },
        "SESSION_CACHE_ALIAS": CACHE_ALIAS,
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
    }
