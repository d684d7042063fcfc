"""Settings of the example project: a local demo, written to be copied from.

What a real project needs from django-secure-sessions is marked "django-secure-sessions";
what only a demo on your machine gets away with is marked "Demo only".

Environment:

``DEMO_SESSION_ENGINE``
    ``db`` (the default: sessions in the SQLite database) or ``redis`` (sessions in Redis,
    through django-redis; ``make demo-redis`` sets it).
``REDIS_URL``
    The Redis server of the ``redis`` engine, ``redis://127.0.0.1:6379/0`` by default.
``DEMO_REAUTH_MAX_AGE``
    The re-authentication window in seconds (300 by default). Set it to 20, say, to be asked
    for your password again soon after signing in.
"""

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Demo only: a real project reads its secret key from the environment, and keeps DEBUG off.
SECRET_KEY = "django-insecure-django-secure-sessions-demo"  # noqa: S105
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # First, so that its templates override those of the apps below: its
    # django_secure_sessions/base.html puts the "Your sessions" and re-authentication pages
    # in the demo's layout, and its registration/ pages replace the admin's.
    "demo",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # django-secure-sessions: the app (models, admin, checks, management commands).
    "django_secure_sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # django-secure-sessions: right after AuthenticationMiddleware, whose user it checks
    # (timeouts, binding to the client) before any view runs.
    "django_secure_sessions.middleware.SecureSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "demo.context_processors.demo",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"


# -- Sessions -------------------------------------------------------------------------

# django-secure-sessions: one of its two engines. The demo keeps sessions in its SQLite
# database, or in Redis with DEMO_SESSION_ENGINE=redis (`make demo-redis`).
DEMO_SESSION_ENGINE = os.environ.get("DEMO_SESSION_ENGINE") or "db"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

CACHES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
if DEMO_SESSION_ENGINE == "db":
    SESSION_ENGINE = "django_secure_sessions.backends.db"
elif DEMO_SESSION_ENGINE == "redis":
    SESSION_ENGINE = "django_secure_sessions.backends.redis"
    # The Redis engine talks to Redis through the django-redis cache named by
    # SESSION_CACHE_ALIAS. A cache of its own keeps sessions apart from cached data, which
    # may be evicted (maxmemory-policy) or flushed without signing anybody out.
    SESSION_CACHE_ALIAS = "sessions"
    CACHES["sessions"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "demo",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # A Redis that stops answering fails the request instead of hanging it.
            "SOCKET_CONNECT_TIMEOUT": 5,
            "SOCKET_TIMEOUT": 5,
        },
    }
else:
    msg = f"DEMO_SESSION_ENGINE={DEMO_SESSION_ENGINE!r}: use 'db' or 'redis'."
    raise ImproperlyConfigured(msg)

# Django's defaults, written out because they matter: JavaScript can't read the session
# cookie (an XSS can't steal it), and browsers don't send it on cross-site POSTs.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Leave SESSION_COOKIE_DOMAIN unset: a cookie for the host alone can't be set by a sibling
# subdomain (session fixation), which check --deploy reports (secure_sessions.W013).

# In production, over HTTPS (`manage.py check --deploy` reminds you):
# SESSION_COOKIE_SECURE = True      # the cookie never travels over plain HTTP
# CSRF_COOKIE_SECURE = True
# SECURE_SSL_REDIRECT = True
# SECURE_HSTS_SECONDS = 31536000    # browsers never try plain HTTP again
# SESSION_COOKIE_NAME = "__Host-sessionid"  # with Secure and no domain: host-only for sure

# django-secure-sessions. Each value below is its default, written out to show it; a
# project sets only what it changes.
SECURE_SESSIONS_IDLE_TIMEOUT = 30 * 60  # signed out after 30 minutes without activity
SECURE_SESSIONS_ABSOLUTE_TIMEOUT = 12 * 60 * 60  # and 12 hours after signing in, whatever
SECURE_SESSIONS_ACTIVITY_RESOLUTION = 60  # activity is written at most once a minute
# Sensitive actions (changing the email address or the password, signing other devices
# out) need a password confirmed this recently.
SECURE_SESSIONS_REAUTH_MAX_AGE = int(os.environ.get("DEMO_REAUTH_MAX_AGE") or 5 * 60)
# A session only works from the network (a /24 for IPv4) and the browser family it
# signed in from.
SECURE_SESSIONS_BIND_IP = "subnet"
SECURE_SESSIONS_BIND_USER_AGENT = "family"

# The client address that binding compares is REMOTE_ADDR. Behind a reverse proxy or a load
# balancer, REMOTE_ADDR is the proxy's, and the client's is in X-Forwarded-For, which the
# client can write too: list the proxies' addresses here, and only the hops they added are
# believed. Never list a network that clients can send from.
# SECURE_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8"]
SECURE_SESSIONS_TRUSTED_PROXIES: list[str] = []

# Requests that must not keep a session alive: the demo's poll endpoint, which a page
# could call every few seconds while nobody is at the keyboard.
SECURE_SESSIONS_PASSIVE_URLS = [r"^/api/poll/$"]

# At most this many sessions per user; signing in once more ends the oldest.
# SECURE_SESSIONS_MAX_PER_USER = 5


# -- The rest ------------------------------------------------------------------------------

# Demo only: e-mails (the "new sign-in" warning of demo/signins.py) are printed by the
# development server instead of being sent. A real project sets its mail server here.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "security@demo.example"

# What django-secure-sessions does (sessions ended, revoked, rotated, binding mismatches),
# printed by the development server.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_secure_sessions": {"handlers": ["console"], "level": "INFO"},
    },
}

TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"
