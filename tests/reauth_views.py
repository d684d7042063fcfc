"""Sensitive pages of the re-authentication tests (routed in tests/urls.py).

Each answers with what it is and who asked, so a test sees whether the view itself ran.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import View

from django_secure_sessions.decorators import reauth_required
from django_secure_sessions.mixins import ReauthRequiredMixin
from django_secure_sessions.views import ReauthView
from tests.reauth_forms import OneTimeCodeForm

# The window of the views with their own max_age / reauth_max_age.
QUICK = 60


def _answer(page: str, user: object) -> HttpResponse:
    return HttpResponse(f"{page} for {user}")


@reauth_required
def change_email(request: HttpRequest) -> HttpResponse:
    return _answer("change email", request.user)


@reauth_required(max_age=QUICK)
def delete_account(request: HttpRequest) -> HttpResponse:
    return _answer("delete account", request.user)


@reauth_required
async def async_change_email(request: HttpRequest) -> HttpResponse:
    return _answer("change email", await request.auser())


@reauth_required(max_age=QUICK)
async def async_delete_account(request: HttpRequest) -> HttpResponse:
    return _answer("delete account", await request.auser())


class ApiKeysView(ReauthRequiredMixin, View):
    reauth_max_age = QUICK

    def get(self, request: HttpRequest) -> HttpResponse:
        return _answer("api keys", request.user)


class AsyncApiKeysView(ReauthRequiredMixin, View):
    """The default window (no ``reauth_max_age``), on an async class-based view."""

    async def get(self, request: HttpRequest) -> HttpResponse:
        return _answer("api keys", await request.auser())


class CodeReauthView(ReauthView):
    """A project's own confirmation step, by subclassing the view."""

    form_class = OneTimeCodeForm
