"""``SecureSessionMiddleware``: timeouts, client binding and activity, per request.

Placed after ``AuthenticationMiddleware``. For an authenticated session it checks, in
this order (SPEC §4): the absolute timeout, the idle timeout, the IP and user-agent
binding; an ended session is flushed server-side, the request goes on as anonymous and
Django's ``SessionMiddleware`` deletes the cookie. Otherwise the activity is written
at most once per ``ACTIVITY_RESOLUTION`` seconds, with the cookie's expiry slid along.

The sync and async paths share every decision (``_judge``, ``_activity_due``,
``_events``); they differ only in how they do I/O, and the async path uses the
engines' native async methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.html import escape
from django.utils.http import http_date
from django.utils.translation import gettext as _

from . import signals
from .backends.base import USER_ID_KEY, SecureSessionBase, now_epoch
from .binding import Mismatch, client_ip, ip_mismatch, request_user_agent, user_agent_mismatch
from .conf import conf
from .decorators import wants_json
from .exceptions import SessionStorageUnavailable
from .timeouts import EndReason, activity_due, end_reason

logger = logging.getLogger("django_secure_sessions")

# The request being handled, for code that runs inside it without being handed it
# (signal handlers reacting to a password change, key rotation ...). A context
# variable, so it is right per thread and per asyncio task alike.
current_request: ContextVar[HttpRequest | None] = ContextVar(
    "django_secure_sessions.current_request", default=None
)


@dataclass(frozen=True)
class _Verdict:
    """What the checks found for one request's session."""

    session_id: str
    user_id: str
    expired: EndReason | None
    mismatches: tuple[Mismatch, ...]

    @property
    def ends(self) -> bool:
        return self.expired is not None or (
            bool(self.mismatches) and conf.BINDING_ACTION == "logout"
        )


def _judge(request: HttpRequest, session: SecureSessionBase) -> _Verdict | None:
    """Check a loaded session against the timeouts and the binding (no I/O).

    None when there is nothing to check: no session, or an anonymous one.
    """
    if session.ended is not None:  # the engine found it past a timeout at load
        ended = session.ended
        return _Verdict(ended.session_id, ended.user_id or "", ended.reason, ())
    meta, session_id = session.meta, session.session_id
    if meta is None or meta.user_id is None or session_id is None:
        return None
    expired = end_reason(meta, now_epoch(), conf.IDLE_TIMEOUT)
    if expired is not None:
        return _Verdict(session_id, meta.user_id, expired, ())
    if not session.is_bound:
        # Logged in outside a request (see handlers.record_login): bind it to the
        # client that first uses it. A login over HTTP is always bound at once.
        session.bind_client(client_ip(request), request_user_agent(request))
        return None
    found = (
        ip_mismatch(meta.ip, client_ip(request), conf.BIND_IP, conf.IPV4_PREFIX, conf.IPV6_PREFIX),
        user_agent_mismatch(meta, request_user_agent(request), conf.BIND_USER_AGENT),
    )
    return _Verdict(session_id, meta.user_id, None, tuple(m for m in found if m is not None))


def _events(request: HttpRequest, verdict: _Verdict) -> list[tuple[Signal, dict[str, Any]]]:
    """The signals a verdict sends, each logged here with the public session id."""
    common = {"request": request, "user_id": verdict.user_id, "session_id": verdict.session_id}
    events: list[tuple[Signal, dict[str, Any]]] = []
    for mismatch in verdict.mismatches:
        logger.warning(
            "Session %s of user %s: %s mismatch (bound to %r, request from %r); action: %s",
            verdict.session_id,
            verdict.user_id,
            mismatch.kind,
            mismatch.expected,
            mismatch.actual,
            conf.BINDING_ACTION,
        )
        events.append(
            (
                signals.binding_mismatch,
                {
                    **common,
                    "kind": mismatch.kind,
                    "expected": mismatch.expected,
                    "actual": mismatch.actual,
                },
            )
        )
    if verdict.expired is not None:
        logger.info(
            "Session %s of user %s ended: %s timeout",
            verdict.session_id,
            verdict.user_id,
            verdict.expired,
        )
        events.append((signals.session_expired, {**common, "reason": verdict.expired}))
    return events


async def _anonymous_user() -> AnonymousUser:
    return AnonymousUser()


def _continue_as_anonymous(request: HttpRequest) -> None:
    # AuthenticationMiddleware ran before us and may have resolved the user already.
    request.user = AnonymousUser()
    request.auser = _anonymous_user


def _is_passive(request: HttpRequest) -> bool:
    passive = conf.PASSIVE_URLS
    return passive is not None and passive.search(request.path_info) is not None


def _activity_due(request: HttpRequest, session: SecureSessionBase | None) -> str | None:
    """The session key if this request's activity should be written, else None (no I/O).

    Not when the session will be saved anyway (the save records the activity), nor
    for a passive URL, nor more than once per ACTIVITY_RESOLUTION seconds.
    """
    if session is None or session.modified or (key := session.session_key) is None:
        return None
    meta = session.meta
    due = (
        meta is not None
        and meta.user_id is not None
        and not _is_passive(request)
        and activity_due(meta, now_epoch(), conf.ACTIVITY_RESOLUTION)
    )
    return key if due else None


def _write_errors(session: SecureSessionBase) -> tuple[type[Exception], ...]:
    return (UpdateError, *session.storage_errors)


def _refresh_cookie(response: HttpResponseBase, session: SecureSessionBase, key: str) -> None:
    """Re-send the session cookie with its slid expiry, as SessionMiddleware would."""
    if response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return
    if session.get_expire_at_browser_close():
        max_age, expires = None, None
    else:
        max_age = session.get_expiry_age()
        expires = http_date(time.time() + max_age)
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        key,
        max_age=max_age,
        expires=expires,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=settings.SESSION_COOKIE_HTTPONLY,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def _touch_failed(session: SecureSessionBase, exc: Exception) -> None:
    # A storage failure is logged once per outage, where the engine met it; the
    # response stands, as only the activity of a request that changed nothing is lost.
    if isinstance(exc, UpdateError):
        # Revoked or expired while this request ran: the next request finds it gone.
        logger.info("Session %s ended during the request", session.session_id)


# Seconds a client is asked to wait before trying again when the storage failed.
RETRY_AFTER: Final = 10


def _unavailable(request: HttpRequest) -> HttpResponse:
    """The answer to a request whose session could not be written: 503, with no detail
    of the failure (that is in the log), so the user knows the action did not happen."""
    message = _("This action could not be saved right now. Please try again in a moment.")
    response: HttpResponse
    if wants_json(request):
        response = JsonResponse({"detail": message}, status=HTTPStatus.SERVICE_UNAVAILABLE)
    else:
        title = escape(_("Service unavailable"))
        response = HttpResponse(
            f"<!DOCTYPE html><title>{title}</title><h1>{title}</h1><p>{escape(message)}</p>",
            status=HTTPStatus.SERVICE_UNAVAILABLE,
        )
    response["Retry-After"] = str(RETRY_AFTER)
    # The engine logged the outage, once (StorageOutage); Django's handler would add an
    # error line per 503 on django.request, a flood while the storage is down. This is
    # the attribute Django's own log_response() sets to log a response only once.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _save_due(session: SecureSessionBase, response: HttpResponseBase) -> bool:
    """Whether Django's SessionMiddleware would save the session after this response.

    The middleware saves it first, itself (see ``_saved``): from SessionMiddleware, a
    storage failure would escape as a 500 with a traceback, and a change the view made
    would be lost with no sign to the user."""
    return (
        session.modified
        and response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
        and not session.is_empty()
    )


def _saved(session: SecureSessionBase, response: HttpResponseBase) -> None:
    """After a save here: what SessionMiddleware does after its own, which it then
    skips (nothing is modified any more) unless code outside this middleware changes
    the session again."""
    session.modified = False
    key = session.session_key
    if key is not None:
        _refresh_cookie(response, session, key)


def _interrupted() -> SessionInterrupted:
    # As SessionMiddleware says it: Django answers it with 400.
    return SessionInterrupted(
        "The request's session was deleted before the request completed. The user may have "
        "logged out in a concurrent request, for example."
    )


def _secure_session(request: HttpRequest) -> SecureSessionBase | None:
    session = getattr(request, "session", None)
    return session if isinstance(session, SecureSessionBase) else None


class SecureSessionMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        token = current_request.set(request)
        try:
            session = _secure_session(request)
            if session is not None:
                session.get(USER_ID_KEY)  # this request's one load
                self._check(request, session)
            response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
            if session is None:
                return response
            if _save_due(session, response):
                try:
                    session.save()
                except SessionStorageUnavailable:
                    return _unavailable(request)
                except UpdateError as exc:
                    raise _interrupted() from exc
                _saved(session, response)
            elif (key := _activity_due(request, session)) is not None:
                try:
                    session.touch()
                except _write_errors(session) as exc:
                    _touch_failed(session, exc)
                else:
                    _refresh_cookie(response, session, key)
            return response
        finally:
            current_request.reset(token)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        token = current_request.set(request)
        try:
            session = _secure_session(request)
            if session is not None:
                await session.aget(USER_ID_KEY)
                await self._acheck(request, session)
            response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
            if session is None:
                return response
            if _save_due(session, response):
                try:
                    await session.asave()
                except SessionStorageUnavailable:
                    return _unavailable(request)
                except UpdateError as exc:
                    raise _interrupted() from exc
                _saved(session, response)
            elif (key := _activity_due(request, session)) is not None:
                try:
                    await session.atouch()
                except _write_errors(session) as exc:
                    _touch_failed(session, exc)
                else:
                    _refresh_cookie(response, session, key)
            return response
        finally:
            current_request.reset(token)

    @staticmethod
    def process_exception(request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A view whose session write failed (a login's key rotation, a logout's delete).
        if isinstance(exception, SessionStorageUnavailable):
            return _unavailable(request)
        return None

    @staticmethod
    def _check(request: HttpRequest, session: SecureSessionBase) -> None:
        verdict = _judge(request, session)
        if verdict is None:
            return
        for signal, kwargs in _events(request, verdict):
            signal.send(sender=type(session), **kwargs)
        if verdict.ends:
            if session.ended is not None:
                session.discard_ended()
            else:
                session.flush()
            _continue_as_anonymous(request)

    @staticmethod
    async def _acheck(request: HttpRequest, session: SecureSessionBase) -> None:
        verdict = _judge(request, session)
        if verdict is None:
            return
        for signal, kwargs in _events(request, verdict):
            await signal.asend(sender=type(session), **kwargs)
        if verdict.ends:
            if session.ended is not None:
                await session.adiscard_ended()
            else:
                await session.aflush()
            _continue_as_anonymous(request)
