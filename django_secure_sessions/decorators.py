"""``reauth_required``: a sensitive view needs a recent authentication (SPEC §6)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, overload
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from .api import user_id_of
from .backends.base import SecureSessionBase, now_epoch
from .conf import conf

View = TypeVar("View", bound=Callable[..., Any])


def wants_json(request: HttpRequest) -> bool:
    """Whether the client asked for JSON (an API client, a single-page app)."""
    return (
        "application/json" in request.headers.get("Accept", "")
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
    )


def recently_authenticated(request: HttpRequest, user: Any, max_age: int) -> bool:
    """Whether ``user`` proved who they are, on this session, less than ``max_age``
    seconds ago.

    Only a fully signed-in session counts: its user must be ``user``, and it must
    carry an authentication time. A session only half-way there (a password reset in
    progress, a login some other app has yet to complete) never does.
    """
    session = getattr(request, "session", None)
    if not getattr(user, "is_authenticated", False) or not isinstance(session, SecureSessionBase):
        return False
    meta = session.meta
    return (
        meta is not None
        and meta.user_id == user_id_of(user)
        and meta.last_auth is not None
        and now_epoch() - meta.last_auth < max_age
    )


def reauth_url(request: HttpRequest) -> str:
    """The re-authentication view, told to come back to this request's page."""
    return f"{reverse('secure_sessions:reauth')}?{urlencode({'next': request.get_full_path()})}"


def reauth_gate(request: HttpRequest, user: Any, max_age: int | None) -> HttpResponseBase | None:
    """The answer that stops a request lacking a recent authentication, or None.

    Anonymous users go to the login page, as ``login_required`` sends them; signed-in
    ones to the re-authentication view, or get a 401 naming it when they asked for JSON.
    """
    if not getattr(user, "is_authenticated", False):
        return redirect_to_login(request.get_full_path())
    if recently_authenticated(request, user, conf.REAUTH_MAX_AGE if max_age is None else max_age):
        return None
    url = reauth_url(request)
    if wants_json(request):
        return JsonResponse(
            {"detail": "Please confirm your password to continue.", "reauth_url": url}, status=401
        )
    return redirect(url)


@overload
def reauth_required(view: View, *, max_age: int | None = None) -> View: ...
@overload
def reauth_required(view: None = None, *, max_age: int | None = None) -> Callable[[View], View]: ...
def reauth_required(
    view: View | None = None, *, max_age: int | None = None
) -> View | Callable[[View], View]:
    """Require an authentication less than ``max_age`` seconds old (default
    ``SECURE_SESSIONS_REAUTH_MAX_AGE``) before running the view.

    Usable bare (``@reauth_required``) or with arguments
    (``@reauth_required(max_age=60)``), on sync and async function views.
    """

    def decorate(view: View) -> View:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                user = await request.auser()
                response = reauth_gate(request, user, max_age)
                return response if response is not None else await view(request, *args, **kwargs)

            return async_view  # type: ignore[return-value]

        @wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            response = reauth_gate(request, request.user, max_age)
            return response if response is not None else view(request, *args, **kwargs)

        return sync_view  # type: ignore[return-value]

    return decorate if view is None else decorate(view)
