"""The load benchmark's pages: a login, a page that reads the session, one that writes to
it, a JSON endpoint. Async views under ASGI (``LOAD_ASYNC_VIEWS``), sync ones otherwise.

The driver (benchmarks/load_traffic.py) checks every answer: a page must name the user
its cookie belongs to, so a configuration that lost its sessions can't look fast.
"""

from __future__ import annotations

from typing import Final

from django.conf import settings
from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import URLPattern, URLResolver, include, path
from django.utils.html import escape

from benchmarks.load_project import API, HEALTH, LOGIN, NOTE, NOTES_KEY, PAGE, PREFERENCES


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def sign_in(request: HttpRequest) -> HttpResponse:
    """GET: a CSRF token (and its cookie). POST username and password: signs in."""
    if request.method != "POST":
        return JsonResponse({"csrf": get_token(request)})
    user = authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return JsonResponse({"detail": "wrong username or password"}, status=403)
    login(request, user)
    request.session.update(PREFERENCES)
    return JsonResponse({"user": user.get_username()})


def _page(username: str, theme: str) -> HttpResponse:
    return HttpResponse(
        f"<!DOCTYPE html><title>Home</title><p>Signed in as {escape(username)}, "
        f"theme {escape(theme)}.</p>"
    )


def _me(username: str, language: str, notes: int) -> JsonResponse:
    return JsonResponse({"user": username, "language": language, "notes": notes})


@login_required
def page(request: HttpRequest) -> HttpResponse:
    return _page(request.user.get_username(), request.session.get("theme", ""))


@login_required
def note(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    notes = request.session.get(NOTES_KEY, 0) + 1
    request.session[NOTES_KEY] = notes
    return _me(request.user.get_username(), request.session.get("language", ""), notes)


@login_required
def api_me(request: HttpRequest) -> HttpResponse:
    session = request.session
    return _me(request.user.get_username(), session.get("language", ""), session.get(NOTES_KEY, 0))


@login_required
async def apage(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return _page(user.get_username(), await request.session.aget("theme", ""))


@login_required
async def anote(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    session = request.session
    notes = await session.aget(NOTES_KEY, 0) + 1
    await session.aset(NOTES_KEY, notes)
    user = await request.auser()
    return _me(user.get_username(), await session.aget("language", ""), notes)


@login_required
async def aapi_me(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    session = request.session
    return _me(
        user.get_username(), await session.aget("language", ""), await session.aget(NOTES_KEY, 0)
    )


VIEWS: Final = {PAGE: page, NOTE: note, API: api_me}
ASYNC_VIEWS: Final = {PAGE: apage, NOTE: anote, API: aapi_me}

urlpatterns: list[URLPattern | URLResolver] = [
    path(HEALTH.lstrip("/"), health),
    path(LOGIN.lstrip("/"), sign_in),
    *(
        path(route.lstrip("/"), view)
        for route, view in (
            ASYNC_VIEWS if getattr(settings, "LOAD_ASYNC_VIEWS", False) else VIEWS
        ).items()
    ),
]
if getattr(settings, "LOAD_OUR_URLS", False):
    # As the quickstart has it: the "Your sessions" and re-authentication pages.
    urlpatterns.append(path("account/sessions/", include("django_secure_sessions.urls")))
