from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.core import checks


class DemoConfig(AppConfig):
    name = "demo"

    def ready(self) -> None:
        from demo.checks import check_redis
        from demo.signins import email_on_new_device

        checks.register(check_redis)
        # The "new sign-in" e-mail (demo/signins.py).
        user_logged_in.connect(email_on_new_device, dispatch_uid="demo.email_on_new_device")
