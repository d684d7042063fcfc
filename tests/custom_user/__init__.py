"""A custom user model for the admin tests: email as ``USERNAME_FIELD``, a UUID primary
key, and a plain ``ModelAdmin`` (no ``UserAdmin``). Installed only by
tests/settings_custom_user.py; its tests are tests/custom_user/admin_checks.py."""
