"""The test settings with a custom user model (tests/custom_user), for the tests in
tests/custom_user/admin_checks.py, which tests/test_admin.py runs in a pytest of their own
(``--ds=tests.settings_custom_user``)."""

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

# Before django_secure_sessions, whose admin module wraps the user admin registered by
# then (install_user_admin).
INSTALLED_APPS = [
    *(app for app in INSTALLED_APPS if app != "django_secure_sessions"),
    "tests.custom_user",
    "django_secure_sessions",
]

AUTH_USER_MODEL = "custom_user.EmailUser"

# A test database of its own on PostgreSQL: this run may start while the main suite's
# test database is in use.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_custom_user"}
