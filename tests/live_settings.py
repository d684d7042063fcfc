"""The suite's project as tests/live_server.py serves it, for tests through a real server.

tests/settings.py, and from the environment (set by tests/test_reauth_burst.py):
``LIVE_DATABASE_URL`` (a database of the server's own), ``LIVE_SESSION_ENGINE``,
``LIVE_REDIS_URL`` and ``LIVE_REDIS_KEY_PREFIX`` (and ``LIVE_REDIS_CLUSTER=1`` when the
URL lists the nodes of a Redis Cluster), and optionally ``LIVE_CONN_MAX_AGE``
(seconds, or ``none`` for connections kept for good) and ``LIVE_STATEMENT_TIMEOUT_MS`` (on
PostgreSQL), ``LIVE_CSP=1`` to serve every page under a Content Security Policy
(tests/csp.py), ``LIVE_ACTIVITY_RESOLUTION`` and ``LIVE_MAX_PER_USER`` (the settings
``SECURE_SESSIONS_*``), and ``LIVE_REDIS_SENTINELS`` (``host:port,...``: Redis through
django-redis's Sentinel client, ``LIVE_REDIS_URL`` then naming the service, as
docs/howto/redis.rst shows); the password checks go through the test's
gate (tests/gate.py); the package's log goes to the server's output, where the tests read
it.
"""

import os
from typing import Any, cast

from tests.settings import *  # noqa: F403
from tests.settings import database_from_url

DATABASES = {"default": database_from_url(os.environ["LIVE_DATABASE_URL"])}
if (max_age := os.environ.get("LIVE_CONN_MAX_AGE")) is not None:
    DATABASES["default"]["CONN_MAX_AGE"] = None if max_age == "none" else int(max_age)
if timeout := os.environ.get("LIVE_STATEMENT_TIMEOUT_MS"):
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c statement_timeout={timeout}"
SESSION_ENGINE = os.environ["LIVE_SESSION_ENGINE"]
# LIVE_REDIS_CLUSTER=1: LIVE_REDIS_URL lists the nodes of a Redis Cluster, comma-separated.
SECURE_SESSIONS_REDIS_CLUSTER = os.environ.get("LIVE_REDIS_CLUSTER") == "1"
CACHES["default"]["LOCATION"] = (  # noqa: F405
    os.environ["LIVE_REDIS_URL"].split(",")
    if SECURE_SESSIONS_REDIS_CLUSTER
    else os.environ["LIVE_REDIS_URL"]
)
CACHES["default"]["KEY_PREFIX"] = os.environ["LIVE_REDIS_KEY_PREFIX"]  # noqa: F405
if sentinels := os.environ.get("LIVE_REDIS_SENTINELS"):
    options = cast("dict[str, Any]", CACHES["default"]["OPTIONS"])  # noqa: F405
    options["CLIENT_CLASS"] = "django_redis.client.SentinelClient"
    options["CONNECTION_FACTORY"] = "django_redis.pool.SentinelConnectionFactory"
    options["SENTINELS"] = [
        (host, int(port)) for host, port in (s.rsplit(":", 1) for s in sentinels.split(","))
    ]
if resolution := os.environ.get("LIVE_ACTIVITY_RESOLUTION"):
    SECURE_SESSIONS_ACTIVITY_RESOLUTION = int(resolution)
if max_per_user := os.environ.get("LIVE_MAX_PER_USER"):
    SECURE_SESSIONS_MAX_PER_USER = int(max_per_user)
if os.environ.get("LIVE_CSP") == "1":
    MIDDLEWARE = ["tests.csp.ContentSecurityPolicyMiddleware", *MIDDLEWARE]  # noqa: F405
AUTHENTICATION_BACKENDS = ["tests.gate.GatedBackend"]
ALLOWED_HOSTS = ["127.0.0.1"]
# Low enough that a test reaches it with a few sessions (the default is 20).
SECURE_SESSIONS_REAUTH_USER_MAX_FAILURES = 8

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_secure_sessions": {"handlers": ["console"], "level": "INFO"},
        # Tracebacks of 500s, which the tests show with the log.
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
