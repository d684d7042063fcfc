from django.apps import AppConfig, apps
from django.core import checks
from django.utils.translation import gettext_lazy as _


class SecureSessionsConfig(AppConfig):
    name = "django_secure_sessions"
    verbose_name = _("Secure sessions")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks as app_checks
        from . import handlers

        checks.register(app_checks.check_configuration, checks.Tags.security)
        checks.register(app_checks.check_deploy, checks.Tags.security, deploy=True)
        handlers.connect()
        if apps.is_installed("django.contrib.admin"):
            # The admin's autodiscovery has run by now when django.contrib.admin comes
            # before this app; this also catches a user admin registered after ours.
            from .admin import install_user_admin

            install_user_admin()
