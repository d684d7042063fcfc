"""The admin (SPEC §7): the "Sessions" page, sessions on the user's change page and the
``sign_out_everywhere`` action, on both engines, for each kind of visitor.

Alice is signed in on a laptop and a phone, Bob on his computer. Every page any browser
of a test gets is checked for the session keys any of them held (``browsers``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import AsyncClient
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions import list_user_sessions
from django_secure_sessions.admin import PER_PAGE, SessionsUserAdminMixin
from django_secure_sessions.backends.base import USER_ID_KEY, SecureSessionBase
from django_secure_sessions.backends.db import SessionStore
from django_secure_sessions.signals import session_revoked
from tests.browsing import (
    CHROME_ON_WINDOWS,
    FIREFOX_ON_LINUX,
    SAFARI_ON_IPHONE,
    Browser,
    Browsers,
    csrf_token,
    elements,
    redirect_target,
    session_id,
    session_key,
    sign_in,
)
from tests.marks import async_test
from tests.sessions import OTHER_ENGINE_KEY, capture

LOGIN = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
SESSIONS = "/admin/django_secure_sessions/securesession/"
USERS = "/admin/auth/user/"
ADMIN_LOGIN = "/admin/login/"
ACTION_CHECKBOX = "_selected_action"

REPOSITORY = Path(__file__).resolve().parent.parent

MakeUser = Callable[..., User]


@dataclass
class People:
    alice: User
    laptop: Browser
    phone: Browser
    bob: User
    bobs: Browser


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> time_machine.TimeMachineFixture:
    time_machine.move_to(LOGIN, tick=False)
    return time_machine


@pytest.fixture
def people(
    engine: str, browsers: Browsers, frozen: time_machine.TimeMachineFixture, make_user: MakeUser
) -> People:
    """Runs the test on each engine (see ``engine``), with Alice and Bob signed in."""
    alice = make_user(username="alice", email="asmith@corp.example")
    bob = make_user(username="bob", email="robert@home.example")
    laptop = browsers.open(CHROME_ON_WINDOWS, "198.51.100.7")
    phone = browsers.open(SAFARI_ON_IPHONE, "203.0.113.9")
    bobs = browsers.open(FIREFOX_ON_LINUX, "192.0.2.50")
    sign_in(laptop, alice)
    sign_in(phone, alice)
    sign_in(bobs, bob)
    return People(alice, laptop, phone, bob, bobs)


def staff(make_user: MakeUser, *permissions: str, superuser: bool = False) -> User:
    """A staff member with these permissions ("app_label.codename")."""
    user = make_user(is_staff=True, is_superuser=superuser)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


# The kinds of visitors, by the permissions they hold.
SUPERUSER = "superuser"
PERMITTED = "permitted staff"  # revoke_session, and may view users
VIEWER = "viewer"  # may view sessions and users, not revoke
PLAIN = "plain staff"  # no permission at all

REVOKERS = [SUPERUSER, PERMITTED]
NOT_REVOKERS = [VIEWER, PLAIN]


def make_admin(make_user: MakeUser, kind: str) -> User:
    if kind == SUPERUSER:
        return staff(make_user, superuser=True)
    if kind == PERMITTED:
        return staff(make_user, "django_secure_sessions.revoke_session", "auth.view_user")
    if kind == VIEWER:
        return staff(make_user, "django_secure_sessions.view_securesession", "auth.view_user")
    return staff(make_user)


@pytest.fixture
def admin_of(engine: str, browsers: Browsers, frozen: Any, make_user: MakeUser) -> Any:
    """A browser signed in to the admin as a visitor of a kind."""

    def open_as(kind: str, *, enforce_csrf_checks: bool = False) -> tuple[Browser, User]:
        admin = make_admin(make_user, kind)
        client = browsers.open(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "10.0.0.2",
            enforce_csrf_checks=enforce_csrf_checks,
        )
        sign_in(client, admin)
        return client, admin

    return open_as


def is_signed_in(client: Browser) -> bool:
    return client.get("/account/sessions/").status_code == 200


def log_entries(user: User) -> list[LogEntry]:
    """The admin log of a user's object, oldest first."""
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)
        ).order_by("pk")
    )


def revoke_selected(client: Browser, ids: list[str], **extra: str) -> Any:
    """Tick these sessions on the Sessions page and revoke them with its action menu, as
    its form does (the same form on both engines)."""
    data = {"action": "revoke_selected", "index": "0", ACTION_CHECKBOX: ids, **extra}
    return client.post(SESSIONS, data)


def offers_revoking(page: str) -> bool:
    """Whether the Sessions page offers its action menu's "Revoke selected sessions" and
    the checkboxes to tick sessions with."""
    return bool(elements(page, "option", value="revoke_selected")) and bool(
        elements(page, "input", type="checkbox", name=ACTION_CHECKBOX)
    )


# -- the Sessions page: what it lists ------------------------------------------------------


@pytest.mark.parametrize("kind", [SUPERUSER, PERMITTED, VIEWER])
def test_the_sessions_page_lists_sessions(people: People, admin_of: Any, kind: str) -> None:
    client, _ = admin_of(kind)

    response = client.get(SESSIONS)

    assert response.status_code == 200
    page = response.content.decode()
    for heading in ("User", "IP address", "Browser", "Operating system", "Device"):
        assert heading.lower() in page.lower()
    for heading in ("Created", "Last activity", "Expires"):
        assert heading.lower() in page.lower()
    for shown in ("alice", "bob", "198.51.100.7", "203.0.113.9", "192.0.2.50"):
        assert shown in page
    for shown in ("Chrome", "Windows", "Mobile Safari", "iOS", "iPhone", "Firefox", "Linux"):
        assert shown in page
    assert "2030" in page  # the dates
    if kind != VIEWER:  # who may revoke ticks sessions, named by their public ids
        for client_ in (people.laptop, people.phone, people.bobs):
            assert session_id(client_) in page


@pytest.mark.parametrize(
    ("query", "alices", "bobs"),
    [
        ("alice", True, False),
        ("ALI", True, False),
        ("asmith", True, False),  # email
        ("home.example", False, True),  # email
        ("bob", False, True),
        ("nobody", False, False),
    ],
)
def test_search_by_username_or_email(
    people: People, admin_of: Any, query: str, alices: bool, bobs: bool
) -> None:
    client, _ = admin_of(SUPERUSER)

    page = client.get(SESSIONS, {"q": query}).content.decode()

    assert (session_id(people.laptop) in page) is alices
    assert (session_id(people.phone) in page) is alices
    assert (session_id(people.bobs) in page) is bobs


@pytest.fixture
def idle_for_hours(settings: SettingsWrapper) -> None:
    """Sessions that stay alive, idle, for hours (set before they are made)."""
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = 4 * 3600


@pytest.mark.parametrize(
    ("filters", "shown"),
    [
        ({"browser": "Firefox"}, {"bobs"}),
        ({"os": "iOS"}, {"phone"}),
        ({"device": "iPhone"}, {"phone"}),
        ({"browser": "Chrome", "os": "Windows"}, {"laptop"}),
        ({"browser": "Firefox", "os": "iOS"}, set()),
        ({"active": "hour"}, {"phone", "bobs"}),
        ({"active": "day"}, {"laptop", "phone", "bobs"}),
    ],
)
@pytest.mark.usefixtures("idle_for_hours")
def test_the_sessions_page_filters(
    people: People,
    admin_of: Any,
    frozen: time_machine.TimeMachineFixture,
    filters: dict[str, str],
    shown: set[str],
) -> None:
    # The laptop was last active two hours ago; the phone and Bob's computer just now.
    frozen.shift(7200)
    people.phone.get("/account/sessions/")
    people.bobs.get("/account/sessions/")
    client, _ = admin_of(SUPERUSER)

    response = client.get(SESSIONS, filters)

    assert response.status_code == 200
    page = response.content.decode()
    for name in ("laptop", "phone", "bobs"):
        assert (session_id(getattr(people, name)) in page) is (name in shown), name
    # The sidebar offers the filters, the one applied marked as selected.
    titles = {item["data-filter-title"] for item in elements(page, "details")}
    assert titles >= {"browser", "operating system", "device", "last activity"}
    assert "Clear all filters" in page


def test_the_filters_offer_the_values_stored(people: People, admin_of: Any) -> None:
    client, _ = admin_of(SUPERUSER)

    page = client.get(SESSIONS).content.decode()

    links = {link["href"] for link in elements(page, "a")}
    for query in ("?browser=Firefox", "?os=iOS", "?device=iPhone", "?active=hour"):
        assert query in links, query


def test_the_sessions_page_links_each_user_and_counts_the_sessions(
    people: People, admin_of: Any, engine: str
) -> None:
    client, _ = admin_of(SUPERUSER)

    page = client.get(SESSIONS).content.decode()

    assert {link["href"] for link in elements(page, "a")} >= {
        reverse("admin:auth_user_change", args=[user.pk]) for user in (people.alice, people.bob)
    }
    # Alice twice, Bob once, the admin once: the db engine's changelist counts its rows,
    # the Redis page the sessions of its per-user indexes.
    assert ("4 sessions" if engine == "db" else "4 signed-in sessions in all") in page


def test_the_sessions_page_says_unknown_device_and_how_the_session_began(
    people: People, admin_of: Any, store_class: type[SecureSessionBase], make_user: MakeUser
) -> None:
    importer = make_user(username="imported-user")
    store_class.import_session(
        OTHER_ENGINE_KEY,
        {USER_ID_KEY: str(importer.pk)},
        int(LOGIN.timestamp()) + 3600,
    )
    scripted = make_user(username="scripted-user")
    Browser().force_login(scripted)
    client, _ = admin_of(SUPERUSER)

    page = client.get(SESSIONS).content.decode()

    assert page.count("Unknown device (imported)") == 1
    assert page.count("Unknown device (signed in by a script)") == 1
    assert "Chrome · Windows" in page


@pytest.mark.parametrize("engine", ["db"], indirect=True)  # Redis: no row to show
def test_a_sessions_detail_page_shows_neither_key_nor_data(
    people: People, admin_of: Any, settings: SettingsWrapper
) -> None:
    client, _ = admin_of(SUPERUSER)
    settings.CSRF_USE_SESSIONS = True  # the CSRF secret is then in the session's data
    people.laptop.get("/account/sessions/")  # a page with a form: the secret is stored
    csrf_secret = SessionStore(session_key(people.laptop))["_csrftoken"]
    url = reverse(
        "admin:django_secure_sessions_securesession_change", args=[session_id(people.laptop)]
    )

    response = client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert "198.51.100.7" in page
    assert "Chrome" in page
    assert "_auth_user_hash" not in page
    assert people.alice.get_session_auth_hash() not in page
    assert csrf_secret not in page


# -- the Sessions page: revoking ------------------------------------------------------------


@pytest.mark.parametrize("kind", REVOKERS)
def test_revoke_selected(people: People, admin_of: Any, engine: str, kind: str) -> None:
    client, admin = admin_of(kind)
    page = client.get(SESSIONS).content.decode()
    assert offers_revoking(page)
    phone_id, bobs_id = session_id(people.phone), session_id(people.bobs)

    with capture(session_revoked) as revoked:
        response = revoke_selected(client, [phone_id, bobs_id])

    assert redirect_target(response)[0] == SESSIONS
    after = client.get(SESSIONS).content.decode()
    assert "Revoked 2 sessions." in after
    assert phone_id not in after
    assert bobs_id not in after
    assert not is_signed_in(people.phone)
    assert not is_signed_in(people.bobs)
    assert is_signed_in(people.laptop)
    assert {(s["session_id"], s["reason"]) for s in revoked} == {
        (phone_id, "admin"),
        (bobs_id, "admin"),
    }
    # Written to the admin log of each session's user: who did it, and which session.
    [alices_entry] = log_entries(people.alice)
    [bobs_entry] = log_entries(people.bob)
    for entry, revoked_id in ((alices_entry, phone_id), (bobs_entry, bobs_id)):
        assert entry.user_id == admin.pk
        assert entry.action_flag == CHANGE
        assert revoked_id in entry.get_change_message()


@pytest.mark.parametrize("kind", NOT_REVOKERS)
def test_who_may_not_revoke_cannot(people: People, admin_of: Any, engine: str, kind: str) -> None:
    client, _ = admin_of(kind)
    page = client.get(SESSIONS)
    phone_id = session_id(people.phone)

    if kind == PLAIN:
        assert page.status_code == 403
    else:
        assert page.status_code == 200
        assert not offers_revoking(page.content.decode())

    with capture(session_revoked) as revoked:
        response = revoke_selected(client, [phone_id])

    if kind == VIEWER and engine == "db":
        # For a viewer the changelist has no action to run: it shows the page again.
        assert response.status_code == 200
    else:
        assert response.status_code == 403
    assert is_signed_in(people.phone)
    assert revoked == []
    assert log_entries(people.alice) == []


def test_anonymous_visitors_go_to_the_admin_login(people: People, browsers: Browsers) -> None:
    visitor = browsers.open()

    get = visitor.get(SESSIONS)
    post = visitor.post(SESSIONS, {ACTION_CHECKBOX: [session_id(people.phone)]})

    assert redirect_target(get)[0] == redirect_target(post)[0] == ADMIN_LOGIN
    assert is_signed_in(people.phone)


def test_a_signed_in_non_staff_user_goes_to_the_admin_login(people: People) -> None:
    assert redirect_target(people.laptop.get(SESSIONS))[0] == ADMIN_LOGIN
    assert redirect_target(people.laptop.get(USERS))[0] == ADMIN_LOGIN


def test_the_sessions_page_enforces_csrf(people: People, admin_of: Any, engine: str) -> None:
    client, _ = admin_of(SUPERUSER, enforce_csrf_checks=True)
    phone_id = session_id(people.phone)

    assert revoke_selected(client, [phone_id]).status_code == 403
    assert is_signed_in(people.phone)

    token = csrf_token(client, SESSIONS)
    response = revoke_selected(client, [phone_id], csrfmiddlewaretoken=token)

    assert redirect_target(response)[0] == SESSIONS
    assert not is_signed_in(people.phone)


def test_revoking_a_session_that_already_ended(people: People, admin_of: Any, engine: str) -> None:
    client, _ = admin_of(SUPERUSER)
    phone_id = session_id(people.phone)
    people.phone.post("/account/sessions/revoke-others/")  # ends the laptop's

    with capture(session_revoked) as revoked:
        response = revoke_selected(client, [session_id(people.laptop), phone_id])

    assert response.status_code == 302
    assert [s["session_id"] for s in revoked] == [phone_id]
    assert len(log_entries(people.alice)) == 1


def test_forged_ids_revoke_nothing(people: People, admin_of: Any, engine: str) -> None:
    client, _ = admin_of(SUPERUSER)

    with capture(session_revoked) as revoked:
        revoke_selected(client, ["f" * 40, "../../etc", "*"])

    assert revoked == []
    assert is_signed_in(people.phone)


# -- the user's change page --------------------------------------------------------------------


def user_change_url(user: User) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def revoke_one_url(user: User, public_id: str) -> str:
    return reverse("admin:auth_user_revoke_session", args=[user.pk, public_id])


def revoke_all_url(user: User) -> str:
    return reverse("admin:auth_user_revoke_all_sessions", args=[user.pk])


@pytest.mark.parametrize("kind", [SUPERUSER, PERMITTED])
def test_the_user_change_page_shows_the_users_sessions(
    people: People, admin_of: Any, kind: str
) -> None:
    client, _ = admin_of(kind)

    response = client.get(user_change_url(people.alice))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Active sessions" in page
    for shown in ("Chrome", "Mobile Safari", "198.51.100.7", "203.0.113.9"):
        assert shown in page
    assert "Firefox" not in page  # Bob's
    buttons = elements(page, "button", type="submit")
    actions = {button.get("formaction") for button in buttons}
    assert revoke_one_url(people.alice, session_id(people.laptop)) in actions
    assert revoke_one_url(people.alice, session_id(people.phone)) in actions
    assert revoke_all_url(people.alice) in actions
    assert "Sign out everywhere" in page
    # The buttons post the change form, which carries the CSRF token.
    assert elements(page, "input", name="csrfmiddlewaretoken")


def test_a_user_without_sessions(people: People, admin_of: Any, make_user: MakeUser) -> None:
    client, _ = admin_of(SUPERUSER)
    nobody = make_user()

    page = client.get(user_change_url(nobody)).content.decode()

    assert "No active sessions." in page
    assert revoke_all_url(nobody) not in page
    assert client.get(reverse("admin:auth_user_add")).status_code == 200  # no sessions there


@pytest.mark.parametrize("kind", REVOKERS)
def test_revoke_one_from_the_user_change_page(people: People, admin_of: Any, kind: str) -> None:
    client, admin = admin_of(kind)
    phone_id = session_id(people.phone)

    with capture(session_revoked) as revoked:
        response = client.post(revoke_one_url(people.alice, phone_id))

    assert response["Location"] == user_change_url(people.alice)
    after = client.get(user_change_url(people.alice)).content.decode()
    assert "The session is revoked." in after
    assert "Mobile Safari" not in after
    assert not is_signed_in(people.phone)
    assert is_signed_in(people.laptop)
    assert [(s["session_id"], s["reason"]) for s in revoked] == [(phone_id, "admin")]
    [entry] = log_entries(people.alice)
    assert entry.user_id == admin.pk
    assert phone_id in entry.get_change_message()


@pytest.mark.parametrize("kind", REVOKERS)
def test_sign_out_everywhere_from_the_user_change_page(
    people: People, admin_of: Any, kind: str
) -> None:
    client, admin = admin_of(kind)
    alices = {session_id(people.laptop), session_id(people.phone)}

    with capture(session_revoked) as revoked:
        response = client.post(revoke_all_url(people.alice))

    assert response["Location"] == user_change_url(people.alice)
    after = client.get(user_change_url(people.alice)).content.decode()
    assert "Revoked 2 sessions." in after
    assert "No active sessions." in after
    assert not is_signed_in(people.laptop)
    assert not is_signed_in(people.phone)
    assert is_signed_in(people.bobs)
    assert {s["session_id"] for s in revoked} == alices
    assert {s["reason"] for s in revoked} == {"admin"}
    [entry] = log_entries(people.alice)
    assert entry.user_id == admin.pk
    assert "Signed out everywhere" in entry.get_change_message()


def test_the_user_page_revokes_only_that_users_sessions(people: People, admin_of: Any) -> None:
    client, _ = admin_of(SUPERUSER)

    # Bob's session id on Alice's page: the id is checked against Alice's sessions.
    client.post(revoke_one_url(people.alice, session_id(people.bobs)))

    assert is_signed_in(people.bobs)
    assert log_entries(people.bob) == log_entries(people.alice) == []


@pytest.mark.parametrize("kind", NOT_REVOKERS)
def test_the_user_page_buttons_need_the_permission(
    people: People, admin_of: Any, kind: str
) -> None:
    client, _ = admin_of(kind)

    with capture(session_revoked) as revoked:
        one = client.post(revoke_one_url(people.alice, session_id(people.phone)))
        everywhere = client.post(revoke_all_url(people.alice))

    assert one.status_code == everywhere.status_code == 403
    assert is_signed_in(people.phone)
    assert revoked == []


def test_the_user_page_buttons_are_post_only_with_csrf(people: People, admin_of: Any) -> None:
    client, _ = admin_of(SUPERUSER, enforce_csrf_checks=True)
    phone_id = session_id(people.phone)

    assert client.get(revoke_one_url(people.alice, phone_id)).status_code == 405
    assert client.get(revoke_all_url(people.alice)).status_code == 405
    assert client.post(revoke_one_url(people.alice, phone_id)).status_code == 403
    assert client.post(revoke_all_url(people.alice)).status_code == 403
    assert is_signed_in(people.phone)

    token = csrf_token(client, user_change_url(people.alice))
    response = client.post(revoke_one_url(people.alice, phone_id), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert not is_signed_in(people.phone)


def test_an_unknown_user_is_refused(people: People, admin_of: Any) -> None:
    client, _ = admin_of(SUPERUSER)

    assert client.post(revoke_all_url(User(pk=10**6))).status_code == 403


# -- the sign_out_everywhere action on the user changelist ---------------------------------------


def sign_out_everywhere(client: Browser, *users: User, **extra: str) -> Any:
    data = {
        "action": "sign_out_everywhere",
        "index": "0",
        ACTION_CHECKBOX: [str(user.pk) for user in users],
        **extra,
    }
    return client.post(USERS, data)


@pytest.mark.parametrize("kind", REVOKERS)
def test_the_sign_out_everywhere_action(people: People, admin_of: Any, kind: str) -> None:
    client, admin = admin_of(kind)
    changelist = client.get(USERS).content.decode()
    [option] = elements(changelist, "option", value="sign_out_everywhere")
    assert option["value"] == "sign_out_everywhere"
    assert "Sign out everywhere</option>" in changelist

    with capture(session_revoked) as revoked:
        response = sign_out_everywhere(client, people.alice, people.bob)

    assert redirect_target(response)[0] == USERS
    assert "Revoked 3 sessions." in client.get(USERS).content.decode()
    for browser_ in (people.laptop, people.phone, people.bobs):
        assert not is_signed_in(browser_)
    assert len(revoked) == 3
    assert {s["reason"] for s in revoked} == {"admin"}
    assert [entry.user_id for entry in log_entries(people.alice)] == [admin.pk]
    assert [entry.user_id for entry in log_entries(people.bob)] == [admin.pk]
    assert is_signed_in(client)  # the admin's own session was not selected


@pytest.mark.parametrize("kind", NOT_REVOKERS)
def test_the_action_is_only_for_who_may_revoke(people: People, admin_of: Any, kind: str) -> None:
    client, _ = admin_of(kind)
    changelist = client.get(USERS)
    if kind == PLAIN:
        assert changelist.status_code == 403
    else:
        assert not elements(changelist.content, "option", value="sign_out_everywhere")

    with capture(session_revoked) as revoked:
        sign_out_everywhere(client, people.alice)

    assert is_signed_in(people.laptop)
    assert revoked == []


def test_the_action_enforces_csrf(people: People, admin_of: Any) -> None:
    client, _ = admin_of(SUPERUSER, enforce_csrf_checks=True)

    assert sign_out_everywhere(client, people.alice).status_code == 403
    assert is_signed_in(people.laptop)

    token = csrf_token(client, USERS)
    sign_out_everywhere(client, people.alice, csrfmiddlewaretoken=token)

    assert not is_signed_in(people.laptop)


# -- installation -------------------------------------------------------------------------------


def test_the_user_admin_has_the_mixin_and_keeps_its_own_features() -> None:
    from django.contrib import admin
    from django.contrib.auth.admin import UserAdmin

    bases = type(admin.site.get_model_admin(User)).__mro__

    assert SessionsUserAdminMixin in bases
    assert UserAdmin in bases  # the admin that was registered, with the mixin added


def test_install_user_admin_is_idempotent() -> None:
    from django.contrib import admin

    from django_secure_sessions.admin import install_user_admin

    before = admin.site.get_model_admin(User)
    install_user_admin()

    assert admin.site.get_model_admin(User) is before


# -- async -------------------------------------------------------------------------------------


@async_test
async def test_the_sessions_page_through_the_async_client(
    async_client: AsyncClient, engine: str, frozen: Any
) -> None:
    admin = await User.objects.acreate(username="root", is_staff=True, is_superuser=True)
    alice = await User.objects.acreate(username="alice")
    alices = AsyncClient()
    await alices.aforce_login(alice)
    alice_id = session_id(alices)
    await async_client.aforce_login(admin)

    page = await async_client.get(SESSIONS)
    assert page.status_code == 200
    assert alice_id in page.content.decode()

    with capture(session_revoked) as revoked:
        data = {"action": "revoke_selected", "index": "0", ACTION_CHECKBOX: [alice_id]}
        response = await async_client.post(SESSIONS, data)

    assert response.status_code == 302
    assert [(s["session_id"], s["reason"]) for s in revoked] == [(alice_id, "admin")]
    assert await LogEntry.objects.filter(object_id=str(alice.pk), user=admin).aexists()


# -- a custom user model --------------------------------------------------------------------------


def test_with_a_custom_user_model() -> None:
    """The admin tests of tests/custom_user/admin_checks.py, run by a pytest of their
    own: a user model (email as USERNAME_FIELD) is fixed for the life of a process."""
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--ds=tests.settings_custom_user",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/custom_user/admin_checks.py",
        ],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_fieldsets_that_place_the_sessions_themselves_are_kept() -> None:
    from django.contrib import admin
    from django.contrib.auth.admin import UserAdmin
    from django.test import RequestFactory

    class PlacedUserAdmin(SessionsUserAdminMixin, UserAdmin):  # type: ignore[type-arg]
        fieldsets = ((None, {"fields": ("username", "secure_sessions")}),)

    request = RequestFactory().get("/")
    placed = PlacedUserAdmin(User, admin.AdminSite())

    assert placed.get_fieldsets(request, User(username="x")) == [
        (None, {"fields": ("username", "secure_sessions")})
    ]
    assert "secure_sessions" not in str(placed.get_fieldsets(request, None))


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_the_redis_page_lists_a_page_at_a_time(
    admin_of: Any, store_class: type[SecureSessionBase], make_user: MakeUser
) -> None:
    client, admin = admin_of(SUPERUSER)
    listed = set()
    for _ in range(2 * PER_PAGE + 10):
        session = store_class()
        session[USER_ID_KEY] = str(make_user().pk)
        session.save()
        listed.add(session.session_id)
    listed |= {info.id for info in list_user_sessions(admin)}

    seen: list[str] = []
    url: str | None = SESSIONS
    pages = 0
    while url is not None:
        page = client.get(url).content
        pages += 1
        seen += [box["value"] or "" for box in elements(page, "input", name=ACTION_CHECKBOX)]
        cursors = [
            link["href"] or ""
            for link in elements(page, "a")
            if (link.get("href") or "").startswith("?cursor=")
        ]
        url = SESSIONS + cursors[0] if cursors else None

    assert pages > 1
    assert set(seen) == listed


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
def test_a_filtered_redis_page_walks_on_until_it_finds_matches(
    people: People, admin_of: Any, store_class: type[SecureSessionBase], make_user: MakeUser
) -> None:
    # Sessions of no browser at all, more than a page of them, beside Bob's Firefox.
    for _ in range(3 * PER_PAGE):
        session = store_class()
        session[USER_ID_KEY] = str(make_user().pk)
        session.save()
    client, _ = admin_of(SUPERUSER)

    page = client.get(SESSIONS, {"browser": "Firefox"}).content.decode()

    ticked = [box["value"] for box in elements(page, "input", name=ACTION_CHECKBOX)]
    assert ticked == [session_id(people.bobs)]
