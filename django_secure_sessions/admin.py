"""Admin: the "Sessions" page, and sessions on the user's change page (SPEC §7).

Every revocation is a POST with CSRF, needs ``django_secure_sessions.revoke_session``,
sends ``session_revoked`` with reason ``"admin"`` and is written to the admin log on
the user whose session ended. Pages show public session ids only, never a key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Final

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from .api import (
    list_user_sessions,
    revoke_session,
    revoke_user_sessions,
    session_store_class,
    user_id_of,
)
from .backends.base import SessionInfo, device_label
from .backends.db import SessionStore as DbSessionStore
from .models import SecureSession
from .templatetags.secure_sessions import short_datetime, time_ago

REVOKE_PERMISSION: Final = "django_secure_sessions.revoke_session"
REASON: Final = "admin"
# Sessions shown per page of the Redis listing.
PER_PAGE: Final = 50
# A filtered page of the Redis listing walks this many pages of sessions at most, then
# offers the next page: an admin's request costs a bounded walk, however rare the match.
MAX_WALK: Final = 20
# The "last activity" filter of the Sessions page, on both engines.
ACTIVE_WITHIN: Final = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# The filters of the Sessions page, on both engines: (query parameter, title).
CLIENT_FILTERS: Final = (
    ("browser", _("browser")),
    ("os", _("operating system")),
    ("device", _("device")),
)


def can_revoke(request: HttpRequest) -> bool:
    return request.user.has_perm(REVOKE_PERMISSION)


def _log(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, user: Model, message: str
) -> None:
    model_admin.log_change(request, user, message)


def _user_admin_for(site: admin.AdminSite) -> admin.ModelAdmin[Any]:
    user_model = get_user_model()
    return (
        site.get_model_admin(user_model)
        if site.is_registered(user_model)
        else admin.ModelAdmin(user_model, site)
    )


def _users_by_id(user_ids: Iterable[str | None]) -> dict[str, Model]:
    user_model = get_user_model()
    wanted = {user_id for user_id in user_ids if user_id is not None}
    return {user_id_of(user): user for user in user_model._default_manager.filter(pk__in=wanted)}


def revoke_as_admin(
    request: HttpRequest, site: admin.AdminSite, sessions: Sequence[tuple[str, str | None]]
) -> int:
    """Revoke (session id, user id) pairs, each logged on its user's admin history."""
    users = _users_by_id(user_id for _, user_id in sessions)
    user_admin = _user_admin_for(site)
    revoked = 0
    for session_id, user_id in sessions:
        if revoke_session(session_id, reason=REASON, request=request):
            revoked += 1
            if user_id in users:
                _log(user_admin, request, users[user_id], f"Revoked session {session_id}.")
    return revoked


def user_admin_url(site: admin.AdminSite, user: Model) -> str | None:
    """The change page of ``user`` on ``site``, if the site has one."""
    opts = user._meta
    try:
        return reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=[user.pk])
    except NoReverseMatch:
        return None


def linked_user(site: admin.AdminSite, user: Model | None, user_id: str | None) -> str:
    """The user of a session, linked to their change page: "—" for none (anonymous),
    the bare id for a user that no longer exists."""
    if user is None:
        return user_id or "—"
    url = user_admin_url(site, user)
    return format_html('<a href="{}">{}</a>', url, user) if url else str(user)


class ActiveFilter(admin.SimpleListFilter):
    """Sessions active in the last hour, or day."""

    title = _("last activity")
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("hour", _("In the last hour")), ("day", _("In the last day"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        since = ACTIVE_WITHIN.get(self.value() or "")
        if since is None:
            return queryset
        return queryset.filter(last_activity__gte=timezone.now() - since)


def _info_filter(params: dict[str, str]) -> Callable[[SessionInfo], bool]:
    """What the Redis listing keeps of the sessions it walks, by the same query
    parameters as the db engine's changelist filters."""
    wanted = {name: params[name] for name, _title in CLIENT_FILTERS if params.get(name)}
    since = ACTIVE_WITHIN.get(params.get(ActiveFilter.parameter_name, ""))
    earliest = None if since is None else timezone.now() - since

    def keep(info: SessionInfo) -> bool:
        if earliest is not None and info.last_activity < earliest:
            return False
        return all(getattr(info, name) == value for name, value in wanted.items())

    return keep


def _query(request: HttpRequest, name: str, value: object) -> str:
    """This page's query string with ``name`` set to ``value`` (removed for None). Any
    change but the cursor's starts again from the first page."""
    query = request.GET.copy()
    if name != "cursor":
        query.pop("cursor", None)
    if value is None:
        query.pop(name, None)
    else:
        query[name] = str(value)
    return f"?{query.urlencode()}"


@admin.register(SecureSession)
class SecureSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The "Sessions" page. On the db engine a regular changelist; on the Redis engine
    a page listed through the per-user indexes, a page at a time."""

    # One "device" column for browser, OS and device: the list fits 1280 pixels, and a
    # session with no client yet says so ("Unknown device (imported)").
    list_display = (
        "user_link",
        "device_label",
        "ip",
        "created_at",
        "last_active",
        "expires_at",
    )
    list_display_links = ("device_label",)
    list_filter = (*(name for name, _title in CLIENT_FILTERS), ActiveFilter)
    list_select_related = ("user",)
    ordering = ("-last_activity",)
    actions = ["revoke_selected"]
    list_per_page = PER_PAGE
    # The session's data is its user's, not the admin's to read; it may hold secrets
    # (the CSRF secret with CSRF_USE_SESSIONS, the auth hash). The detail page shows
    # what the list shows, not the data.
    exclude = ("data",)

    @admin.display(description=_("user"), ordering="user")
    def user_link(self, obj: SecureSession) -> str:
        # list_select_related joins the user: a user deleted meanwhile is None here.
        user_id = None if obj.user_id is None else str(obj.user_id)
        return linked_user(self.admin_site, obj.user, user_id)

    @admin.display(description=_("device"))
    def device_label(self, obj: SecureSession) -> str:
        return device_label(obj.browser, obj.os, obj.device, obj.origin)

    # Times in the short format, the last activity as "5 minutes ago", as on the Redis
    # engine's page: three full dates would take half of a 1280-pixel row.
    @admin.display(description=_("created"), ordering="created")
    def created_at(self, obj: SecureSession) -> str:
        return short_datetime(obj.created)

    @admin.display(description=_("last activity"), ordering="last_activity")
    def last_active(self, obj: SecureSession) -> str:
        return time_ago(obj.last_activity)

    @admin.display(description=_("expires"), ordering="expire_date")
    def expires_at(self, obj: SecureSession) -> str:
        return short_datetime(obj.expire_date)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        user_model = get_user_model()
        fields = [f"user__{user_model.USERNAME_FIELD}"]
        email = user_model.get_email_field_name()
        if any(field.name == email for field in user_model._meta.get_fields()):
            fields.append(f"user__{email}")
        return fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[SecureSession]:
        return super().get_queryset(request).filter(expire_date__gt=timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # sessions end by revocation, which signals and logs

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_revoke(request) or super().has_view_permission(request, obj)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return can_revoke(request)

    @admin.action(permissions=["revoke"], description=_("Revoke selected sessions"))
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[SecureSession]) -> None:
        pairs = [
            (sid, None if uid is None else str(uid))
            for sid, uid in queryset.values_list("pk", "user_id")
        ]
        self._revoked(request, revoke_as_admin(request, self.admin_site, pairs))

    def _revoked(self, request: HttpRequest, count: int) -> None:
        message = ngettext("Revoked %(count)d session.", "Revoked %(count)d sessions.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if issubclass(session_store_class(), DbSessionStore):
            return super().changelist_view(request, extra_context)
        return self._redis_changelist(request)

    def _redis_changelist(self, request: HttpRequest) -> HttpResponse:
        """The Redis engine's Sessions page: the db engine's changelist, column for
        column, filter for filter, listed through the per-user indexes a page at a time
        (a cursor, not page numbers)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._redis_revoke(request)
        params = {name: value for name in request.GET if (value := request.GET.get(name, ""))}
        query = params.get("q", "").strip()
        keep = _info_filter(params)
        if query:
            seen, next_cursor = self._search(query), None
        else:
            seen, next_cursor = self._walk(params.get("cursor", "0"), keep)
        infos = [info for info in seen if keep(info)]
        users = _users_by_id(info.user_id for info in infos)
        rows = [
            (info, linked_user(self.admin_site, users.get(info.user_id or ""), info.user_id))
            for info in infos
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Sessions"),
            "opts": self.model._meta,
            "media": self.media,
            "query": query,
            "rows": rows,
            "total": session_store_class().count_signed_in(),
            "filters": self._redis_filters(request, params, seen),
            "has_active_filters": any(
                params.get(name) for name in (*dict(CLIENT_FILTERS), ActiveFilter.parameter_name)
            ),
            "can_revoke": can_revoke(request),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "next_page": None if next_cursor is None else _query(request, "cursor", next_cursor),
        }
        return TemplateResponse(
            request, "admin/django_secure_sessions/redis_changelist.html", context
        )

    def _redis_revoke(self, request: HttpRequest) -> HttpResponse:
        """The action menu's "Revoke selected sessions" on the Redis page."""
        if not can_revoke(request):
            raise PermissionDenied
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if request.POST.get("action") != "revoke_selected" or not selected:
            # What the db changelist answers to a missing action or an empty selection.
            self.message_user(
                request,
                _(
                    "Items must be selected in order to perform actions on them. No items "
                    "have been changed."
                ),
                messages.WARNING,
            )
            return HttpResponseRedirect(request.get_full_path())
        # The user of each session comes from storage, never from the form.
        found = session_store_class().sessions_by_id(selected)
        pairs = [(info.id, info.user_id) for info in found]
        self._revoked(request, revoke_as_admin(request, self.admin_site, pairs))
        return HttpResponseRedirect(request.get_full_path())

    @staticmethod
    def _redis_filters(
        request: HttpRequest, params: dict[str, str], seen: list[SessionInfo]
    ) -> list[tuple[Any, list[tuple[str, str, bool]]]]:
        """The filter sidebar: (title, [(label, query string, selected)]) per filter.
        The choices of browser, OS and device are those of the sessions walked for this
        page (listing every value stored would cost a walk of all sessions)."""

        def link(name: str, value: str | None) -> str:
            return _query(request, name, value)

        filters = []
        for name, title in CLIENT_FILTERS:
            current = params.get(name)
            values: set[str] = {getattr(info, name) for info in seen}
            if current is not None:
                values.add(current)
            choices = [(str(_("All")), link(name, None), current is None)]
            choices += [(value, link(name, value), value == current) for value in sorted(values)]
            filters.append((title, choices))
        current = params.get(ActiveFilter.parameter_name)
        choices = [(str(_("All")), link(ActiveFilter.parameter_name, None), current is None)]
        choices += [
            (str(label), link(ActiveFilter.parameter_name, value), value == current)
            for value, label in (("hour", _("In the last hour")), ("day", _("In the last day")))
        ]
        filters.append((ActiveFilter.title, choices))
        return filters

    @staticmethod
    def _search(query: str) -> list[SessionInfo]:
        user_model = get_user_model()
        condition = Q(**{f"{user_model.USERNAME_FIELD}__icontains": query})
        email = user_model.get_email_field_name()
        if any(field.name == email for field in user_model._meta.get_fields()):
            condition |= Q(**{f"{email}__icontains": query})
        infos: list[SessionInfo] = []
        for user in user_model._default_manager.filter(condition)[:PER_PAGE]:
            infos.extend(list_user_sessions(user))
        return infos

    @staticmethod
    def _walk(
        cursor_text: str, keep: Callable[[SessionInfo], bool]
    ) -> tuple[list[SessionInfo], int | None]:
        """The sessions walked from the cursor until a page of them passes the filters
        (at most ``MAX_WALK`` pages), and the cursor to go on from (None at the end)."""
        store = session_store_class()
        try:
            cursor = max(int(cursor_text), 0)
        except ValueError:
            cursor = 0
        seen: list[SessionInfo] = []
        for _walked in range(MAX_WALK):
            cursor, infos = store.page_sessions(cursor, PER_PAGE)
            seen.extend(infos)
            if cursor == 0 or sum(map(keep, seen)) >= PER_PAGE:
                break
        seen.sort(key=lambda info: info.last_activity, reverse=True)
        return seen, cursor or None


class SessionsUserAdminMixin:
    """Adds the user's sessions to a user admin's change page, with a revoke button per
    session and "Sign out everywhere", and the changelist action ``sign_out_everywhere``.

    Applied by ``install_user_admin`` to whatever admin is registered for the user model;
    mix it into your own user admin to place it yourself.
    """

    admin_site: admin.AdminSite
    model: type[Model]

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Added to the admin's own actions, not in place of them. Django 6.1 asks for the
        # actions of a place (the change list, or a change form: ``action_location``) and
        # describes each with an ``Action``; Django 5.2 asks without, and uses tuples.
        where = {} if action_location is None else {"action_location": action_location}
        actions: dict[str, Any] = super().get_actions(request, **where)  # type: ignore[misc]
        if not can_revoke(request):
            return actions
        action = self.get_action("sign_out_everywhere", **where)  # type: ignore[attr-defined]
        if action is not None:  # None: not offered in that place (a change form)
            actions[action.name if hasattr(action, "name") else action[1]] = action
        return actions

    @admin.action(description=_("Sign out everywhere"))
    def sign_out_everywhere(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        if not can_revoke(request):
            raise PermissionDenied
        total = 0
        for user in queryset:
            count = revoke_user_sessions(user, reason=REASON, request=request)
            if count:
                _log(self, request, user, f"Signed out everywhere ({count} sessions revoked).")  # type: ignore[arg-type]
            total += count
        message = ngettext("Revoked %(count)d session.", "Revoked %(count)d sessions.", total)
        self.message_user(request, message % {"count": total}, messages.SUCCESS)  # type: ignore[attr-defined]

    # The return types are ModelAdmin's, so that the mixin type-checks with it.
    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> list[str] | tuple[str, ...]:
        fields: list[str] | tuple[str, ...] = super().get_readonly_fields(request, obj)  # type: ignore[misc]
        return [*fields, "secure_sessions"] if obj is not None else fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # An admin without fieldsets lists its readonly fields among its fields: the
        # sessions get their own section instead (get_fieldsets), not a second place.
        fields: Sequence[Any] = super().get_fields(request, obj)  # type: ignore[misc]
        return [field for field in fields if field != "secure_sessions"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if obj is None or "secure_sessions" in flatten_fieldsets(fieldsets):
            return fieldsets  # an add page, or the admin's own fieldsets place them
        return [*fieldsets, (_("Sessions"), {"fields": ["secure_sessions"]})]

    @admin.display(description=_("Active sessions"))
    def secure_sessions(self, obj: Model) -> SafeString:
        opts = self.model._meta
        name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}"
        sessions = list_user_sessions(obj)
        html = render_to_string(
            "admin/django_secure_sessions/user_sessions.html",
            {
                "sessions": sessions,
                "revoke_urls": {
                    info.id: reverse(f"{name}_revoke_session", args=[obj.pk, info.id])
                    for info in sessions
                },
                "revoke_all_url": reverse(f"{name}_revoke_all_sessions", args=[obj.pk]),
            },
        )
        return mark_safe(html)  # noqa: S308 - rendered by a template, which escapes

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        urls: list[URLPattern] = super().get_urls()  # type: ignore[misc]
        return [
            path(
                "<path:object_id>/sessions/<str:session_id>/revoke/",
                wrap(require_POST(self._revoke_one_view)),
                name=f"{name}_revoke_session",
            ),
            path(
                "<path:object_id>/sessions/revoke-all/",
                wrap(require_POST(self._revoke_all_view)),
                name=f"{name}_revoke_all_sessions",
            ),
            *urls,
        ]

    def _user_or_denied(self, request: HttpRequest, object_id: str) -> Model:
        if not can_revoke(request):
            raise PermissionDenied
        user: Model | None = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if user is None:
            raise PermissionDenied
        return user

    def _back(self, user: Model) -> HttpResponse:
        opts = self.model._meta
        return redirect(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", user.pk
        )

    def _revoke_one_view(
        self, request: HttpRequest, object_id: str, session_id: str
    ) -> HttpResponse:
        user = self._user_or_denied(request, object_id)
        # Only a session of this user: an id from the form is never trusted further.
        if any(info.id == session_id for info in list_user_sessions(user)):
            revoke_as_admin(request, self.admin_site, [(session_id, user_id_of(user))])
            self.message_user(request, _("The session is revoked."), messages.SUCCESS)  # type: ignore[attr-defined]
        return self._back(user)

    def _revoke_all_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        user = self._user_or_denied(request, object_id)
        count = revoke_user_sessions(user, reason=REASON, request=request)
        if count:
            _log(self, request, user, f"Signed out everywhere ({count} sessions revoked).")  # type: ignore[arg-type]
        message = ngettext("Revoked %(count)d session.", "Revoked %(count)d sessions.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)  # type: ignore[attr-defined]
        return self._back(user)


def install_user_admin(site: admin.AdminSite = admin.site) -> None:
    """Re-register the user model's admin with ``SessionsUserAdminMixin`` mixed in."""
    user_model = get_user_model()
    if not site.is_registered(user_model):
        return
    current: Any = site.get_model_admin(user_model)
    if isinstance(current, SessionsUserAdminMixin):
        return
    base = type(current)
    site.unregister(user_model)
    site.register(
        user_model,
        type(base.__name__, (SessionsUserAdminMixin, base), {"__module__": base.__module__}),
    )


install_user_admin()
