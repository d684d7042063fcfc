"""The load benchmark's project: the configurations it serves, and their settings.

Each configuration is what its documentation tells a user to set up (engine, app, session
middleware), on the stack of ``benchmarks.settings.MIDDLEWARE``. The served processes read
their settings from ``benchmarks/load_settings.py``, which calls ``project_settings()``
with what the environment says (see ``served_environment()``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Final

from benchmarks.settings import CACHE_ALIAS, MIDDLEWARE, SECURE_SESSION_MIDDLEWARE
from tests.settings import database_from_url

DJANGO_SESSIONS_APP: Final = "django.contrib.sessions"
DJANGO_SESSION_MIDDLEWARE: Final = "django.contrib.sessions.middleware.SessionMiddleware"
OUR_APP: Final = "django_secure_sessions"

# The project's pages (benchmarks/load_urls.py).
LOGIN: Final = "/login/"
PAGE: Final = "/page/"  # reads the session
NOTE: Final = "/note/"  # POST: writes to it
API: Final = "/api/me/"  # JSON
HEALTH: Final = "/health/"  # no session

# What a site keeps in a signed-in user's session besides login()'s keys, set at login.
PREFERENCES: Final = {
    "theme": "dark",
    "language": "en-gb",
    "timezone": "Europe/Paris",
    "recent": [10342, 10877, 11003, 11250],
}
NOTES_KEY: Final = "notes"

# The benchmark's users: username(0), username(1) ... all with this password.
PASSWORD: Final = "load benchmark password"  # noqa: S105 - throwaway accounts


def username(number: int) -> str:
    return f"user{number:04d}"


POSTGRESQL: Final = "PostgreSQL"
REDIS: Final = "Redis"


@dataclass(frozen=True)
class Configuration:
    """One way a project keeps its sessions, as its documentation sets it up."""

    label: str
    engine: str  # SESSION_ENGINE
    stores: tuple[str, ...]  # where the sessions live
    sessions_app: str = DJANGO_SESSIONS_APP  # in INSTALLED_APPS, in its place
    session_middleware: str = DJANGO_SESSION_MIDDLEWARE  # in SessionMiddleware's place
    ours: bool = False  # our app, and our middleware after AuthenticationMiddleware
    distribution: str | None = None  # a peer's package on the index, for "n/a" reasons

    @property
    def slug(self) -> str:
        """For names: databases, environment values."""
        return self.label.replace(" ", "_").replace("-", "_")

    @property
    def installed_apps(self) -> list[str]:
        apps = [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            self.sessions_app,
            "django.contrib.messages",
        ]
        return [*apps, OUR_APP] if self.ours else apps

    @property
    def middleware(self) -> list[str]:
        return [
            self.session_middleware if name == DJANGO_SESSION_MIDDLEWARE else name
            for name in MIDDLEWARE
            if self.ours or name != SECURE_SESSION_MIDDLEWARE
        ]

    def missing(self) -> str | None:
        """Why this configuration can't be served here (its package is not installed)."""
        if self.distribution is None or importlib.util.find_spec(self.sessions_app):
            return None
        return f"not installed (pip install {self.distribution})"


DJANGO_DB: Final = Configuration("django db", "django.contrib.sessions.backends.db", (POSTGRESQL,))
DJANGO_CACHE: Final = Configuration(
    "django cache", "django.contrib.sessions.backends.cache", (REDIS,)
)
DJANGO_CACHED_DB: Final = Configuration(
    "django cached_db", "django.contrib.sessions.backends.cached_db", (POSTGRESQL, REDIS)
)
# https://django-user-sessions.readthedocs.io/en/stable/installation.html
USER_SESSIONS: Final = Configuration(
    "django-user-sessions",
    "user_sessions.backends.db",
    (POSTGRESQL,),
    sessions_app="user_sessions",
    session_middleware="user_sessions.middleware.SessionMiddleware",
    distribution="django-user-sessions",
)
# https://github.com/QueraTeam/django-qsessions#installation
QSESSIONS: Final = Configuration(
    "django-qsessions",
    "qsessions.backends.db",
    (POSTGRESQL,),
    sessions_app="qsessions",
    session_middleware="qsessions.middleware.SessionMiddleware",
    distribution="django-qsessions",
)
OURS_DB: Final = Configuration(
    "ours db", "django_secure_sessions.backends.db", (POSTGRESQL,), ours=True
)
OURS_REDIS: Final = Configuration(
    "ours redis", "django_secure_sessions.backends.redis", (REDIS,), ours=True
)
CONFIGURATIONS: Final = (
    DJANGO_DB,
    DJANGO_CACHE,
    DJANGO_CACHED_DB,
    USER_SESSIONS,
    QSESSIONS,
    OURS_DB,
    OURS_REDIS,
)


def configuration_named(slug: str) -> Configuration:
    for configuration in CONFIGURATIONS:
        if configuration.slug == slug:
            return configuration
    raise LookupError(f"no configuration {slug!r}: one of {[c.slug for c in CONFIGURATIONS]}")


# -- settings ----------------------------------------------------------------------------

# Each server process keeps a small pool of database connections (Django's own pool,
# psycopg_pool): a connection per request would cost more than the session itself, and
# persistent connections don't work under ASGI, where every request runs its database
# work on a thread of its own. Small, because every configuration is served at once (two
# servers of two processes each) and PostgreSQL accepts 100 connections by default;
# connections beyond one are closed after a few idle seconds.
POOL: Final = {"min_size": 1, "max_size": 4, "max_idle": 5}

# Logins happen before the measured phase; Django's default hasher (PBKDF2, a million
# iterations) would make them take minutes for a few hundred users on two cores.
FAST_HASHER: Final = "django.contrib.auth.hashers.MD5PasswordHasher"


def project_settings(
    configuration: Configuration,
    *,
    database_url: str,
    redis_url: str,
    secret_key: str,
    async_views: bool,
    installed_apps: list[str] | None = None,
) -> dict[str, Any]:
    """The settings of ``configuration`` served on ``database_url`` and ``redis_url``;
    ``installed_apps`` replaces its apps (to create every configuration's tables at once)."""
    database = database_from_url(database_url)
    return {
        "SECRET_KEY": secret_key,
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1"],
        "INSTALLED_APPS": installed_apps or configuration.installed_apps,
        "MIDDLEWARE": configuration.middleware,
        "ROOT_URLCONF": "benchmarks.load_urls",
        "LOAD_ASYNC_VIEWS": async_views,
        "LOAD_OUR_URLS": configuration.ours,
        "DATABASES": {"default": {**database, "OPTIONS": {"pool": POOL}}},
        "CACHES": {
            CACHE_ALIAS: {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 5, "SOCKET_TIMEOUT": 5},
            }
        },
        "SESSION_ENGINE": configuration.engine,
        "SESSION_CACHE_ALIAS": CACHE_ALIAS,
        "PASSWORD_HASHERS": [FAST_HASHER],
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            # Tracebacks of 500s, in the server's log.
            "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
        },
    }


# The environment of a served process, read by benchmarks/load_settings.py.
ENV_CONFIGURATION: Final = "LOAD_CONFIGURATION"
ENV_DATABASE_URL: Final = "LOAD_DATABASE_URL"
ENV_REDIS_URL: Final = "LOAD_REDIS_URL"
ENV_SECRET_KEY: Final = "LOAD_SECRET_KEY"  # noqa: S105 - a variable's name
ENV_ASYNC_VIEWS: Final = "LOAD_ASYNC_VIEWS"


def served_environment(
    configuration: Configuration,
    *,
    database_url: str,
    redis_url: str,
    secret_key: str,
    async_views: bool,
) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "benchmarks.load_settings",
        ENV_CONFIGURATION: configuration.slug,
        ENV_DATABASE_URL: database_url,
        ENV_REDIS_URL: redis_url,
        ENV_SECRET_KEY: secret_key,
        ENV_ASYNC_VIEWS: "1" if async_views else "0",
    }
