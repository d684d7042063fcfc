"""Settings of the example project as the end-to-end tests serve it (tests/e2e/server.py).

The demo's own settings, read from the environment as ``make demo`` reads them
(``DEMO_SESSION_ENGINE``, ``REDIS_URL``, ``DEMO_REAUTH_MAX_AGE``), and:

- the database in ``E2E_DATABASE``, a fresh file per test run;
- the URL that moves the server's clock;
- fast password hashing (what the tests check doesn't depend on it);
- Redis keys under ``E2E_REDIS_KEY_PREFIX``, apart from those of other runs.
"""

import os

from demo.settings import *  # noqa: F403

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["E2E_DATABASE"]},
}
ROOT_URLCONF = "tests.e2e.server_urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if "sessions" in CACHES:  # noqa: F405
    CACHES["sessions"]["KEY_PREFIX"] = os.environ["E2E_REDIS_KEY_PREFIX"]  # noqa: F405
