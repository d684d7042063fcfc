from django.apps import AppConfig
from django.core import checks


class DemoConfig(AppConfig):
    name = "demo"

    def ready(self) -> None:
        from demo.checks import check_redis

        checks.register(check_redis)
