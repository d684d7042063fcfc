"""What ends sessions, and when (SPEC §5): through real browsers, on both engines.

Each "browser" is a ``django.test.Client`` signed in as a user. A test changes the user
the way a project would (a model save, the admin, Django's auth views, a view of its
own) and then asks every browser who it is signed in as, reads what is stored
(``list_user_sessions``) and checks what was reported: the ``session_revoked`` and
``session_rotated`` signals, and the log lines on ``django_secure_sessions``, none of
which may ever carry a session key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from django.contrib.auth.models import Group, Permission, User
from django.contrib.auth.tokens import default_token_generator
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.urls import path
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from pytest_django import DjangoAssertNumQueries
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions import list_user_sessions, revoke_user_sessions
from django_secure_sessions.backends.base import session_id_for_key
from django_secure_sessions.signals import session_revoked, session_rotated
from tests.factories import PASSWORD
from tests.marks import async_test

START = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
NEW_PASSWORD = "a brand new passphrase, long enough"
# A session key: 32 lowercase letters and digits (the public ids are 40 hex digits).
# A key of ours (on Redis Cluster, with a routing tag in capitals: backends/routing.py).
KEY_SHAPE = re.compile(r"\b[A-Pa-z0-9]{4}[a-z0-9]{28}\b")


# -- views ------------------------------------------------------------------------------


def whoami(request: HttpRequest) -> HttpResponse:
    """Who this browser is signed in as ("" when anonymous)."""
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "")


def signed_in_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User), "these views are for signed-in users"
    return user


def join_group(request: HttpRequest) -> HttpResponse:
    """The signed-in user gets a privilege (say, a "become a moderator" page)."""
    group, _ = Group.objects.get_or_create(name="moderators")
    signed_in_user(request).groups.add(group)
    return HttpResponse("joined")


def become_staff(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    user.is_staff = True
    user.save()
    return HttpResponse("staff")


def grant_permission(request: HttpRequest) -> HttpResponse:
    signed_in_user(request).user_permissions.add(Permission.objects.get(codename="revoke_session"))
    return HttpResponse("granted")


def change_email(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    user.email = "new-address@example.com"
    user.save()
    return HttpResponse("changed")


async def change_email_async(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    assert isinstance(user, User)
    user.email = "new-address@example.com"
    await user.asave()
    return HttpResponse("changed")


def close_account(request: HttpRequest) -> HttpResponse:
    """Deactivation by the user: every session ends, this one included."""
    user = signed_in_user(request)
    user.is_active = False
    user.save()
    request.session["goodbye"] = True  # what a view may still do after the save
    return HttpResponse("closed")


def close_account_and_log_out(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    user.is_active = False
    user.save()
    logout(request)
    return HttpResponse("closed")


def delete_account(request: HttpRequest) -> HttpResponse:
    signed_in_user(request).delete()
    return HttpResponse("deleted")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("whoami/", whoami),
    path("join-group/", join_group),
    path("become-staff/", become_staff),
    path("grant-permission/", grant_permission),
    path("change-email/", change_email),
    path("change-email-async/", change_email_async),
    path("close-account/", close_account),
    path("close-account-and-log-out/", close_account_and_log_out),
    path("delete-account/", delete_account),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="admin/login.html", next_page="/whoami/"),
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="/whoami/")),
    path("password-change/", auth_views.PasswordChangeView.as_view(success_url="/whoami/")),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/whoami/"),
    ),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.usefixtures("engine")]


# -- browsers, and what the app reported --------------------------------------------------


@dataclass
class Reports:
    """What the app told the project: signals received, log lines, and every session key
    a browser held (none of which may appear in either)."""

    caplog: pytest.LogCaptureFixture
    revoked: list[dict[str, Any]] = field(default_factory=list)
    rotated: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def remember(self, client: Client | AsyncClient) -> None:
        """Note the session key ``client`` holds (an empty value: a deleted cookie)."""
        cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
        if cookie is not None and cookie.value:
            self.keys.add(cookie.value)

    def revocations(self) -> set[tuple[str, str]]:
        """(public session id, reason) of every session_revoked received."""
        return {(event["session_id"], event["reason"]) for event in self.revoked}

    def rotations_of(self, session_id: str) -> list[tuple[str, str]]:
        """(new session id, user id) of each session_rotated away from ``session_id``."""
        return [
            (event["session_id"], event["user_id"])
            for event in self.rotated
            if event["previous_session_id"] == session_id
        ]

    def log_lines(self) -> list[str]:
        """Every line logged during the test (checked at teardown: caplog.records would
        hold the teardown's only)."""
        records = self.caplog.get_records("setup") + self.caplog.get_records("call")
        return [r.getMessage() for r in records]

    def check(self) -> None:
        """Every revocation was logged, and no key was ever signalled or logged."""
        lines = self.log_lines()
        for event in self.revoked:
            assert any(
                event["session_id"] in line and f"({event['reason']})" in line for line in lines
            ), (event, lines)
        signalled = repr(self.revoked) + repr(self.rotated)
        logged = "\n".join(lines)
        for key in self.keys:
            assert key not in signalled
            assert key not in logged
        # Nor any key of a rotation in the middle of a request, which no browser saw.
        assert KEY_SHAPE.search(signalled) is None
        assert KEY_SHAPE.search(logged) is None


@pytest.fixture
def reports(caplog: pytest.LogCaptureFixture) -> Iterator[Reports]:
    caplog.set_level(logging.INFO, logger="django_secure_sessions")
    found = Reports(caplog)
    receivers: list[tuple[Signal, Callable[..., None]]] = [
        (session_revoked, lambda **kwargs: found.revoked.append(kwargs)),
        (session_rotated, lambda **kwargs: found.rotated.append(kwargs)),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
    yield found
    for signal, receiver in receivers:
        signal.disconnect(receiver)
    found.check()


def key_of(client: Client | AsyncClient) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def session_id_of(client: Client | AsyncClient) -> str:
    return session_id_for_key(key_of(client))


def signed_in_as(client: Client, reports: Reports) -> str:
    """Who ``client`` is signed in as on its next request ("" when anonymous)."""
    reports.remember(client)
    response = client.get("/whoami/")
    assert response.status_code == 200
    reports.remember(client)
    return response.content.decode()


def browser(user: User, reports: Reports) -> Client:
    """A new browser, signed in as ``user`` (and bound to it by a first request)."""
    client = Client()
    client.force_login(user)
    assert signed_in_as(client, reports) == user.get_username()
    return client


def browser_logging_in(user: User, reports: Reports) -> Client:
    """A new browser that signs in with the login form, as a person would."""
    client = Client()
    response = client.post(
        "/login/", {"username": user.get_username(), "password": PASSWORD}, follow=True
    )
    assert response.content.decode() == user.get_username()
    reports.remember(client)
    return client


def session_ids(user: User) -> set[str]:
    return {info.id for info in list_user_sessions(user)}


def fresh(user: User) -> User:
    """The user as another part of the project would load it."""
    return User._default_manager.get(pk=user.pk)


# -- a new password hash ---------------------------------------------------------------


def set_password_and_save(user: Any) -> None:
    user.set_password(NEW_PASSWORD)
    user.save()


def set_password_and_save_the_field(user: Any) -> None:
    user.set_password(NEW_PASSWORD)
    user.save(update_fields=["password"])


def assign_a_hash(user: Any) -> None:
    user.password = make_password(NEW_PASSWORD)
    user.save()


PASSWORD_SAVES = {
    "set_password-save": set_password_and_save,
    "set_password-update_fields": set_password_and_save_the_field,
    "assign-hash-save": assign_a_hash,
}


@pytest.mark.parametrize("change", PASSWORD_SAVES.values(), ids=PASSWORD_SAVES.keys())
def test_a_new_password_hash_signs_out_every_browser_at_once(
    make_user: Callable[..., User],
    reports: Reports,
    change: Callable[[Any], None],
) -> None:
    user, bystander = make_user(), make_user()
    laptop, phone = browser(user, reports), browser(user, reports)
    elsewhere = browser(bystander, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}

    change(fresh(user))

    # Server-side and at once, not on each browser's next request.
    assert list_user_sessions(user) == []
    assert reports.revocations() == {(session_id, "password") for session_id in ended}
    assert {event["user_id"] for event in reports.revoked} == {str(user.pk)}
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert signed_in_as(elsewhere, reports) == bystander.get_username()


def test_the_admin_changing_a_users_password_signs_out_that_user_only(
    make_user: Callable[..., User], reports: Reports
) -> None:
    user = make_user()
    superuser = make_user(is_staff=True, is_superuser=True)
    laptop, phone = browser(user, reports), browser(user, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}
    admin_browser = browser(superuser, reports)

    response = admin_browser.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert signed_in_as(admin_browser, reports) == superuser.get_username()
    assert session_ids(superuser) == {session_id_of(admin_browser)}
    assert reports.revocations() == {(session_id, "password") for session_id in ended}


def test_changing_ones_own_password_keeps_this_browser_with_a_new_key(
    user: User, reports: Reports
) -> None:
    laptop, phone = browser_logging_in(user, reports), browser_logging_in(user, reports)
    laptop_key, phone_id = key_of(laptop), session_id_of(phone)

    response = laptop.post(
        "/password-change/",
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    reports.remember(laptop)
    assert key_of(laptop) != laptop_key
    assert session_ids(user) == {session_id_of(laptop)}
    assert signed_in_as(laptop, reports) == user.get_username()
    assert signed_in_as(phone, reports) == ""
    assert reports.revocations() == {(phone_id, "password")}
    # Rotated by our handler, then again by the view's update_session_auth_hash().
    assert reports.rotations_of(session_id_for_key(laptop_key))


def test_a_password_reset_signs_out_every_browser(user: User, reports: Reports) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    reset_browser = Client()

    form = reset_browser.get(f"/reset/{uid}/{token}/", follow=True)
    response = reset_browser.post(
        form.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert signed_in_as(reset_browser, reports) == ""
    assert reports.revocations() == {(session_id, "password") for session_id in ended}


class QuickPBKDF2Hasher(PBKDF2PasswordHasher):
    """A "stronger" hasher than the suite's MD5, fast enough for a test."""

    iterations = 2


def test_a_password_hasher_upgrade_at_login_counts_as_a_password_change(
    user: User, reports: Reports, settings: SettingsWrapper
) -> None:
    laptop = browser(user, reports)
    laptop_id = session_id_of(laptop)
    settings.PASSWORD_HASHERS = [
        f"{__name__}.QuickPBKDF2Hasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]

    # The stored MD5 hash is upgraded at this login: a new hash, as in Django, where the
    # other sessions would end at their next request.
    phone = browser_logging_in(user, reports)

    assert fresh(user).password.startswith("pbkdf2_sha256$2$")
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == user.get_username()
    assert reports.revocations() == {(laptop_id, "password")}


# -- other watched fields -------------------------------------------------------------------


def test_an_email_change_signs_out_every_browser(
    make_user: Callable[..., User], reports: Reports
) -> None:
    user = make_user()
    laptop, phone = browser(user, reports), browser(user, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}

    changed = fresh(user)
    changed.email = "someone-else@example.com"
    changed.save()

    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert reports.revocations() == {(session_id, "email") for session_id in ended}


def test_changing_ones_own_email_keeps_this_browser_with_a_new_key(
    user: User, reports: Reports
) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    laptop_id, phone_id = session_id_of(laptop), session_id_of(phone)

    assert laptop.post("/change-email/").status_code == 200

    reports.remember(laptop)
    assert session_id_of(laptop) != laptop_id
    assert session_ids(user) == {session_id_of(laptop)}
    assert signed_in_as(laptop, reports) == user.get_username()
    assert signed_in_as(phone, reports) == ""
    assert reports.revocations() == {(phone_id, "email")}
    assert reports.rotations_of(laptop_id) == [(session_id_of(laptop), str(user.pk))]


@async_test
async def test_async_changing_ones_own_email_keeps_this_browser_with_a_new_key(
    user: User, reports: Reports
) -> None:
    laptop, phone = AsyncClient(), AsyncClient()
    for client in (laptop, phone):
        await client.aforce_login(user)
        assert (await client.get("/whoami/")).content.decode() == user.get_username()
        reports.remember(client)
    laptop_id, phone_id = session_id_of(laptop), session_id_of(phone)

    assert (await laptop.post("/change-email-async/")).status_code == 200

    reports.remember(laptop)
    assert session_id_of(laptop) != laptop_id
    assert (await laptop.get("/whoami/")).content.decode() == user.get_username()
    assert (await phone.get("/whoami/")).content.decode() == ""
    assert reports.revocations() == {(phone_id, "email")}


def test_a_field_added_to_invalidate_on_signs_out_every_browser(
    user: User, reports: Reports, settings: SettingsWrapper
) -> None:
    settings.SECURE_SESSIONS_INVALIDATE_ON = ["password", "is_active", "last_name"]
    laptop, phone = browser(user, reports), browser(user, reports)

    changed = fresh(user)
    changed.email = "not-watched-any-more@example.com"
    changed.save()
    assert len(list_user_sessions(user)) == 2

    changed.last_name = "Married-Name"
    changed.save()

    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert {reason for _, reason in reports.revocations()} == {"last_name"}


def test_deactivation_signs_out_every_browser(user: User, reports: Reports) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}

    changed = fresh(user)
    changed.is_active = False
    changed.save()

    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert reports.revocations() == {(session_id, "deactivated") for session_id in ended}


@pytest.mark.parametrize("view", ["/close-account/", "/close-account-and-log-out/"])
def test_closing_ones_own_account_ends_this_session_too(
    user: User, reports: Reports, view: str
) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}

    response = laptop.post(view)

    assert response.status_code == 200
    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    # Reported once each, as a deactivation (a logout that follows adds nothing).
    assert sorted((e["session_id"], e["reason"]) for e in reports.revoked) == sorted(
        (session_id, "deactivated") for session_id in ended
    )


def test_deleting_a_user_signs_out_every_browser(
    make_user: Callable[..., User], reports: Reports
) -> None:
    user, bystander = make_user(), make_user()
    laptop, phone = browser(user, reports), browser(user, reports)
    elsewhere = browser(bystander, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}
    user_pk = user.pk

    fresh(user).delete()

    assert list_user_sessions(user_pk) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert signed_in_as(elsewhere, reports) == bystander.get_username()
    assert reports.revocations() == {(session_id, "deleted") for session_id in ended}


def test_deleting_ones_own_account_ends_this_session_too(user: User, reports: Reports) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    user_pk = user.pk

    assert laptop.post("/delete-account/").status_code == 200

    assert list_user_sessions(user_pk) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert {reason for _, reason in reports.revocations()} == {"deleted"}
    assert len(reports.revoked) == 2


# -- saves that change nothing watched ---------------------------------------------------------


def test_a_save_that_changes_nothing_watched_is_just_the_update(
    user: User, reports: Reports, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    laptop = browser(user, reports)
    loaded = fresh(user)

    with django_assert_num_queries(1) as captured:
        loaded.first_name = "Ada"
        loaded.save()

    assert captured.captured_queries[0]["sql"].startswith("UPDATE")
    assert signed_in_as(laptop, reports) == user.get_username()
    assert reports.revoked == []


def test_a_value_refreshed_from_the_database_is_not_a_change(user: User, reports: Reports) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    loaded = fresh(user)
    changed_elsewhere = fresh(user)
    changed_elsewhere.email = "changed-elsewhere@example.com"
    changed_elsewhere.save()  # ends the two sessions: a change
    laptop, phone = browser(user, reports), browser(user, reports)
    reports.revoked.clear()

    loaded.refresh_from_db()
    loaded.save()
    loaded.email = "back-and-forth@example.com"
    loaded.email = "changed-elsewhere@example.com"
    loaded.save()

    assert len(list_user_sessions(user)) == 2
    assert signed_in_as(laptop, reports) == user.get_username()
    assert signed_in_as(phone, reports) == user.get_username()
    assert reports.revoked == []


def test_a_value_left_out_of_update_fields_is_a_change_when_it_is_saved(
    user: User, reports: Reports
) -> None:
    laptop = browser(user, reports)
    laptop_id = session_id_of(laptop)
    loaded = fresh(user)

    loaded.email = "pending@example.com"
    loaded.first_name = "Ada"
    loaded.save(update_fields=["first_name"])  # the email is not saved: no change yet
    assert signed_in_as(laptop, reports) == user.get_username()

    loaded.save()

    assert signed_in_as(laptop, reports) == ""
    assert reports.revocations() == {(laptop_id, "email")}


@pytest.mark.parametrize("field_name", ["email", "password", "is_active", "is_staff"])
def test_queryset_update_bypasses_revocation(user: User, reports: Reports, field_name: str) -> None:
    """The documented limitation: update() sends no signal, so nothing is revoked ..."""
    browser(user, reports)
    browser(user, reports)
    values = {
        "email": "changed@example.com",
        "password": make_password(NEW_PASSWORD),
        "is_active": False,
        "is_staff": True,
    }

    User._default_manager.filter(pk=user.pk).update(**{field_name: values[field_name]})

    assert len(list_user_sessions(user)) == 2
    assert reports.revoked == []

    # ... and what the documentation says to call after it.
    assert revoke_user_sessions(user, reason="password") == 2
    assert list_user_sessions(user) == []


# -- privilege changes -------------------------------------------------------------------------


def _group(name: str = "editors") -> Group:
    return Group.objects.get_or_create(name=name)[0]


def _permission(codename: str = "revoke_session") -> Permission:
    return Permission.objects.get(codename=codename)


def make_staff(user: Any) -> None:
    user.is_staff = True
    user.save()


def make_superuser(user: Any) -> None:
    user.is_superuser = True
    user.save()


PRIVILEGE_CHANGES: dict[str, Callable[[Any], None]] = {
    "is_staff": make_staff,
    "is_superuser": make_superuser,
    "groups.add": lambda user: user.groups.add(_group("new")),
    "groups.remove": lambda user: user.groups.remove(_group()),
    "groups.clear": lambda user: user.groups.clear(),
    "group.user_set.add": lambda user: _group("new").user_set.add(user),  # noqa: PLW0108
    "group.user_set.remove": lambda user: _group().user_set.remove(user),  # noqa: PLW0108
    "user_permissions.add": lambda user: user.user_permissions.add(_permission("add_group")),
    "user_permissions.remove": lambda user: user.user_permissions.remove(_permission()),
    "user_permissions.clear": lambda user: user.user_permissions.clear(),
}


@pytest.mark.parametrize("change", PRIVILEGE_CHANGES.values(), ids=PRIVILEGE_CHANGES.keys())
def test_a_privilege_change_signs_out_the_users_browsers(
    make_user: Callable[..., User], reports: Reports, change: Callable[[Any], None]
) -> None:
    user, bystander = make_user(), make_user()
    user.groups.add(_group())
    user.user_permissions.add(_permission())
    laptop, phone = browser(user, reports), browser(user, reports)
    elsewhere = browser(bystander, reports)
    ended = {session_id_of(laptop), session_id_of(phone)}

    change(fresh(user))

    assert list_user_sessions(user) == []
    assert signed_in_as(laptop, reports) == ""
    assert signed_in_as(phone, reports) == ""
    assert signed_in_as(elsewhere, reports) == bystander.get_username()
    assert reports.revocations() == {(session_id, "privilege") for session_id in ended}


def test_clearing_a_group_signs_out_each_of_its_members(
    make_user: Callable[..., User], reports: Reports
) -> None:
    group = _group()
    alice, bob, carol = make_user(), make_user(), make_user()
    group.user_set.add(alice, bob)
    alices, bobs, carols = browser(alice, reports), browser(bob, reports), browser(carol, reports)

    group.user_set.clear()

    assert signed_in_as(alices, reports) == ""
    assert signed_in_as(bobs, reports) == ""
    assert signed_in_as(carols, reports) == carol.get_username()
    assert {event["user_id"] for event in reports.revoked} == {str(alice.pk), str(bob.pk)}
    assert {reason for _, reason in reports.revocations()} == {"privilege"}


@pytest.mark.parametrize("view", ["/join-group/", "/become-staff/", "/grant-permission/"])
def test_a_privilege_gained_in_a_request_rotates_that_browsers_key(
    user: User, reports: Reports, view: str
) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    laptop_id, phone_id = session_id_of(laptop), session_id_of(phone)

    assert laptop.post(view).status_code == 200

    reports.remember(laptop)
    assert session_id_of(laptop) != laptop_id
    assert session_ids(user) == {session_id_of(laptop)}
    assert signed_in_as(laptop, reports) == user.get_username()
    assert signed_in_as(phone, reports) == ""
    assert reports.revocations() == {(phone_id, "privilege")}
    assert reports.rotations_of(laptop_id) == [(session_id_of(laptop), str(user.pk))]
    assert [e["request"].path for e in reports.rotated if e["request"] is not None] == [view]


def test_adding_a_group_the_user_is_already_in_changes_nothing(
    user: User, reports: Reports
) -> None:
    group = _group()
    user.groups.add(group)
    laptop = browser(user, reports)

    fresh(user).groups.add(group)
    group.user_set.add(user)

    assert signed_in_as(laptop, reports) == user.get_username()
    assert reports.revoked == []


# -- a limit on sessions per user ----------------------------------------------------------------


def test_a_login_beyond_max_per_user_ends_the_oldest_session(
    user: User,
    reports: Reports,
    settings: SettingsWrapper,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    settings.SECURE_SESSIONS_MAX_PER_USER = 2
    time_machine.move_to(START, tick=False)
    first = browser_logging_in(user, reports)
    first_id = session_id_of(first)
    time_machine.shift(60)
    second = browser_logging_in(user, reports)
    time_machine.shift(60)
    assert signed_in_as(first, reports) == user.get_username()  # recent activity: still oldest

    third = browser_logging_in(user, reports)

    assert signed_in_as(first, reports) == ""
    assert signed_in_as(second, reports) == user.get_username()
    assert signed_in_as(third, reports) == user.get_username()
    assert session_ids(user) == {session_id_of(second), session_id_of(third)}
    assert reports.revocations() == {(first_id, "limit")}


def test_logins_within_one_second_beyond_max_per_user_end_exactly_the_oldest(
    user: User,
    reports: Reports,
    settings: SettingsWrapper,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    # A script or two tabs: four logins in the same second, three sessions allowed.
    settings.SECURE_SESSIONS_MAX_PER_USER = 3
    time_machine.move_to(START, tick=False)
    browsers = []
    for _ in range(3):
        browsers.append(browser_logging_in(user, reports))
        time_machine.shift(0.2)
    oldest_id = session_id_of(browsers[0])

    browsers.append(browser_logging_in(user, reports))  # still within the first second

    assert [signed_in_as(each, reports) for each in browsers] == ["", *[user.get_username()] * 3]
    assert session_ids(user) == {session_id_of(each) for each in browsers[1:]}
    assert reports.revocations() == {(oldest_id, "limit")}


# -- logout ---------------------------------------------------------------------------------


def test_logout_deletes_the_session_server_side(user: User, reports: Reports) -> None:
    laptop, phone = browser(user, reports), browser(user, reports)
    stolen_key, laptop_id = key_of(laptop), session_id_of(laptop)

    response = laptop.post("/logout/", follow=True)

    assert response.content.decode() == ""
    assert session_ids(user) == {session_id_of(phone)}
    assert reports.revocations() == {(laptop_id, "logout")}
    # Someone who copied the cookie before the logout gets nothing with it.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = stolen_key
    assert signed_in_as(replay, reports) == ""
    assert signed_in_as(phone, reports) == user.get_username()
