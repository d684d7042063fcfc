"""The request benchmark's one URL: a view that reads the user and changes nothing."""

from __future__ import annotations

from typing import Final

from django.http import HttpRequest, HttpResponse
from django.urls import path

WHOAMI: Final = "/whoami/"


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.username)


urlpatterns = [path(WHOAMI.lstrip("/"), whoami)]
