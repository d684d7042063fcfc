from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _


class ReauthForm(forms.Form):
    """Asks the signed-in user for their current password.

    The password is checked with Django's ``authenticate``, so every authentication
    backend of the project applies (and ``user_login_failed`` is sent on failure, for
    whatever rate limiting listens to it). The user it finds must be the one signed in.
    """

    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    error_messages = {"invalid_password": _("That password is not correct. Please try again.")}

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        user = self.request.user
        confirmed = authenticate(self.request, username=user.get_username(), password=password)
        if confirmed is None or confirmed.pk != user.pk:
            raise forms.ValidationError(
                self.error_messages["invalid_password"], code="invalid_password"
            )
        return password
