"""A project's own confirmation step for ``SECURE_SESSIONS_REAUTH_FORM``: a one-time
code (fixed here, where a real project would check a TOTP app or a text message)."""

from __future__ import annotations

import hmac
from typing import Any

from django import forms
from django.http import HttpRequest

CODE = "246810"


class OneTimeCodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"]
        if not hmac.compare_digest(code.encode(), CODE.encode()):
            raise forms.ValidationError("That code is not correct.", code="invalid_code")
        return code
