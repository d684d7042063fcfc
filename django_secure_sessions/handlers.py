"""Signal handlers connected when the app is ready: what ends or stamps sessions.

- Login stamps the session (time, client) and enforces ``MAX_PER_USER``.
- Logout is reported (Django's ``logout`` already deletes the server-side session).
- A change of the password hash, of a field in ``INVALIDATE_ON`` or of ``is_active``
  to false revokes all the user's sessions at once (Django only notices a new
  password hash lazily, on each session's next request); the session of the request
  that made the change survives with a new key when it is the user's own.
- A privilege change (``is_staff``, ``is_superuser``, groups, permissions) revokes the
  user's other sessions and rotates the current one.
- Deleting a user revokes their sessions.

``QuerySet.update()`` sends no signals: code that changes these fields that way must
call ``revoke_user_sessions`` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final

from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_init, post_save, pre_delete, pre_save
from django.http import HttpRequest

from . import signals
from .api import revoke_session, revoke_user_sessions, session_store_class, user_id_of
from .backends.base import ORIGIN_REQUEST, ORIGIN_SCRIPT, USER_ID_KEY, SecureSessionBase
from .binding import client_ip, request_user_agent
from .conf import conf
from .middleware import current_request

logger = logging.getLogger("django_secure_sessions")

DISPATCH_PREFIX: Final = "django_secure_sessions."

PRIVILEGE_FIELDS: Final = ("is_staff", "is_superuser")
PRIVILEGE_RELATIONS: Final = ("groups", "user_permissions")

# Instance attributes where a user's watched field values are kept between its load
# and its save (see _snapshot), and the changes found before a save.
_SNAPSHOT: Final = "_secure_sessions_snapshot"
_CHANGES: Final = "_secure_sessions_changes"
_UNKNOWN: Final = object()


def _secure_session(request: HttpRequest | None) -> SecureSessionBase | None:
    session = getattr(request, "session", None)
    return session if isinstance(session, SecureSessionBase) else None


# -- login and logout --------------------------------------------------------------


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Stamp the login time, bind the session to this client, apply MAX_PER_USER.

    Django has already rotated the key (``login`` calls ``cycle_key``); this records
    when the user authenticated and from where, for timeouts, binding and re-auth.
    """
    session = _secure_session(request)
    if request is None or session is None:
        return
    # A login outside an HTTP request (the test client's force_login(), a script) has
    # no client to bind to: the session's first request binds it instead.
    over_http = "REMOTE_ADDR" in request.META
    session.record_login(ORIGIN_REQUEST if over_http else ORIGIN_SCRIPT)
    if over_http:
        session.bind_client(client_ip(request), request_user_agent(request))
    _enforce_limit(request, session, user)


def _enforce_limit(request: HttpRequest, session: SecureSessionBase, user: Any) -> None:
    limit = conf.MAX_PER_USER
    if limit is None:
        return
    # Parallel logins of one user (a script, tabs restored at once) must see each other.
    # Counting only the sessions stored before it, each would keep the limit - 1 most
    # recent others and its own, unsaved yet: together they kept more than the limit,
    # and, as "end all but these" also ends a session stored meanwhile, fewer (twelve
    # parallel logins with a limit of three left one session). So the new session is
    # stored under its user first (one more write per login, with a limit only), then
    # the user's sessions are listed, and those seen beyond the limit end, by id: a
    # session stored after the listing is left to its own login, whose listing comes
    # later and sees this one. No login ends one of the ``limit`` most recent sessions
    # (fewer than ``limit`` that it saw are newer), and the login that lists last sees
    # every session stored: exactly the ``limit`` most recent remain. In a burst, the
    # login in progress may itself be among the oldest; its session then ends with the
    # others, and its response is Django's 400 for a session ended during the request.
    session.save()
    sessions = session.user_sessions(user_id_of(user))
    # Most recent first, by creation to the microsecond (the id breaks a tie, so the
    # order is the same in every process).
    sessions.sort(key=lambda info: (info.created, info.id), reverse=True)
    for info in sessions[limit:]:
        revoke_session(info.id, reason="limit", request=request)


def report_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Report a logout; Django's ``logout`` then flushes the session server-side."""
    session = _secure_session(request)
    if session is None or session.session_id is None or user is None:
        return
    signals.session_revoked.send(
        sender=type(session),
        request=request,
        user_id=user_id_of(user),
        session_id=session.session_id,
        reason="logout",
    )
    logger.info("Session %s of user %s revoked (logout)", session.session_id, user_id_of(user))


# -- changes to users ----------------------------------------------------------------


def _watched_fields(model: type[Model]) -> dict[str, str]:
    """Field name -> attribute name of the user fields whose change ends sessions."""
    return _fields_named(model, conf.INVALIDATE_ON)


@lru_cache(maxsize=16)
def _fields_named(model: type[Model], invalidate_on: tuple[str, ...]) -> dict[str, str]:
    # Cached: this runs for every user loaded, on most requests.
    names = {*invalidate_on, "password", "is_active", *PRIVILEGE_FIELDS}
    return {f.name: f.attname for f in model._meta.concrete_fields if f.name in names}


def snapshot_user(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """Keep the watched values as loaded, so a save can tell what changed for free."""
    _snapshot(sender, instance)


def _snapshot(sender: type[Model], instance: Model, fields: Iterable[str] | None = None) -> None:
    """Record the watched values of ``fields`` (default: all) as what is stored."""
    values = instance.__dict__
    snapshot = dict(values.get(_SNAPSHOT, {}))
    for name, attname in _watched_fields(sender).items():
        if fields is None or name in fields:
            snapshot[name] = values.get(attname, _UNKNOWN)
    values[_SNAPSHOT] = snapshot


def find_user_changes(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """Before a user is saved: which watched fields this save really changes.

    Comparing with the values as loaded costs nothing. Only when one looks changed
    (or was not loaded) is the stored row read, once, to confirm: a value refreshed
    from the database in between, or assigned back, is not a change.
    """
    if kwargs.get("raw") or instance._state.adding:
        return
    fields = _watched_fields(sender)
    update_fields = kwargs.get("update_fields")
    if update_fields is not None:
        fields = {name: attname for name, attname in fields.items() if name in update_fields}
    loaded = getattr(instance, _SNAPSHOT, {})
    suspects = [
        name
        for name, attname in fields.items()
        if loaded.get(name, _UNKNOWN) is _UNKNOWN
        or loaded[name] != instance.__dict__.get(attname, loaded[name])
    ]
    if not suspects:
        return
    stored = (
        sender._default_manager.using(kwargs.get("using"))
        .filter(pk=instance.pk)
        .values(*suspects)
        .first()
    )
    if stored is None:
        return
    changes = {
        name
        for name in suspects
        if stored[name] != instance.__dict__.get(fields[name], stored[name])
    }
    setattr(instance, _CHANGES, changes)


def end_sessions_on_change(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """After a user is saved: end sessions as its changes require."""
    changes: set[str] = instance.__dict__.pop(_CHANGES, set())
    # The next save compares with what is now stored: only the fields this save wrote
    # (a value assigned but left out of update_fields is still to be saved).
    _snapshot(sender, instance, kwargs.get("update_fields"))
    if not changes:
        return
    if "is_active" in changes and not getattr(instance, "is_active", True):
        _revoke_all(instance, reason="deactivated", keep_current=False)
    elif "password" in changes:
        _revoke_all(instance, reason="password", keep_current=True)
    elif invalidating := sorted(changes & set(conf.INVALIDATE_ON)):
        _revoke_all(instance, reason=invalidating[0], keep_current=True)
    elif changes & set(PRIVILEGE_FIELDS):
        _revoke_all(instance, reason="privilege", keep_current=True)


def end_sessions_on_relation_change(  # noqa: PLR0917 - m2m_changed's signature
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    model: type[Model],
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    """Group or permission membership changed: a privilege change for those users."""
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    if action != "pre_clear" and not pk_set:
        return  # add() of what was there already: Django sends an empty pk_set
    users: Iterable[Any]
    if not reverse:  # user.groups.add(...): the instance is the user
        users = [instance]
    elif action == "pre_clear":  # group.user_set.clear(): the members, before they go
        users = list(getattr(instance, _relation_accessor(sender, instance)).all())
    else:  # group.user_set.add(...): the users are in pk_set
        users = list(model._default_manager.filter(pk__in=pk_set or ()))
    for user in users:
        _revoke_all(user, reason="privilege", keep_current=True)


def _relation_accessor(through: type[Model], instance: Model) -> str:
    user_model = get_user_model()
    for name in PRIVILEGE_RELATIONS:
        field = user_model._meta.get_field(name)
        if field.remote_field.through is through:  # type: ignore[union-attr]
            return str(field.remote_field.get_accessor_name())  # type: ignore[union-attr]
    raise LookupError(through)


def end_sessions_on_delete(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    _revoke_all(instance, reason="deleted", keep_current=False)


def _revoke_all(user: Model, *, reason: str, keep_current: bool) -> None:
    """Revoke the user's sessions; the current request's survives, rotated, when it is
    the user's own and ``keep_current``."""
    try:
        session_store_class()
    except ImproperlyConfigured:  # not our engine: nothing of ours to revoke
        return
    request = current_request.get()
    session = _secure_session(request)
    # The session of the request making the change, when it is the user's own.
    own = session if session is not None and session.get(USER_ID_KEY) == user_id_of(user) else None
    keep = None
    if keep_current and request is not None and own is not None:
        # A new key for the surviving session: whoever may have learnt the old one
        # loses it with the others.
        if reason == "password":
            update_session_auth_hash(request, user)  # type: ignore[arg-type] # and the new hash
        else:
            own.cycle_key()
        keep = own
    revoke_user_sessions(user, keep=keep, reason=reason, request=request)
    if not keep_current and own is not None:
        # Ended in storage with the others; forget it here too, so the request goes on
        # with an empty session whose cookie is deleted, rather than saving into a
        # session that no longer exists (a 400), and a logout() that follows has
        # nothing left to report.
        own.flush()


def connect() -> None:
    user_model = get_user_model()
    user_logged_in.connect(record_login, dispatch_uid=DISPATCH_PREFIX + "record_login")
    user_logged_out.connect(report_logout, dispatch_uid=DISPATCH_PREFIX + "report_logout")
    post_init.connect(snapshot_user, sender=user_model, dispatch_uid=DISPATCH_PREFIX + "snapshot")
    pre_save.connect(find_user_changes, sender=user_model, dispatch_uid=DISPATCH_PREFIX + "find")
    post_save.connect(
        end_sessions_on_change, sender=user_model, dispatch_uid=DISPATCH_PREFIX + "end"
    )
    pre_delete.connect(
        end_sessions_on_delete, sender=user_model, dispatch_uid=DISPATCH_PREFIX + "delete"
    )
    for name in PRIVILEGE_RELATIONS:
        try:
            through = user_model._meta.get_field(name).remote_field.through  # type: ignore[union-attr]
        except FieldDoesNotExist:  # a custom user model without this relation
            continue
        m2m_changed.connect(
            end_sessions_on_relation_change,
            sender=through,
            dispatch_uid=DISPATCH_PREFIX + "m2m." + name,
        )
