from django.apps import AppConfig
from django.core import checks


class SecureSessionsConfig(AppConfig):
    name = "django_secure_sessions"
    verbose_name = "Secure sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks as app_checks
        from . import handlers

        checks.register(app_checks.check_configuration, checks.Tags.security)
        checks.register(app_checks.check_deploy, checks.Tags.security, deploy=True)
        handlers.connect()
