"""An authentication backend standing for an external directory (LDAP, SSO ...), whose
password for a user is not the one in the user table."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

DOTTED_PATH = "tests.auth_backends.DirectoryBackend"


def directory_password(username: str) -> str:
    return f"directory password of {username}"


class DirectoryBackend(BaseBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None or password != directory_password(username):
            return None
        return self.get_user_by_name(username)

    @staticmethod
    def get_user_by_name(username: str) -> User | None:
        user_model = get_user_model()
        try:
            return user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            return None

    def get_user(self, user_id: Any) -> User | None:
        user: User | None = get_user_model()._default_manager.filter(pk=user_id).first()
        return user
