"""The user's own "Your sessions" pages (SPEC §7): ``secure_sessions:list``, ``revoke``
and ``revoke_others``, on both engines.

Alice is signed in on a laptop and a phone, Bob on his own computer. Every page any of
them gets is checked for the session keys any of them held (the ``browsers`` fixture).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import AsyncClient
from django.urls import reverse

from django_secure_sessions import list_user_sessions
from django_secure_sessions.backends.base import USER_ID_KEY, SecureSessionBase
from django_secure_sessions.signals import session_revoked
from tests import factories
from tests.browsing import (
    CHROME_ON_WINDOWS,
    FIREFOX_ON_LINUX,
    JSON,
    SAFARI_ON_IPHONE,
    Browser,
    Browsers,
    assert_no_key_in,
    cookie_deleted,
    csrf_token,
    elements,
    has_session_cookie,
    redirect_target,
    session_id,
    session_key,
    sign_in,
)
from tests.marks import async_test
from tests.sessions import OTHER_ENGINE_KEY, capture

StoreClass = type[SecureSessionBase]
MakeUser = Callable[..., User]

LOGIN = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
LIST = "/account/sessions/"
REVOKE_OTHERS = "/account/sessions/revoke-others/"
REAUTH = "/account/sessions/reauth/"
LOGIN_URL = "/accounts/login/"
WINDOW = 300  # SECURE_SESSIONS_REAUTH_MAX_AGE's default

pytestmark = pytest.mark.usefixtures("engine")


def revoke_url(public_id: str) -> str:
    return reverse("secure_sessions:revoke", args=[public_id])


def signed_in_page(client: Browser) -> bool:
    """Whether the browser is still signed in (the list page answers, not the login)."""
    return client.get(LIST).status_code == 200


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
    browsers: Browsers, frozen: time_machine.TimeMachineFixture, make_user: MakeUser
) -> People:
    alice = make_user(username="alice")
    bob = make_user(username="bob")
    laptop = browsers.open(CHROME_ON_WINDOWS, "198.51.100.7")
    phone = browsers.open(SAFARI_ON_IPHONE, "203.0.113.9")
    bobs = browsers.open(FIREFOX_ON_LINUX, "192.0.2.50")
    sign_in(laptop, alice)
    sign_in(phone, alice)
    sign_in(bobs, bob)
    return People(alice, laptop, phone, bob, bobs)


# -- the list -------------------------------------------------------------------------------


def test_the_list_shows_the_users_own_sessions_with_the_current_one_marked(
    people: People,
) -> None:
    response = people.laptop.get(LIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("This device") == 1
    assert "Chrome · Windows" in page
    assert "Mobile Safari · iOS · iPhone" in page
    assert "198.51.100.7" in page
    assert "203.0.113.9" in page
    # The current session comes first, and the others can be signed out from here.
    assert page.index("Chrome · Windows") < page.index("This device") < page.index("Mobile Safari")
    [form] = [
        form
        for form in elements(page, "form", method="post")
        if form.get("action") == revoke_url(session_id(people.phone))
    ]
    assert form
    assert not elements(page, "form", action=revoke_url(session_id(people.laptop)))
    assert elements(page, "form", action=REVOKE_OTHERS)
    # Nothing of Bob's.
    assert "Firefox" not in page
    assert "192.0.2.50" not in page
    assert session_id(people.bobs) not in page


def test_the_list_says_just_now_then_how_long_ago_a_session_was_active(
    people: People, frozen: time_machine.TimeMachineFixture
) -> None:
    page = people.laptop.get(LIST).content.decode()
    assert page.count("Active just now") == 2  # both of Alice's sessions signed in at LOGIN
    assert "0 minutes" not in page

    frozen.shift(5 * 60)
    page = people.laptop.get(LIST).content.decode()

    assert page.count("Active 5\xa0minutes ago") == 2
    assert "Active just now" not in page


def devices(page: str) -> list[str]:
    """The device line of each session on the list page."""
    return re.findall(r'<div class="secure-sessions-device">(.*?)</div>', page)


def test_a_session_without_client_details_is_an_unknown_device_and_says_how_it_began(
    people: People, browsers: Browsers, store_class: StoreClass
) -> None:
    script = browsers.open()
    script.force_login(people.alice)  # outside a request: nothing to bind it to yet
    alice_id = str(people.alice.pk)
    store_class.import_session(
        OTHER_ENGINE_KEY, {USER_ID_KEY: alice_id}, int(LOGIN.timestamp()) + 3600
    )

    page = people.laptop.get(LIST).content.decode()

    assert sorted(devices(page)) == [
        "Chrome · Windows",
        "Mobile Safari · iOS · iPhone",
        "Unknown device (imported)",
        "Unknown device (signed in by a script)",
    ]
    assert " · </div>" not in page
    assert ">·" not in page


def test_two_sessions_of_the_same_browser_are_told_apart(
    people: People, browsers: Browsers, frozen: time_machine.TimeMachineFixture
) -> None:
    frozen.shift(120)
    office = browsers.open(CHROME_ON_WINDOWS, "192.0.2.77")
    sign_in(office, people.alice)

    page = people.laptop.get(LIST).content.decode()

    assert devices(page).count("Chrome · Windows") == 2
    # Each is named apart, where it is shown and by the button that signs it out.
    assert "From 198.51.100.7" in page
    assert "From 192.0.2.77" in page
    labels = [button.get("aria-label") for button in elements(page, "button", type="submit")]
    # Django's default TIME_ZONE, America/Chicago: 9:02 UTC is 3:02 there.
    assert "Sign out Chrome · Windows, signed in Jan. 7, 2030, 3:02 a.m." in labels
    confirm = people.laptop.get(revoke_url(session_id(office))).content.decode()
    assert "192.0.2.77" in confirm
    assert "Signed in Jan. 7, 2030, 3:02 a.m." in confirm


@pytest.mark.parametrize("path", [LIST, REVOKE_OTHERS])
def test_the_pages_are_styled_by_a_static_file_and_link_back_to_the_site(
    people: People, path: str
) -> None:
    page = people.laptop.get(path).content.decode()

    # Nothing inline that a Content Security Policy of style-src 'self' would block
    # (tests/e2e/test_csp.py shows the page styled under one, in Chromium).
    assert "<style" not in page
    assert " style=" not in page
    [stylesheet] = elements(page, "link", rel="stylesheet")
    assert stylesheet["href"] == "/static/django_secure_sessions/secure_sessions.css"
    assert finders.find("django_secure_sessions/secure_sessions.css")
    [back] = elements(page, "a", **{"class": "secure-sessions-back"})
    assert back["href"] == "/"


def test_the_phone_sees_itself_as_this_device(people: People) -> None:
    page = people.phone.get(LIST).content.decode()

    assert page.index("Mobile Safari") < page.index("This device") < page.index("Chrome")
    assert elements(page, "form", action=revoke_url(session_id(people.laptop)))


def test_the_list_answers_json(people: People) -> None:
    response = people.laptop.get(LIST, headers=JSON)

    assert response.status_code == 200
    sessions = response.json()["sessions"]
    assert [(s["id"], s["current"]) for s in sessions] == [
        (session_id(people.laptop), True),
        (session_id(people.phone), False),
    ]
    laptop = sessions[0]
    assert (laptop["browser"], laptop["os"], laptop["device"], laptop["ip"]) == (
        "Chrome",
        "Windows",
        "Other",
        "198.51.100.7",
    )
    for field in ("created", "last_activity", "expires"):
        assert datetime.fromisoformat(laptop[field]).tzinfo is not None
    assert datetime.fromisoformat(laptop["created"]) == LOGIN


def test_a_user_without_other_sessions_has_no_sign_out_everywhere_else(
    people: People,
) -> None:
    page = people.bobs.get(LIST).content.decode()

    assert page.count("This device") == 1
    assert not elements(page, "form", action=REVOKE_OTHERS)


def test_anonymous_visitors_go_to_log_in(browsers: Browsers, make_user: MakeUser) -> None:
    visitor = browsers.open()
    for path in (LIST, REVOKE_OTHERS, revoke_url("0" * 40)):
        assert redirect_target(visitor.get(path)) == (LOGIN_URL, {"next": [path]})
        assert redirect_target(visitor.post(path))[0] == LOGIN_URL
    sign_in(visitor, make_user())  # so that a key is checked for, too


# -- revoking one session ---------------------------------------------------------------------


def test_get_asks_for_confirmation_and_revokes_nothing(people: People) -> None:
    phone_id = session_id(people.phone)

    response = people.laptop.get(revoke_url(phone_id))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Sign out this session?" in page
    assert "Mobile Safari" in page
    [form] = elements(page, "form", method="post")
    assert form.get("action") is None  # posts back to itself
    assert elements(page, "input", name="csrfmiddlewaretoken")
    assert signed_in_page(people.phone)


def test_revoking_another_own_session(people: People) -> None:
    phone_id = session_id(people.phone)
    keys = session_key(people.laptop), session_key(people.phone)

    with capture(session_revoked) as revoked:
        response = people.laptop.post(revoke_url(phone_id))

    assert redirect_target(response)[0] == LIST
    assert "That device is signed out." in people.laptop.get(LIST).content.decode()
    assert redirect_target(people.phone.get(LIST))[0] == LOGIN_URL
    assert signed_in_page(people.laptop)
    assert signed_in_page(people.bobs)
    [signal] = revoked
    assert (signal["reason"], signal["session_id"], signal["user_id"]) == (
        "user",
        phone_id,
        str(people.alice.pk),
    )
    assert signal["request"] is not None
    assert_no_key_in(revoked, *keys)


def test_revoking_answers_json(people: People) -> None:
    phone_id = session_id(people.phone)

    response = people.laptop.post(revoke_url(phone_id), headers=JSON)

    assert response.status_code == 200
    assert response.json() == {"revoked": [phone_id]}
    assert not signed_in_page(people.phone)


def test_revoking_the_current_session_signs_this_browser_out(
    people: People, store_class: StoreClass
) -> None:
    key, laptop_id = session_key(people.laptop), session_id(people.laptop)

    with capture(session_revoked) as revoked:
        response = people.laptop.post(revoke_url(laptop_id))

    assert redirect_target(response)[0] == LOGIN_URL
    assert cookie_deleted(response)
    assert not has_session_cookie(people.laptop)
    assert not store_class().exists(key)
    assert not signed_in_page(people.laptop)
    assert signed_in_page(people.phone)
    assert [(s["reason"], s["session_id"]) for s in revoked] == [("user", laptop_id)]


def test_revoking_the_current_session_answers_json(people: People) -> None:
    laptop_id = session_id(people.laptop)

    response = people.laptop.post(revoke_url(laptop_id), headers=JSON)

    assert response.json() == {"revoked": [laptop_id]}
    assert cookie_deleted(response)
    assert not signed_in_page(people.laptop)


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_users_session_is_a_404_and_stays(people: People, method: str) -> None:
    bobs_id = session_id(people.bobs)

    with capture(session_revoked) as revoked:
        page = getattr(people.laptop, method)(revoke_url(bobs_id))
        api = getattr(people.laptop, method)(revoke_url(bobs_id), headers=JSON)

    assert page.status_code == api.status_code == 404
    assert signed_in_page(people.bobs)
    assert revoked == []
    assert [info.id for info in list_user_sessions(people.bob)] == [bobs_id]


@pytest.mark.parametrize(
    "made_up",
    ["f" * 40, "not-an-id", "0" * 39],
    ids=["unknown", "malformed", "short"],
)
def test_an_unknown_session_is_a_404(people: People, made_up: str) -> None:
    assert people.laptop.post(revoke_url(made_up)).status_code == 404


def test_a_session_key_is_not_an_id(people: People) -> None:
    # Even a key the browser holds (its own) names no session on these pages.
    response = people.laptop.post(revoke_url(session_key(people.phone)))

    assert response.status_code == 404
    assert signed_in_page(people.phone)


# -- revoking the others -------------------------------------------------------------------------


def test_revoke_others_asks_for_confirmation(people: People, browsers: Browsers) -> None:
    tablet = browsers.open(SAFARI_ON_IPHONE, "203.0.113.10")
    sign_in(tablet, people.alice)

    response = people.laptop.get(REVOKE_OTHERS)

    assert response.status_code == 200
    assert "2 other sessions will be signed out." in response.content.decode()
    assert signed_in_page(people.phone)
    assert signed_in_page(tablet)


def test_revoke_others_keeps_the_current_session(people: People, browsers: Browsers) -> None:
    tablet = browsers.open(SAFARI_ON_IPHONE, "203.0.113.10")
    sign_in(tablet, people.alice)
    others = {session_id(people.phone), session_id(tablet)}

    with capture(session_revoked) as revoked:
        response = people.laptop.post(REVOKE_OTHERS)

    assert redirect_target(response)[0] == LIST
    page = people.laptop.get(LIST).content.decode()
    assert "2 other sessions are signed out." in page
    assert page.count("This device") == 1
    assert "Mobile Safari" not in page
    assert not signed_in_page(people.phone)
    assert not signed_in_page(tablet)
    assert signed_in_page(people.bobs)
    assert {s["session_id"] for s in revoked} == others
    assert {s["reason"] for s in revoked} == {"user"}
    assert {s["user_id"] for s in revoked} == {str(people.alice.pk)}


def test_revoke_others_answers_json(people: People) -> None:
    response = people.laptop.post(REVOKE_OTHERS, headers=JSON)

    assert response.json() == {"revoked_count": 1}
    assert not signed_in_page(people.phone)
    assert people.laptop.post(REVOKE_OTHERS, headers=JSON).json() == {"revoked_count": 0}


# -- POST, CSRF and the re-authentication window ------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_only_get_and_post(people: People, method: str) -> None:
    phone_id = session_id(people.phone)
    for path in (revoke_url(phone_id), REVOKE_OTHERS):
        assert getattr(people.laptop, method)(path).status_code == 405
    assert signed_in_page(people.phone)


def test_csrf_is_enforced(browsers: Browsers, frozen: Any, make_user: MakeUser) -> None:
    alice = make_user()
    laptop = browsers.open(CHROME_ON_WINDOWS, enforce_csrf_checks=True)
    phone = browsers.open(SAFARI_ON_IPHONE, "203.0.113.9")
    sign_in(laptop, alice)
    sign_in(phone, alice)
    phone_id = session_id(phone)

    for path in (revoke_url(phone_id), REVOKE_OTHERS):
        assert laptop.post(path).status_code == 403
        assert laptop.post(path, headers=JSON).status_code == 403
    assert signed_in_page(phone)

    token = csrf_token(laptop, LIST)
    response = laptop.post(revoke_url(phone_id), {"csrfmiddlewaretoken": token})
    assert redirect_target(response)[0] == LIST
    assert not signed_in_page(phone)
    # A JSON client sends the token in a header.
    api = laptop.post(REVOKE_OTHERS, headers={**JSON, "X-CSRFToken": token})
    assert api.json() == {"revoked_count": 0}


def test_outside_the_window_revoking_needs_a_reauthentication(
    people: People, frozen: time_machine.TimeMachineFixture
) -> None:
    phone_id = session_id(people.phone)
    frozen.shift(WINDOW)

    # The list itself is not sensitive.
    assert people.laptop.get(LIST).status_code == 200
    for path in (revoke_url(phone_id), REVOKE_OTHERS):
        assert redirect_target(people.laptop.post(path)) == (REAUTH, {"next": [path]})
        assert redirect_target(people.laptop.get(path)) == (REAUTH, {"next": [path]})
        api = people.laptop.post(path, headers=JSON)
        assert api.status_code == 401
        assert api.json()["reauth_url"].startswith(f"{REAUTH}?next=")
    assert signed_in_page(people.phone)

    # Re-authenticating comes back to the confirmation page, where revoking works.
    back = people.laptop.post(
        REAUTH, {"password": factories.PASSWORD, "next": revoke_url(phone_id)}
    )
    assert back["Location"] == revoke_url(phone_id)
    assert people.laptop.get(revoke_url(phone_id)).status_code == 200
    assert redirect_target(people.laptop.post(revoke_url(phone_id)))[0] == LIST
    assert not signed_in_page(people.phone)


@pytest.mark.parametrize("which", ["one", "others"])
def test_signing_out_after_the_window_asks_the_password_then_acts(
    people: People, frozen: time_machine.TimeMachineFixture, which: str
) -> None:
    path = revoke_url(session_id(people.phone)) if which == "one" else REVOKE_OTHERS
    frozen.shift(WINDOW)

    # The list's button: the password first ...
    assert redirect_target(people.laptop.post(path)) == (REAUTH, {"next": [path]})
    assert signed_in_page(people.phone)
    back = people.laptop.post(REAUTH, {"password": factories.PASSWORD, "next": path})
    # ... then back to the action, which is done without a second confirmation.
    done = people.laptop.get(back["Location"])

    assert redirect_target(done)[0] == LIST
    assert not signed_in_page(people.phone)
    assert signed_in_page(people.laptop)
    # Done once: the page asks again next time, and revokes nothing on a GET.
    assert people.laptop.get(REVOKE_OTHERS).status_code == 200


def test_a_revocation_asked_for_is_done_only_for_its_own_page(
    people: People, browsers: Browsers, frozen: time_machine.TimeMachineFixture
) -> None:
    office = browsers.open(FIREFOX_ON_LINUX, "192.0.2.77")
    sign_in(office, people.alice)
    frozen.shift(WINDOW)
    people.laptop.post(revoke_url(session_id(people.phone)))
    people.laptop.post(REAUTH, {"password": factories.PASSWORD})

    # Another session's page, or signing out everywhere else, only asks.
    assert people.laptop.get(revoke_url(session_id(office))).status_code == 200
    assert people.laptop.get(REVOKE_OTHERS).status_code == 200

    assert signed_in_page(people.phone)
    assert signed_in_page(office)


def test_a_revocation_asked_for_lapses_with_the_window(
    people: People, frozen: time_machine.TimeMachineFixture
) -> None:
    path = revoke_url(session_id(people.phone))
    frozen.shift(WINDOW)
    people.laptop.post(path)
    frozen.shift(WINDOW)  # the password page left open
    people.laptop.post(REAUTH, {"password": factories.PASSWORD, "next": path})

    assert people.laptop.get(path).status_code == 200  # asks, as for any visit
    assert signed_in_page(people.phone)


def test_a_link_alone_revokes_nothing_even_right_after_a_reauthentication(
    people: People, frozen: time_machine.TimeMachineFixture
) -> None:
    path = revoke_url(session_id(people.phone))
    frozen.shift(WINDOW)
    # A page elsewhere links to the revocation: followed, it asks for the password ...
    assert redirect_target(people.laptop.get(path)) == (REAUTH, {"next": [path]})
    people.laptop.post(REAUTH, {"password": factories.PASSWORD, "next": path})

    # ... and then only for confirmation: no POST of the list asked for it.
    assert people.laptop.get(path).status_code == 200
    assert signed_in_page(people.phone)


# -- through the async client -----------------------------------------------------------------


@async_test
async def test_the_pages_through_the_async_client(
    async_client: AsyncClient, frozen: Any, store_class: StoreClass
) -> None:
    alice = await User.objects.acreate(username="alice")
    other = store_class()
    await other.aset("_auth_user_id", str(alice.pk))
    await other.asave()
    await async_client.aforce_login(alice)
    key = session_key(async_client)

    listed = await async_client.get(LIST, headers=JSON)
    page = await async_client.get(LIST)
    assert [(s["id"], s["current"]) for s in listed.json()["sessions"]] == [
        (session_id(async_client), True),
        (other.session_id, False),
    ]
    assert page.content.decode().count("This device") == 1
    assert key.encode() not in listed.content + page.content

    with capture(session_revoked) as revoked:
        response = await async_client.post(REVOKE_OTHERS, headers=JSON)

    assert response.json() == {"revoked_count": 1}
    assert [(s["session_id"], s["reason"]) for s in revoked] == [(other.session_id, "user")]
    assert not await store_class().aexists(other.session_key or "")
    assert (await async_client.get(LIST)).status_code == 200


def test_nothing_here_needs_more_than_the_public_id(people: People) -> None:
    """The ids in these pages are the public ones: none of them is a usable cookie."""
    sessions: list[dict[str, Any]] = people.laptop.get(LIST, headers=JSON).json()["sessions"]
    for listed in sessions:
        impostor = Browser()
        impostor.cookies[settings.SESSION_COOKIE_NAME] = listed["id"]
        assert redirect_target(impostor.get(LIST))[0] == LOGIN_URL
