"""The demo's own pages: what a project using django-secure-sessions writes itself.

The "Your sessions" and re-authentication pages come from the package
(``django_secure_sessions.urls``); the demo only puts them in its layout (its template
``django_secure_sessions/base.html``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from demo.models import describe_device
from django_secure_sessions import SessionInfo, list_user_sessions
from django_secure_sessions.backends.base import SecureSessionBase
from django_secure_sessions.conf import conf
from django_secure_sessions.decorators import reauth_required


@dataclass(frozen=True)
class SessionState:
    """What the server knows of the current session, for the home and account pages.

    The deadlines are as the server enforces them. Activity is written at most once per
    ``SECURE_SESSIONS_ACTIVITY_RESOLUTION``, so the idle deadline shown is the earliest
    the session can end: this request may have pushed it further.
    """

    info: SessionInfo
    idle_timeout: timedelta | None
    idle_deadline: datetime | None
    absolute_deadline: datetime | None
    reauth_window: timedelta
    reauth_deadline: datetime | None
    bind_ip: str
    bound_network: str
    bind_user_agent: str
    bound_client: str


def bound_network(ip: str) -> str:
    """The addresses a request may come from to use a session bound to ``ip``."""
    if conf.BIND_IP == "exact" or not ip:
        return ip
    address = ipaddress.ip_address(ip)
    prefix = conf.IPV4_PREFIX if isinstance(address, ipaddress.IPv4Address) else conf.IPV6_PREFIX
    return str(ipaddress.ip_network((address, prefix), strict=False))


def bound_client(info: SessionInfo) -> str:
    """The user agent a request must come from, as ``BIND_USER_AGENT`` compares it."""
    if conf.BIND_USER_AGENT == "exact":
        return info.user_agent
    return describe_device(info.browser, info.os, info.device)


def session_state(request: HttpRequest) -> SessionState | None:
    """The state of the request's session; None for an anonymous one."""
    session = request.session
    if not isinstance(session, SecureSessionBase):
        return None
    meta, session_id = session.meta, session.session_id
    if meta is None or meta.user_id is None or session_id is None:
        return None
    info = SessionInfo.from_meta(session_id, meta)
    idle = conf.IDLE_TIMEOUT
    idle_timeout = None if idle is None else timedelta(seconds=idle)
    reauth_window = timedelta(seconds=conf.REAUTH_MAX_AGE)
    return SessionState(
        info=info,
        idle_timeout=idle_timeout,
        idle_deadline=None if idle_timeout is None else info.last_activity + idle_timeout,
        absolute_deadline=info.absolute_expiry,
        reauth_window=reauth_window,
        reauth_deadline=None if info.last_auth is None else info.last_auth + reauth_window,
        bind_ip=conf.BIND_IP,
        bound_network=bound_network(info.ip),
        bind_user_agent=conf.BIND_USER_AGENT,
        bound_client=bound_client(info),
    )


def home(request: HttpRequest) -> HttpResponse:
    """Who is signed in, and what the server knows of this session."""
    context: dict[str, Any] = {"state": session_state(request)}
    if request.user.is_authenticated:
        context["session_count"] = len(list_user_sessions(request.user))
    return render(request, "demo/home.html", context)


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """The account, and its two sensitive actions."""
    return render(request, "demo/account.html", {"state": session_state(request)})


class EmailForm(forms.ModelForm):  # type: ignore[type-arg]
    email = forms.EmailField(
        label="New email address", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    class Meta:
        model = get_user_model()
        fields = ["email"]


# A sensitive action: an attacker holding a stolen session could change the address that
# password resets go to, and so take the account for good. reauth_required asks for the
# password first when the last one is older than SECURE_SESSIONS_REAUTH_MAX_AGE.
# "email" is also in SECURE_SESSIONS_INVALIDATE_ON: saving a new one signs the user out
# everywhere else, and gives this session a new key.
@reauth_required
def change_email(request: HttpRequest) -> HttpResponse:
    form = EmailForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your email address is changed. Your other sessions are ended.")
        return redirect("account")
    return render(request, "demo/change_email.html", {"form": form})


class PasswordChangeView(SuccessMessageMixin, auth_views.PasswordChangeView):  # type: ignore[type-arg]
    """Django's own view; demo/urls.py wraps it in ``reauth_required``.

    A new password hash signs the user out everywhere else (django-secure-sessions does
    it when the user is saved, whatever view or script saves it); this session stays
    signed in, with a new key.
    """

    template_name = "demo/password_change.html"
    success_url = reverse_lazy("account")
    success_message = "Your password is changed. Your other sessions are ended."


def poll(request: HttpRequest) -> JsonResponse:
    """What a page polling in the background would ask: is the session still there?

    Its path is in SECURE_SESSIONS_PASSIVE_URLS: it is checked like any request (an
    expired or hijacked session ends here too) but never counts as activity, so a tab
    left open does not keep an unattended session alive.
    """
    state = session_state(request)
    idle_deadline = None if state is None else state.idle_deadline
    return JsonResponse(
        {
            "authenticated": request.user.is_authenticated,
            "idle_deadline": None if idle_deadline is None else idle_deadline.isoformat(),
        }
    )
