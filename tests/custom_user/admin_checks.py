"""The admin and the user's own pages with a custom user model (tests/custom_user): email
as ``USERNAME_FIELD``, a UUID primary key, a plain ``ModelAdmin``.

Not collected by the main suite (the name doesn't match ``test_*.py``): the user model
is fixed for the life of a process, so tests/test_admin.py runs this file in a pytest of
its own, with ``--ds=tests.settings_custom_user``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import time_machine
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from django_secure_sessions.admin import SessionsUserAdminMixin
from django_secure_sessions.signals import session_revoked
from tests.browsing import (
    CHROME_ON_WINDOWS,
    FIREFOX_ON_LINUX,
    Browser,
    Browsers,
    elements,
    redirect_target,
    session_id,
    sign_in,
)
from tests.custom_user.admin import EmailUserAdmin
from tests.custom_user.models import EmailUser
from tests.factories import PASSWORD
from tests.sessions import capture

LOGIN = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
SESSIONS = "/admin/django_secure_sessions/securesession/"
USERS = "/admin/custom_user/emailuser/"

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture(autouse=True)
def frozen(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(LOGIN, tick=False)


@pytest.fixture
def alice() -> EmailUser:
    return EmailUser.objects.create_user("alice@corp.example", PASSWORD, full_name="Alice")


@pytest.fixture
def laptop(browsers: Browsers, alice: EmailUser) -> Browser:
    client = browsers.open(CHROME_ON_WINDOWS, "198.51.100.7")
    sign_in(client, alice)
    return client


@pytest.fixture
def root(browsers: Browsers) -> Browser:
    superuser = EmailUser.objects.create_superuser("root@corp.example", PASSWORD)
    client = browsers.open(FIREFOX_ON_LINUX, "10.0.0.2")
    sign_in(client, superuser)
    return client


def is_signed_in(client: Browser) -> bool:
    return client.get("/account/sessions/").status_code == 200


def log_messages(user: EmailUser) -> list[str]:
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(EmailUser), object_id=str(user.pk)
    )
    return [entry.get_change_message() for entry in entries]


def test_install_user_admin_wrapped_the_projects_user_admin() -> None:
    bases = type(admin.site.get_model_admin(EmailUser)).__mro__

    assert SessionsUserAdminMixin in bases
    assert EmailUserAdmin in bases


def test_the_sessions_page_lists_and_searches_by_email(
    root: Browser, laptop: Browser, alice: EmailUser
) -> None:
    listed = root.get(SESSIONS).content.decode()
    found = root.get(SESSIONS, {"q": "alice@corp"}).content.decode()
    not_found = root.get(SESSIONS, {"q": "nobody@"}).content.decode()

    assert "alice@corp.example" in listed
    assert session_id(laptop) in listed
    assert session_id(laptop) in found
    assert session_id(laptop) not in not_found


def test_revoke_selected_logs_on_the_custom_user(
    root: Browser, laptop: Browser, alice: EmailUser
) -> None:
    laptop_id = session_id(laptop)
    data = {"action": "revoke_selected", "index": "0", "_selected_action": [laptop_id]}

    with capture(session_revoked) as revoked:
        response = root.post(SESSIONS, data)

    assert redirect_target(response)[0] == SESSIONS
    assert not is_signed_in(laptop)
    assert [(s["session_id"], s["user_id"], s["reason"]) for s in revoked] == [
        (laptop_id, str(alice.pk), "admin")
    ]
    assert [laptop_id in message for message in log_messages(alice)] == [True]


def test_the_user_change_page(root: Browser, laptop: Browser, alice: EmailUser) -> None:
    change = reverse("admin:custom_user_emailuser_change", args=[alice.pk])
    page = root.get(change).content.decode()

    # Once, though this admin has no fieldsets of its own.
    assert page.count("Active sessions") == 1
    revoke_one = reverse(
        "admin:custom_user_emailuser_revoke_session", args=[alice.pk, session_id(laptop)]
    )
    revoke_all = reverse("admin:custom_user_emailuser_revoke_all_sessions", args=[alice.pk])
    actions = {button.get("formaction") for button in elements(page, "button")}
    assert {revoke_one, revoke_all} <= actions

    assert root.post(revoke_all)["Location"] == change
    assert not is_signed_in(laptop)
    assert any("Signed out everywhere" in message for message in log_messages(alice))


def test_the_sign_out_everywhere_action(root: Browser, laptop: Browser, alice: EmailUser) -> None:
    assert elements(root.get(USERS).content, "option", value="sign_out_everywhere")

    root.post(
        USERS,
        {"action": "sign_out_everywhere", "index": "0", "_selected_action": [str(alice.pk)]},
    )

    assert not is_signed_in(laptop)


def test_the_users_own_pages(laptop: Browser, alice: EmailUser) -> None:
    sessions = laptop.get("/account/sessions/", headers={"Accept": "application/json"}).json()

    assert [s["id"] for s in sessions["sessions"]] == [session_id(laptop)]
    assert laptop.post("/account/sessions/reauth/", {"password": PASSWORD}).status_code == 302
