"""The session engines. Importing any of them (Django's ``SessionMiddleware`` does, when the
server loads its middleware, as does ours) requires the app to be installed."""

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

# Without "django_secure_sessions" in INSTALLED_APPS none of the app's start-up runs: no
# system checks (so `manage.py check` cannot report this: Django imports neither
# SESSION_ENGINE nor MIDDLEWARE there), no login, logout and password-change handlers (so
# a login would not rotate the key into the user's index, a password change would not end
# the user's other sessions), and the db engine's model belongs to no app. Serving sessions
# with half their protections would be worse than not serving: refuse, naming the fix, when
# the server loads its middleware, before the first request. (While the app registry is
# still filling, this is the app being installed: its package imports the API, which
# imports this.)
if apps.apps_ready and not apps.is_installed("django_secure_sessions"):
    msg = (
        "django_secure_sessions is used (SESSION_ENGINE or MIDDLEWARE names it) but is not in "
        'INSTALLED_APPS: add "django_secure_sessions" to INSTALLED_APPS (after '
        '"django.contrib.sessions"), then run `manage.py migrate`.'
    )
    raise ImproperlyConfigured(msg)
