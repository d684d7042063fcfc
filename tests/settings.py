"""Django settings for the test suite (pytest-django loads them: see pyproject.toml).

Environment:

``DATABASE_URL``
    Unset or ``sqlite://...``: SQLite. ``postgres://user:password@host:port/name``:
    PostgreSQL, whose test database Django creates beside ``name``.
``TEST_REDIS_URL``
    Set by the pytest plugin ``tests.redis_server`` from ``REDIS_URL`` before these settings
    are read; the default only serves tools that read them outside pytest (mypy).
``TEST_DJANGO_SUITE_DIR``
    Set by the pytest plugin ``tests.django_suite`` when it has brought Django's own session
    tests: their app ``sessions_tests`` is then installed.
"""

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def database_from_url(url: str) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` for a ``sqlite://`` or ``postgres://`` URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.sqlite3 names a file, sqlite:// and sqlite:///:memory: memory.
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:] or ":memory:"}
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    msg = f"DATABASE_URL {url!r}: use sqlite:// or postgres://user@host:port/name."
    raise ImproperlyConfigured(msg)


SECRET_KEY = "django-secure-sessions-tests-only"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_secure_sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_secure_sessions.middleware.SecureSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Django's own session tests (tests/django_suite.py), whose custom session model needs its
# app installed; here, so that a command run in a subprocess by the tests finds it too.
if DJANGO_SUITE_DIR := os.environ.get("TEST_DJANGO_SUITE_DIR"):
    sys.path.append(DJANGO_SUITE_DIR)
    INSTALLED_APPS.append("sessions_tests")

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # tests/templates: the login page of the tests' own views (tests/urls.py).
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", "sqlite://"))}
# A second database, for the commands' --database (tests/test_commands.py); created only
# for the tests that ask for it. Its test database must not be the default's.
DATABASES["other"] = {
    **DATABASES["default"],
    "TEST": {"NAME": f"test_{DATABASES['default']['NAME'].strip(':')}_other"},
}
if DATABASES["other"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["other"]["TEST"] = {}  # an in-memory database of its own
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # A Redis that stops answering fails the test instead of hanging the suite.
            "SOCKET_CONNECT_TIMEOUT": 5,
            "SOCKET_TIMEOUT": 5,
        },
    },
}

SESSION_ENGINE = "django_secure_sessions.backends.db"

# Hashing speed is irrelevant to what the tests check.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

USE_TZ = True
STATIC_URL = "static/"

# The cluster mode of the suite (REDIS_CLUSTER=1, see tests/redis_server.py): the Redis
# engine reaches the cluster's nodes, named in the cache's LOCATION.
if CLUSTER_URLS := os.environ.get("TEST_REDIS_CLUSTER_URLS"):
    CACHES["default"]["LOCATION"] = CLUSTER_URLS.split(",")
    SECURE_SESSIONS_REDIS_CLUSTER = True
