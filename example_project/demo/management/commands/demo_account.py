from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the demo superuser, or give it back its demo password; print both."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-password")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        password: str = options["password"]
        user, created = get_user_model()._default_manager.get_or_create(username=username)
        # Setting the same password again would still change its hash, and a password change
        # signs the account out everywhere: only touch it when it differs.
        if created or not user.check_password(password):
            user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        # Somewhere for the "new sign-in" e-mail to go (printed by the demo's server).
        user.email = user.email or f"{username}@demo.example"
        user.save()
        self.stdout.write(f"Demo account: username {username!r}, password {password!r}")
