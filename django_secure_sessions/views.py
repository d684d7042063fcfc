"""The re-authentication view and the user's own "Your sessions" pages (SPEC §6, §7).

Every page answers JSON to a client that asks for it (``Accept: application/json``),
so a single-page app or an API client can use them; the HTML works without JavaScript.
No page shows or accepts a session key: sessions are named by their public id.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, resolve_url
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView, TemplateView

from . import signals
from .api import (
    announce_revoked,
    list_user_sessions,
    revoke_session,
    revoke_user_sessions,
    user_id_of,
)
from .backends.base import SecureSessionBase, SessionInfo, now_epoch
from .conf import conf
from .decorators import recently_authenticated, wants_json
from .mixins import ReauthRequiredMixin

logger = logging.getLogger("django_secure_sessions")


def _session(request: HttpRequest) -> SecureSessionBase:
    session = request.session
    if not isinstance(session, SecureSessionBase):
        raise Http404("These pages need a django-secure-sessions engine.")
    return session


@method_decorator(
    [sensitive_post_parameters("password"), csrf_protect, never_cache], name="dispatch"
)
class ReauthView(LoginRequiredMixin, FormView):  # type: ignore[type-arg]
    """Asks the signed-in user to confirm their password, then goes back to ``next``.

    To plug in another confirmation step, set ``SECURE_SESSIONS_REAUTH_FORM`` to a form
    taking ``request`` (a valid form means the user is confirmed), or subclass this view
    and route ``secure_sessions:reauth`` to it.
    """

    template_name = "django_secure_sessions/reauth.html"

    def get_form_class(self) -> type[Form]:
        if self.form_class is not None:
            return self.form_class
        form_class: type[Form] = import_string(conf.REAUTH_FORM)
        return form_class

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "next": self._next_url()}

    def _next_url(self) -> str:
        """``next`` when it is safe to go to (same host, not a scheme trick), else
        ``LOGIN_REDIRECT_URL``: the view is no open redirect."""
        request = self.request
        candidate = request.POST.get("next") or request.GET.get("next") or ""
        if url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return resolve_url(settings.LOGIN_REDIRECT_URL)

    def _common(self) -> dict[str, Any]:
        session = _session(self.request)
        return {
            "request": self.request,
            "user_id": user_id_of(self.request.user),
            "session_id": session.session_id,
        }

    # The lockout (see SecureSessionBase.count_reauth_attempt for where the counts live).
    # With SECURE_SESSIONS_REAUTH_MAX_FAILURES = N, attempts number 1 to N of a session are
    # checked and N + 1 on are not, whatever their timing: the count is added to in
    # storage before the check, so parallel guesses each get a number of their own. The
    # N-th failure ends the session; an attempt numbered above N ends it without a
    # check (it raced the N-th); a right password whose attempt a concurrent one
    # outnumbered yields no session (confirm_reauth). The per-user bound keeps more
    # sessions of the same user from buying more guesses.

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = _session(request)
        common = self._common()
        user_id = common["user_id"]
        window = conf.REAUTH_USER_FAILURE_WINDOW
        limit = conf.REAUTH_USER_MAX_FAILURES
        counted = left = 0  # the user's attempts in the window, when they are bounded
        try:
            attempt = session.count_reauth_attempt()
            checkable = attempt is not None and attempt <= conf.REAUTH_MAX_FAILURES
            if checkable and limit is not None and user_id is not None:
                counted, left = type(session).count_user_reauth_attempt(user_id, window)
        except session.storage_errors as error:
            # Fail closed: an attempt that can't be counted is not checked.
            return self._unavailable(common, error)
        if attempt is None:
            # Ended meanwhile (revoked, expired, locked out by a concurrent attempt).
            return self._signed_out(session)
        if attempt > conf.REAUTH_MAX_FAILURES:
            self._failed(common, attempt)
            return self._lock_out(session, common)
        if limit is not None and counted > limit:
            return self._too_many(common, left)
        self._attempt = attempt
        response = super().post(request, *args, **kwargs)
        if limit is not None and user_id is not None and self._confirmed:
            # A confirmed attempt was no failure: it doesn't use up the user's window.
            type(session).uncount_user_reauth_attempt(user_id, window)
        return response

    _attempt = 0
    _confirmed = False

    def form_valid(self, form: Form) -> HttpResponse:
        session = _session(self.request)
        common = self._common()
        # A new key for the confirmed session: one seen before the confirmation (a
        # fixation, a leak) is worth nothing afterwards.
        attempts = session.confirm_reauth(conf.REAUTH_MAX_FAILURES)
        if attempts is None or attempts > conf.REAUTH_MAX_FAILURES:
            # Locked out meanwhile by attempts of the same burst: the right password
            # comes too late. When the lockout's own request hasn't removed the
            # session yet, this one did (confirm_reauth), and says so.
            if attempts is not None:
                self._announce(common)
            return self._signed_out(session)
        self._confirmed = True
        common = self._common()  # the session's new id
        signals.reauth_succeeded.send(sender=type(self), **common)
        logger.info(
            "Session %s of user %s re-authenticated", common["session_id"], common["user_id"]
        )
        if wants_json(self.request):
            return JsonResponse({"reauthenticated": True, "next": self._next_url()})
        return redirect(self._next_url())

    def form_invalid(self, form: Form) -> HttpResponse:
        session = _session(self.request)
        common = self._common()
        self._failed(common, self._attempt)
        if self._attempt >= conf.REAUTH_MAX_FAILURES:
            return self._lock_out(session, common)
        if wants_json(self.request):
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        return super().form_invalid(form)

    def _failed(self, common: dict[str, Any], attempt: int) -> None:
        signals.reauth_failed.send(sender=type(self), failures=attempt, **common)
        logger.warning(
            "Session %s of user %s: failed re-authentication (attempt %d)",
            common["session_id"],
            common["user_id"],
            attempt,
        )

    def _lock_out(self, session: SecureSessionBase, common: dict[str, Any]) -> HttpResponse:
        # Whoever keeps failing may hold a stolen session and be guessing the password:
        # end the session rather than let them go on. Of the attempts of one burst, the
        # one whose removal found the record tells the receivers, once.
        if type(session).remove_session(common["session_id"]) is not None:
            self._announce(common)
        return self._signed_out(session)

    def _announce(self, common: dict[str, Any]) -> None:
        announce_revoked(self.request, common["user_id"], common["session_id"], "reauth_failures")

    def _signed_out(self, session: SecureSessionBase) -> HttpResponse:
        """The answer once the session is gone: signed out, to the login page."""
        session.abandon()
        self.request.user = AnonymousUser()
        if wants_json(self.request):
            return JsonResponse(
                {"detail": _("Too many failed attempts. Please sign in again.")}, status=403
            )
        return redirect_to_login(self._next_url())

    def _unavailable(self, common: dict[str, Any], error: Exception) -> HttpResponse:
        """Refuse an attempt, unchecked, as the storage that counts it failed; the
        session goes on, and the user may try again."""
        logger.error(
            "Session %s of user %s: re-authentication refused, the session storage failed (%s)",
            common["session_id"],
            common["user_id"],
            type(error).__name__,
        )
        message = _("Your password can't be checked right now. Please try again in a moment.")
        return self._refused(message, 503)

    def _refused(self, message: str, status: int) -> HttpResponse:
        """The answer to an attempt refused unchecked: the message, and the form again."""
        if wants_json(self.request):
            return JsonResponse({"detail": message}, status=status)
        # An unbound form: binding the posted one would check the password.
        form_class: Any = self.get_form_class()
        context = self.get_context_data(form=form_class(request=self.request), refused=message)
        return self.render_to_response(context, status=status)

    def _too_many(self, common: dict[str, Any], retry_after: int) -> HttpResponse:
        """Refuse an attempt, unchecked, as the user's attempts across their sessions
        are used up until the window ends; the session itself goes on."""
        logger.warning(
            "Session %s of user %s: re-authentication refused, too many attempts for the "
            "user (%d s left in the window)",
            common["session_id"],
            common["user_id"],
            retry_after,
        )
        minutes = max(1, -(-retry_after // 60))
        message = ngettext(
            "Too many failed attempts for this account. Please try again in %(minutes)d minute.",
            "Too many failed attempts for this account. Please try again in %(minutes)d minutes.",
            minutes,
        ) % {"minutes": minutes}
        response = self._refused(message, 429)
        response["Retry-After"] = str(retry_after)
        return response


def session_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "current": info.is_current,
        "ip": info.ip,
        "browser": info.browser,
        "os": info.os,
        "device": info.device,
        "origin": info.origin,
        "created": info.created.isoformat(),
        "last_activity": info.last_activity.isoformat(),
        "expires": info.expires.isoformat(),
    }


def own_sessions(request: HttpRequest) -> list[SessionInfo]:
    """The signed-in user's sessions, this request's marked as current, first."""
    current = _session(request).session_id
    infos = [
        replace(info, is_current=info.id == current) for info in list_user_sessions(request.user)
    ]
    return sorted(infos, key=lambda info: not info.is_current)


class SessionListView(LoginRequiredMixin, TemplateView):
    """``secure_sessions:list``: the signed-in user's sessions."""

    template_name = "django_secure_sessions/session_list.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        sessions = own_sessions(request)
        if wants_json(request):
            return JsonResponse({"sessions": [session_json(info) for info in sessions]})
        return self.render_to_response({"sessions": sessions})


# A revocation asked for (a POST, its CSRF token checked) outside the re-authentication
# window is remembered in the session while the user confirms their password; the GET the
# re-authentication view comes back to then carries it out, without asking a second time.
# Only the POST can start one, so a link alone can't make anybody revoke anything.
PENDING_REVOCATION_KEY = "_secure_sessions_pending_revocation"


@method_decorator([csrf_protect, never_cache], name="dispatch")
class _RevokeView(ReauthRequiredMixin, TemplateView):
    """GET asks for confirmation; POST revokes. Both need a recent authentication
    (ASVS: users re-authenticate before terminating sessions), and a GET is where the
    re-authentication view comes back to: after a POST that needed it, that GET revokes."""

    template_name = "django_secure_sessions/revoke_confirm.html"
    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and not wants_json(request):
            self._remember_if_reauth_needed(request)
        return super().dispatch(request, *args, **kwargs)

    def _max_age(self) -> int:
        return conf.REAUTH_MAX_AGE if self.reauth_max_age is None else self.reauth_max_age

    def _remember_if_reauth_needed(self, request: HttpRequest) -> None:
        user = request.user
        if user.is_authenticated and not recently_authenticated(request, user, self._max_age()):
            _session(request)[PENDING_REVOCATION_KEY] = [request.path, now_epoch()]

    def _asked_before_reauth(self, request: HttpRequest) -> bool:
        """Whether this GET comes back from the re-authentication that a POST of this
        same page needed, made since it asked and within the window (used up either
        way: it acts once)."""
        session = _session(request)
        pending = session.pop(PENDING_REVOCATION_KEY, None)
        if not isinstance(pending, list) or len(pending) != 2:  # noqa: PLR2004 - [path, when]
            return False
        path, asked = pending
        meta = session.meta
        return (
            path == request.path
            and isinstance(asked, int)
            and now_epoch() - asked < self._max_age()
            and meta is not None
            and meta.last_auth is not None
            and meta.last_auth >= asked
        )

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self._asked_before_reauth(request):
            return self.post(request, *args, **kwargs)
        return self.render_to_response(self.confirmation(request, **kwargs))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        raise NotImplementedError

    def confirmation(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        """The confirmation page's context."""
        raise NotImplementedError

    def _done(self, request: HttpRequest, message: str, data: dict[str, Any]) -> HttpResponse:
        if wants_json(request):
            return JsonResponse(data)
        messages.success(request, message)
        if not request.user.is_authenticated:  # the current session was revoked
            return redirect(resolve_url(settings.LOGIN_URL))
        return redirect("secure_sessions:list")


class RevokeSessionView(_RevokeView):
    """``secure_sessions:revoke``: end one of the signed-in user's own sessions."""

    def _target(self, request: HttpRequest, session_id: str) -> SessionInfo:
        for info in own_sessions(request):
            if info.id == session_id:
                return info
        # Someone else's session, or none: the same answer, so ids can't be probed.
        raise Http404("No such session.")

    def confirmation(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {"target": self._target(request, kwargs["session_id"])}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session_id = kwargs["session_id"]
        target = self._target(request, session_id)
        if target.is_current:
            session = _session(request)
            announce_revoked(request, user_id_of(request.user), session_id, "user")
            session.flush()
            request.user = AnonymousUser()
            message = _("You are signed out of this device.")
        else:
            revoke_session(session_id, reason="user", request=request)
            message = _("That device is signed out.")
        return self._done(request, message, {"revoked": [session_id]})


class RevokeOtherSessionsView(_RevokeView):
    """``secure_sessions:revoke_others``: sign out everywhere else."""

    def confirmation(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {"others": [info for info in own_sessions(request) if not info.is_current]}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = _session(request)
        count = revoke_user_sessions(request.user, keep=session, reason="user", request=request)
        message = ngettext(
            "%(count)d other session is signed out.",
            "%(count)d other sessions are signed out.",
            count,
        ) % {"count": count}
        return self._done(request, message, {"revoked_count": count})
