"""Re-authentication (SPEC §6): ``reauth_required``, ``ReauthRequiredMixin`` and the
re-authentication view, on both engines, through the whole middleware stack.

The sensitive pages are in tests/reauth_views.py: ``/sensitive/email/`` (bare decorator,
the default window), ``/sensitive/delete/`` (``max_age=60``), ``/sensitive/api-keys/``
(the mixin, ``reauth_max_age = 60``), and their async twins under ``/async/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import override_settings
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions.api import revoke_session
from django_secure_sessions.backends.base import (
    USER_ID_KEY,
    SecureSessionBase,
    session_id_for_key,
)
from django_secure_sessions.decorators import recently_authenticated
from django_secure_sessions.signals import reauth_failed, reauth_succeeded, session_revoked
from tests import factories, reauth_views
from tests.auth_backends import DOTTED_PATH as DIRECTORY_BACKEND
from tests.auth_backends import directory_password
from tests.browsing import (
    JSON,
    Browser,
    Browsers,
    assert_no_key_in,
    browser,
    cookie_deleted,
    csrf_token,
    elements,
    has_session_cookie,
    redirect_target,
    session_id,
    session_key,
)
from tests.marks import async_test
from tests.reauth_forms import CODE
from tests.sessions import capture

StoreClass = type[SecureSessionBase]

LOGIN = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)
DEFAULT_WINDOW = 300  # SECURE_SESSIONS_REAUTH_MAX_AGE's default
DEFAULT_MAX_FAILURES = 5  # SECURE_SESSIONS_REAUTH_MAX_FAILURES's default
QUICK = reauth_views.QUICK

REAUTH = "/account/sessions/reauth/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/accounts/profile/"  # Django's default
WRONG_PASSWORD = "not the password"

# (path, its window) of each sensitive page.
SYNC_PAGES = [
    ("/sensitive/email/", DEFAULT_WINDOW),
    ("/sensitive/delete/", QUICK),
    ("/sensitive/api-keys/", QUICK),
]
ASYNC_PAGES = [
    ("/async/sensitive/email/", DEFAULT_WINDOW),
    ("/async/sensitive/delete/", QUICK),
    ("/async/sensitive/api-keys/", DEFAULT_WINDOW),
]

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> time_machine.TimeMachineFixture:
    """Time stands still at LOGIN until a test moves it."""
    time_machine.move_to(LOGIN, tick=False)
    return time_machine


@pytest.fixture
def signed_in(user: User, frozen: time_machine.TimeMachineFixture, browsers: Browsers) -> Client:
    """A browser in which ``user`` signed in at LOGIN."""
    client = browsers.open()
    client.force_login(user)
    return client


def stale(frozen: time_machine.TimeMachineFixture, window: int = DEFAULT_WINDOW) -> None:
    """Move time to where a sign-in at LOGIN is just too old for ``window``."""
    frozen.move_to(LOGIN + timedelta(seconds=window), tick=False)


# -- the window ------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "window"), SYNC_PAGES)
def test_the_view_runs_inside_the_window_and_redirects_at_its_edge(
    signed_in: Client, user: User, frozen: Any, path: str, window: int
) -> None:
    frozen.move_to(LOGIN + timedelta(seconds=window - 1), tick=False)
    response = signed_in.get(path, {"tab": "email", "step": "2"})

    assert response.status_code == 200
    assert response.content.decode().endswith(f"for {user.get_username()}")

    frozen.move_to(LOGIN + timedelta(seconds=window), tick=False)
    response = signed_in.get(path, {"tab": "email", "step": "2"})

    assert redirect_target(response) == (REAUTH, {"next": [f"{path}?tab=email&step=2"]})


@async_test
@pytest.mark.parametrize(("path", "window"), ASYNC_PAGES)
async def test_async_views_run_inside_the_window_and_redirect_at_its_edge(
    async_client: AsyncClient, user: User, frozen: Any, path: str, window: int
) -> None:
    await async_client.aforce_login(user)

    frozen.move_to(LOGIN + timedelta(seconds=window - 1), tick=False)
    response = await async_client.get(path, {"q": "a b"})

    assert response.status_code == 200
    assert response.content.decode().endswith(f"for {user.get_username()}")

    frozen.move_to(LOGIN + timedelta(seconds=window), tick=False)
    response = await async_client.get(path, {"q": "a b"})

    assert redirect_target(response) == (REAUTH, {"next": [f"{path}?q=a+b"]})


def test_max_age_overrides_the_default_window(signed_in: Client, frozen: Any) -> None:
    frozen.move_to(LOGIN + timedelta(seconds=QUICK), tick=False)

    assert signed_in.get("/sensitive/email/").status_code == 200  # default window: 300 s
    assert signed_in.get("/sensitive/delete/").status_code == 302  # max_age=60
    assert signed_in.get("/sensitive/api-keys/").status_code == 302  # reauth_max_age = 60


@pytest.mark.parametrize("setting", [30, timedelta(seconds=30)], ids=["seconds", "timedelta"])
def test_the_default_window_is_the_setting(
    signed_in: Client, frozen: Any, settings: SettingsWrapper, setting: int | timedelta
) -> None:
    settings.SECURE_SESSIONS_REAUTH_MAX_AGE = setting
    frozen.move_to(LOGIN + timedelta(seconds=29), tick=False)

    assert signed_in.get("/sensitive/email/").status_code == 200

    frozen.move_to(LOGIN + timedelta(seconds=30), tick=False)

    assert signed_in.get("/sensitive/email/").status_code == 302
    # A window given to the view itself is not the setting's.
    assert signed_in.get("/sensitive/delete/").status_code == 200


# -- anonymous users and JSON clients --------------------------------------------------


@pytest.mark.parametrize("path", [path for path, _ in SYNC_PAGES])
def test_anonymous_users_go_to_the_login_page(client: Client, path: str) -> None:
    response = client.get(path, {"tab": "email"})

    assert redirect_target(response) == (LOGIN_URL, {"next": [f"{path}?tab=email"]})


@async_test
@pytest.mark.parametrize("path", [path for path, _ in ASYNC_PAGES])
async def test_anonymous_users_of_async_views_go_to_the_login_page(
    async_client: AsyncClient, path: str
) -> None:
    response = await async_client.get(path)

    assert redirect_target(response) == (LOGIN_URL, {"next": [path]})


@pytest.mark.parametrize(
    "headers",
    [JSON, {"Accept": "application/json, text/plain, */*"}, {"X-Requested-With": "XMLHttpRequest"}],
    ids=["accept-json", "accept-list", "xhr"],
)
@pytest.mark.parametrize("path", [path for path, _ in SYNC_PAGES])
def test_json_clients_get_a_401_naming_the_reauth_view(
    signed_in: Client, frozen: Any, path: str, headers: dict[str, str]
) -> None:
    stale(frozen)
    response = signed_in.get(path, {"id": "7"}, headers=headers)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["detail"]
    reauth_path, query = redirect_target(signed_in.get(path, {"id": "7"}))
    assert body["reauth_url"] == f"{reauth_path}?next={path.replace('/', '%2F')}%3Fid%3D7"
    assert query == {"next": [f"{path}?id=7"]}


@async_test
@pytest.mark.parametrize("path", [path for path, _ in ASYNC_PAGES])
async def test_async_json_clients_get_a_401_naming_the_reauth_view(
    async_client: AsyncClient, user: User, frozen: Any, path: str
) -> None:
    await async_client.aforce_login(user)
    stale(frozen)

    response = await async_client.get(path, headers=JSON)

    assert response.status_code == 401
    assert response.json()["reauth_url"] == f"{REAUTH}?next={path.replace('/', '%2F')}"


# -- the re-authentication page ----------------------------------------------------------


def test_the_reauth_page_is_an_accessible_password_form(signed_in: Client) -> None:
    response = signed_in.get(REAUTH, {"next": "/sensitive/email/?tab=1"})

    assert response.status_code == 200
    html = response.content
    [password] = elements(html, "input", name="password")
    assert password["type"] == "password"
    assert password["autocomplete"] == "current-password"
    assert "autofocus" in password
    assert elements(html, "label", **{"for": password["id"] or "-"})
    assert elements(html, "input", type="hidden", name="next", value="/sensitive/email/?tab=1")
    assert elements(html, "input", type="hidden", name="csrfmiddlewaretoken")
    assert elements(html, "html", lang="en-us")  # the base template's page
    assert response["Cache-Control"].startswith("max-age=0")  # never_cache


def test_the_reauth_page_needs_a_signed_in_user(client: Client) -> None:
    response = client.get(REAUTH, {"next": "/sensitive/email/"})

    assert redirect_target(response)[0] == LOGIN_URL


def test_the_reauth_view_enforces_csrf(user: User, frozen: Any, browsers: Browsers) -> None:
    client = browsers.open(enforce_csrf_checks=True)
    client.force_login(user)
    stale(frozen)

    forged = client.post(REAUTH, {"password": factories.PASSWORD, "next": "/sensitive/email/"})

    assert forged.status_code == 403
    assert client.get("/sensitive/email/").status_code == 302  # not re-authenticated

    token = csrf_token(client, REAUTH)
    response = client.post(
        REAUTH,
        {"password": factories.PASSWORD, "next": "/sensitive/email/", "csrfmiddlewaretoken": token},
    )

    assert redirect_target(response)[0] == "/sensitive/email/"
    assert client.get("/sensitive/email/").status_code == 200


# -- success -----------------------------------------------------------------------------


def test_success_rotates_the_key_stamps_the_time_and_follows_next(
    signed_in: Client, user: User, frozen: Any, store_class: StoreClass
) -> None:
    stale(frozen, QUICK)
    start = signed_in.get("/sensitive/delete/", {"confirm": "1"})
    reauth_path, query = redirect_target(start)
    old_key, old_id = session_key(signed_in), session_id(signed_in)

    with capture(reauth_succeeded) as sent:
        response = signed_in.post(
            reauth_path, {"password": factories.PASSWORD, "next": query["next"][0]}
        )

    assert response.status_code == 302
    assert response["Location"] == "/sensitive/delete/?confirm=1"
    new_key = session_key(signed_in)
    assert new_key != old_key
    assert not store_class().exists(old_key)
    replay = browser()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert redirect_target(replay.get("/sensitive/delete/"))[0] == LOGIN_URL
    # The authentication is stamped now: a full window from here.
    assert signed_in.get("/sensitive/delete/").status_code == 200
    frozen.shift(QUICK - 1)
    assert signed_in.get("/sensitive/delete/").status_code == 200
    frozen.shift(1)
    assert signed_in.get("/sensitive/delete/").status_code == 302

    [signal] = sent
    assert signal["user_id"] == str(user.pk)
    assert signal["session_id"] == session_id_for_key(new_key) != old_id
    assert isinstance(signal["request"], HttpRequest)
    assert_no_key_in(sent, old_key, new_key)


def test_success_answers_json_to_a_json_client(signed_in: Client, frozen: Any) -> None:
    stale(frozen)

    response = signed_in.post(
        REAUTH, {"password": factories.PASSWORD, "next": "/sensitive/email/"}, headers=JSON
    )

    assert response.status_code == 200
    assert response.json() == {"reauthenticated": True, "next": "/sensitive/email/"}
    assert signed_in.get("/sensitive/email/", headers=JSON).status_code == 200


@pytest.mark.parametrize(
    "next_url",
    ["/sensitive/email/?tab=1&b=2", "/account/sessions/", "http://testserver/sensitive/email/"],
)
def test_a_safe_next_is_followed(signed_in: Client, next_url: str) -> None:
    response = signed_in.post(REAUTH, {"password": factories.PASSWORD, "next": next_url})

    assert response["Location"] == next_url


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example",
        "//evil.example/account/",
        "https://evil.example",
        "https://evil.example/sensitive/email/",
        "/\\evil",
        "\\\\evil.example",
        "http:evil",
        "https:/evil.example",
        "javascript:alert(1)",
        "",
    ],
)
def test_an_unsafe_next_goes_to_login_redirect_url(signed_in: Client, next_url: str) -> None:
    # The page never puts it in its form ...
    page = signed_in.get(REAUTH, {"next": next_url})
    assert elements(page.content, "input", name="next", value=LOGIN_REDIRECT_URL)
    assert "evil" not in page.content.decode()

    # ... and the view never follows it, posted or in the query string.
    posted = signed_in.post(REAUTH, {"password": factories.PASSWORD, "next": next_url})
    assert posted["Location"] == LOGIN_REDIRECT_URL
    queried = signed_in.post(
        f"{REAUTH}?{urlencode({'next': next_url})}", {"password": factories.PASSWORD}
    )
    assert queried["Location"] == LOGIN_REDIRECT_URL


def test_login_redirect_url_may_be_a_url_name(signed_in: Client, settings: SettingsWrapper) -> None:
    settings.LOGIN_REDIRECT_URL = "secure_sessions:list"

    response = signed_in.post(REAUTH, {"password": factories.PASSWORD, "next": "//evil.example"})

    assert response["Location"] == "/account/sessions/"


def test_a_next_to_another_scheme_is_refused_on_https(signed_in: Client) -> None:
    response = signed_in.post(
        REAUTH,
        {"password": factories.PASSWORD, "next": "http://testserver/sensitive/email/"},
        secure=True,
    )

    assert response["Location"] == LOGIN_REDIRECT_URL


# -- failure -------------------------------------------------------------------------------


def test_a_failure_shows_an_error_and_does_not_extend_the_window(
    signed_in: Client, user: User, frozen: Any
) -> None:
    stale(frozen)
    key = session_key(signed_in)

    with capture(reauth_failed) as sent, capture(user_login_failed) as login_failures:
        response = signed_in.post(REAUTH, {"password": WRONG_PASSWORD, "next": "/sensitive/email/"})

    assert response.status_code == 200
    [alert] = elements(response.content, "span", role="alert")
    assert "not correct" in response.content.decode()
    [password] = elements(response.content, "input", name="password")
    assert password["aria-invalid"] == "true"
    assert password["aria-describedby"] == alert["id"]
    assert elements(response.content, "input", name="next", value="/sensitive/email/")
    # Still signed in, with the same key, and still outside the window.
    assert session_key(signed_in) == key
    assert redirect_target(signed_in.get("/sensitive/email/"))[0] == REAUTH
    [signal] = sent
    assert signal["failures"] == 1
    assert signal["user_id"] == str(user.pk)
    assert signal["session_id"] == session_id(signed_in)
    assert isinstance(signal["request"], HttpRequest)
    assert_no_key_in(sent, key)
    # authenticate() told the project's own listeners (rate limiting, auditing).
    [login_failure] = login_failures
    assert login_failure["credentials"]["username"] == user.get_username()


def test_a_failure_inside_the_window_changes_nothing(signed_in: Client) -> None:
    signed_in.post(REAUTH, {"password": WRONG_PASSWORD})

    assert signed_in.get("/sensitive/email/").status_code == 200


def test_an_empty_password_is_a_failure(signed_in: Client) -> None:
    with capture(reauth_failed) as sent:
        response = signed_in.post(REAUTH, {"password": ""})

    assert response.status_code == 200
    assert elements(response.content, "span", role="alert")
    assert [signal["failures"] for signal in sent] == [1]


def test_a_failure_answers_json_to_a_json_client(signed_in: Client) -> None:
    response = signed_in.post(REAUTH, {"password": WRONG_PASSWORD}, headers=JSON)

    assert response.status_code == 400
    assert response.json()["errors"]["password"][0]["code"] == "invalid_password"


def test_failures_are_counted_in_a_row(signed_in: Client) -> None:
    with capture(reauth_failed) as sent:
        for _ in range(4):
            signed_in.post(REAUTH, {"password": WRONG_PASSWORD})

    assert [signal["failures"] for signal in sent] == [1, 2, 3, 4]
    assert signed_in.get("/sensitive/email/").status_code == 200  # still signed in


@pytest.mark.parametrize("allowed", [DEFAULT_MAX_FAILURES, 2])
def test_repeated_failures_end_the_session(
    signed_in: Client,
    user: User,
    store_class: StoreClass,
    settings: SettingsWrapper,
    allowed: int,
) -> None:
    if allowed != DEFAULT_MAX_FAILURES:
        settings.SECURE_SESSIONS_REAUTH_MAX_FAILURES = allowed
    key, public_id = session_key(signed_in), session_id(signed_in)
    for _ in range(allowed - 1):
        assert signed_in.post(REAUTH, {"password": WRONG_PASSWORD}).status_code == 200

    with capture(session_revoked) as revoked, capture(reauth_failed) as failed:
        response = signed_in.post(REAUTH, {"password": WRONG_PASSWORD, "next": "/sensitive/email/"})

    assert redirect_target(response) == (LOGIN_URL, {"next": ["/sensitive/email/"]})
    assert cookie_deleted(response)
    assert not has_session_cookie(signed_in)
    assert not store_class().exists(key)
    assert redirect_target(signed_in.get("/sensitive/email/"))[0] == LOGIN_URL
    # The right password is of no use now, not even with the old cookie.
    replay = browser()
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert redirect_target(replay.post(REAUTH, {"password": factories.PASSWORD}))[0] == LOGIN_URL
    assert [signal["failures"] for signal in failed] == [allowed]
    [signal] = revoked
    assert (signal["reason"], signal["user_id"], signal["session_id"]) == (
        "reauth_failures",
        str(user.pk),
        public_id,
    )
    assert_no_key_in(revoked + failed, key)


def test_repeated_failures_of_a_json_client_end_the_session(
    signed_in: Client, settings: SettingsWrapper
) -> None:
    settings.SECURE_SESSIONS_REAUTH_MAX_FAILURES = 1

    response = signed_in.post(REAUTH, {"password": WRONG_PASSWORD}, headers=JSON)

    assert response.status_code == 403
    assert response.json()["detail"]
    assert cookie_deleted(response)
    assert signed_in.get("/sensitive/email/", headers=JSON).status_code == 302  # to log in


def test_a_success_resets_the_count(signed_in: Client) -> None:
    with capture(reauth_failed) as sent:
        for _ in range(4):
            signed_in.post(REAUTH, {"password": WRONG_PASSWORD})
        signed_in.post(REAUTH, {"password": factories.PASSWORD})
        for _ in range(4):
            signed_in.post(REAUTH, {"password": WRONG_PASSWORD})

    assert [signal["failures"] for signal in sent] == [1, 2, 3, 4, 1, 2, 3, 4]
    assert signed_in.get("/sensitive/email/").status_code == 200


# -- only a fully signed-in session counts -------------------------------------------------


def test_a_password_reset_in_progress_is_not_an_authentication(
    client: Client, user: User, store_class: StoreClass
) -> None:
    # What PasswordResetConfirmView keeps between its two steps.
    session = store_class()
    session["_password_reset_token"] = "set-password"
    session.save()
    assert session.session_key is not None
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key

    assert redirect_target(client.get("/sensitive/email/"))[0] == LOGIN_URL
    assert client.get("/sensitive/email/", headers=JSON).status_code == 302
    assert redirect_target(client.post(REAUTH, {"password": factories.PASSWORD}))[0] == LOGIN_URL


def request_with(store_class: StoreClass, key: str | None, user: User) -> HttpRequest:
    """A request whose user some other code decided, with the session of ``key``
    loaded (as SecureSessionMiddleware loads it)."""
    session = store_class(key)
    session.get(USER_ID_KEY)
    request = RequestFactory().get("/sensitive/email/")
    request.session = session
    request.user = user
    return request


def test_a_session_only_half_way_to_a_login_never_counts(
    user: User, store_class: StoreClass, frozen: Any
) -> None:
    # Say a two-step login that put its user on request.user before the second step
    # wrote the session: the session holds no authentication yet.
    half_way = store_class()
    half_way["_password_reset_token"] = "set-password"
    half_way.save()
    request = request_with(store_class, half_way.session_key, user)

    assert not recently_authenticated(request, user, DEFAULT_WINDOW)
    assert redirect_target(reauth_views.change_email(request))[0] == REAUTH


def test_a_session_of_another_user_never_counts(
    user: User,
    make_user: Callable[..., User],
    store_class: StoreClass,
    frozen: Any,
) -> None:
    session = store_class()
    session[USER_ID_KEY] = str(user.pk)
    session.save()
    session.record_login()
    session.save()
    someone_else = make_user()

    own = request_with(store_class, session.session_key, user)
    foreign = request_with(store_class, session.session_key, someone_else)

    assert reauth_views.change_email(own).status_code == 200
    assert redirect_target(reauth_views.change_email(foreign))[0] == REAUTH


def test_a_session_of_djangos_own_engine_never_counts(user: User) -> None:
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    request = RequestFactory().get("/sensitive/email/")
    request.session = SessionStore()
    request.user = user

    assert redirect_target(reauth_views.change_email(request))[0] == REAUTH


# -- plugging in a project's own confirmation step -----------------------------------------


def test_the_form_is_swapped_by_the_setting(
    signed_in: Client, frozen: Any, settings: SettingsWrapper
) -> None:
    settings.SECURE_SESSIONS_REAUTH_FORM = "tests.reauth_forms.OneTimeCodeForm"
    stale(frozen)

    page = signed_in.get(REAUTH, {"next": "/sensitive/email/"})
    [code] = elements(page.content, "input", name="code")
    assert elements(page.content, "label", **{"for": code["id"] or "-"})
    assert not elements(page.content, "input", name="password")

    with capture(reauth_failed) as failed:
        wrong = signed_in.post(REAUTH, {"code": "000000", "next": "/sensitive/email/"})
        password = signed_in.post(
            REAUTH, {"password": factories.PASSWORD, "next": "/sensitive/email/"}
        )
    assert wrong.status_code == password.status_code == 200
    assert [signal["failures"] for signal in failed] == [1, 2]
    assert signed_in.get("/sensitive/email/").status_code == 302

    right = signed_in.post(REAUTH, {"code": CODE, "next": "/sensitive/email/"})

    assert right["Location"] == "/sensitive/email/"
    assert signed_in.get("/sensitive/email/").status_code == 200


@override_settings(ROOT_URLCONF="tests.urls_code_reauth")
def test_a_subclass_of_the_view_routed_in_its_place(signed_in: Client, frozen: Any) -> None:
    stale(frozen)
    reauth_path, query = redirect_target(signed_in.get("/sensitive/email/"))

    assert reauth_path == REAUTH
    assert elements(signed_in.get(reauth_path).content, "input", name="code")
    response = signed_in.post(reauth_path, {"code": CODE, "next": query["next"][0]})

    assert response["Location"] == "/sensitive/email/"
    assert signed_in.get("/sensitive/email/").status_code == 200


@override_settings(AUTHENTICATION_BACKENDS=[DIRECTORY_BACKEND])
def test_the_projects_authentication_backends_check_the_password(
    user: User, frozen: Any, browsers: Browsers
) -> None:
    client = browsers.open()
    client.force_login(user, backend=DIRECTORY_BACKEND)
    stale(frozen)

    # The password in the user table is not what this project's backend accepts.
    table = client.post(REAUTH, {"password": factories.PASSWORD, "next": "/sensitive/email/"})
    assert table.status_code == 200
    assert elements(table.content, "span", role="alert")

    directory = client.post(
        REAUTH,
        {"password": directory_password(user.get_username()), "next": "/sensitive/email/"},
    )

    assert directory["Location"] == "/sensitive/email/"
    assert client.get("/sensitive/email/").status_code == 200


@override_settings(AUTHENTICATION_BACKENDS=[DIRECTORY_BACKEND])
def test_another_users_credentials_do_not_confirm(
    user: User, make_user: Callable[..., User], frozen: Any, browsers: Browsers
) -> None:
    other = make_user()
    client = browsers.open()
    client.force_login(user, backend=DIRECTORY_BACKEND)
    stale(frozen)

    # The form asks for a password only: the name is the signed-in user's, whatever
    # else is posted.
    response = client.post(
        REAUTH,
        {
            "username": other.get_username(),
            "password": directory_password(other.get_username()),
        },
    )

    assert response.status_code == 200
    assert client.get("/sensitive/email/").status_code == 302


# -- through the async client -----------------------------------------------------------------


@async_test
async def test_reauthentication_through_the_async_client(
    async_client: AsyncClient, user: User, frozen: Any, store_class: StoreClass
) -> None:
    await async_client.aforce_login(user)
    stale(frozen)
    reauth_path, query = redirect_target(await async_client.get("/async/sensitive/email/"))
    old_key = session_key(async_client)

    with capture(reauth_failed) as failed, capture(reauth_succeeded) as succeeded:
        wrong = await async_client.post(reauth_path, {"password": WRONG_PASSWORD})
        assert (await async_client.get("/async/sensitive/email/")).status_code == 302
        right = await async_client.post(
            reauth_path, {"password": factories.PASSWORD, "next": query["next"][0]}
        )

    assert wrong.status_code == 200
    assert right["Location"] == "/async/sensitive/email/"
    assert session_key(async_client) != old_key
    assert not await store_class().aexists(old_key)
    assert (await async_client.get("/async/sensitive/email/")).status_code == 200
    assert [signal["failures"] for signal in failed] == [1]
    assert [signal["session_id"] for signal in succeeded] == [session_id(async_client)]


@async_test
async def test_repeated_failures_through_the_async_client_end_the_session(
    async_client: AsyncClient, user: User, settings: SettingsWrapper, frozen: Any
) -> None:
    settings.SECURE_SESSIONS_REAUTH_MAX_FAILURES = 2
    await async_client.aforce_login(user)

    with capture(session_revoked) as revoked:
        for _ in range(2):
            response = await async_client.post(REAUTH, {"password": WRONG_PASSWORD})

    assert redirect_target(response)[0] == LOGIN_URL
    assert [signal["reason"] for signal in revoked] == ["reauth_failures"]
    anonymous = await async_client.get("/async/sensitive/email/")
    assert redirect_target(anonymous)[0] == LOGIN_URL


# -- the lockout's counts, kept in storage (the bursts themselves: test_reauth_burst.py) -----


@pytest.fixture
def stored_login(user: User, store_class: StoreClass, frozen: Any) -> str:
    """The key of a session in which ``user`` signed in, outside any browser."""
    session = store_class()
    session[USER_ID_KEY] = str(user.pk)
    session.record_login()
    session.save()
    assert session.session_key is not None
    return session.session_key


def count_elsewhere(store_class: StoreClass, key: str, attempts: int) -> None:
    """Count attempts on the session of ``key`` as concurrent requests would, each
    between its own count and its check."""
    for _ in range(attempts):
        assert store_class(key).count_reauth_attempt() is not None


def test_an_attempt_past_the_limit_ends_the_session_without_a_check(
    signed_in: Client, user: User, store_class: StoreClass
) -> None:
    key, public_id = session_key(signed_in), session_id(signed_in)
    count_elsewhere(store_class, key, DEFAULT_MAX_FAILURES)  # the burst's own attempts

    with (
        capture(user_login_failed) as checked,
        capture(reauth_failed) as failed,
        capture(session_revoked) as revoked,
    ):
        response = signed_in.post(REAUTH, {"password": WRONG_PASSWORD})

    assert redirect_target(response)[0] == LOGIN_URL
    assert cookie_deleted(response)
    assert checked == []  # the password was not checked
    assert [signal["failures"] for signal in failed] == [DEFAULT_MAX_FAILURES + 1]
    assert [(s["reason"], s["session_id"]) for s in revoked] == [("reauth_failures", public_id)]
    assert not store_class().exists(key)


def test_a_right_password_loses_to_attempts_counted_meanwhile(
    stored_login: str, user: User, store_class: StoreClass
) -> None:
    key = stored_login
    count_elsewhere(store_class, key, DEFAULT_MAX_FAILURES - 1)
    session = store_class(key)
    assert session.count_reauth_attempt() == DEFAULT_MAX_FAILURES  # checked: right
    count_elsewhere(store_class, key, 1)  # a guess that raced it ends the session

    assert session.confirm_reauth(DEFAULT_MAX_FAILURES) == DEFAULT_MAX_FAILURES + 1

    assert session.session_key is None
    assert not store_class().exists(key)
    assert store_class.user_sessions(str(user.pk)) == []  # no new session was written


def test_a_confirmation_starts_a_new_count_with_the_new_key(
    stored_login: str, store_class: StoreClass
) -> None:
    key = stored_login
    session = store_class(key)
    count_elsewhere(store_class, key, 3)

    assert session.confirm_reauth(DEFAULT_MAX_FAILURES) == 3
    assert session.session_key not in {None, key}
    assert session.count_reauth_attempt() == 1
    assert store_class(key).count_reauth_attempt() is None  # the old key is gone


def test_the_count_is_not_in_the_data_and_saves_never_reset_it(
    signed_in: Client, store_class: StoreClass
) -> None:
    for _ in range(DEFAULT_MAX_FAILURES - 1):
        signed_in.post(REAUTH, {"password": WRONG_PASSWORD})
        assert signed_in.get("/cart/add/").status_code == 200  # saves the session's data
    assert "reauth" not in repr(dict(store_class(session_key(signed_in)).items()))

    response = signed_in.post(REAUTH, {"password": WRONG_PASSWORD})

    assert redirect_target(response)[0] == LOGIN_URL


def test_a_revoked_session_counts_no_attempt(signed_in: Client, store_class: StoreClass) -> None:
    key = session_key(signed_in)
    assert signed_in.get("/whoami/").status_code == 200

    assert revoke_session(session_id(signed_in))

    assert store_class(key).count_reauth_attempt() is None
    assert store_class(key).confirm_reauth(DEFAULT_MAX_FAILURES) is None


def test_an_expired_session_counts_no_attempt(
    store_class: StoreClass, frozen: time_machine.TimeMachineFixture
) -> None:
    session = store_class()
    session["cart"] = ["book"]
    session.set_expiry(60)
    session.save()
    key = session.session_key
    assert store_class(key).count_reauth_attempt() == 1
    frozen.move_to(LOGIN + timedelta(seconds=60), tick=False)

    assert store_class(key).count_reauth_attempt() is None
    assert store_class(key).confirm_reauth(DEFAULT_MAX_FAILURES) is None


def open_signed_in(browsers: Browsers, user: User, count: int) -> list[Browser]:
    clients = [browsers.open() for _ in range(count)]
    for client in clients:
        client.force_login(user)
    return clients


def test_the_users_attempts_across_sessions_are_bounded_per_window(
    user: User, frozen: time_machine.TimeMachineFixture, browsers: Browsers, settings: Any
) -> None:
    settings.SECURE_SESSIONS_REAUTH_USER_MAX_FAILURES = 6
    first, second = open_signed_in(browsers, user, 2)
    for client in (first, second):
        for _ in range(3):
            assert client.post(REAUTH, {"password": WRONG_PASSWORD}).status_code == 200
    frozen.move_to(LOGIN + timedelta(seconds=100), tick=False)

    with capture(user_login_failed) as checked, capture(reauth_failed) as failed:
        refused = first.post(REAUTH, {"password": factories.PASSWORD})
        refused_json = second.post(REAUTH, {"password": factories.PASSWORD}, headers=JSON)

    assert refused.status_code == refused_json.status_code == 429
    # The window opened with the first attempt, 100 seconds ago.
    assert refused["Retry-After"] == refused_json["Retry-After"] == str(900 - 100)
    assert elements(refused.content, "div", role="alert")
    assert "Too many failed attempts for this account" in refused.content.decode()
    assert "14 minutes" in refused_json.json()["detail"]
    assert elements(refused.content, "input", name="password")
    assert checked == failed == []  # refused unchecked, the right password too
    # Signed in still, on both sessions: only the checks are refused.
    assert first.get("/sensitive/email/").status_code == 200
    assert second.get("/sensitive/email/").status_code == 200

    frozen.move_to(LOGIN + timedelta(seconds=900), tick=False)  # a new window
    confirmed = second.post(REAUTH, {"password": factories.PASSWORD, "next": "/whoami/"})

    assert confirmed["Location"] == "/whoami/"


def test_a_confirmation_does_not_use_up_the_users_window(
    user: User, frozen: Any, browsers: Browsers, settings: Any
) -> None:
    settings.SECURE_SESSIONS_REAUTH_USER_MAX_FAILURES = 3
    [client] = open_signed_in(browsers, user, 1)

    statuses = [
        client.post(REAUTH, {"password": password}).status_code
        for password in [WRONG_PASSWORD, WRONG_PASSWORD, factories.PASSWORD, WRONG_PASSWORD]
    ]
    refused = client.post(REAUTH, {"password": WRONG_PASSWORD})

    assert statuses == [200, 200, 302, 200]  # the confirmation was given back
    assert refused.status_code == 429


def test_no_per_user_bound_when_the_setting_is_none(
    user: User, frozen: Any, browsers: Browsers, settings: Any
) -> None:
    settings.SECURE_SESSIONS_REAUTH_USER_MAX_FAILURES = None
    clients = open_signed_in(browsers, user, 6)

    statuses = {
        client.post(REAUTH, {"password": WRONG_PASSWORD}).status_code
        for client in clients
        for _ in range(DEFAULT_MAX_FAILURES - 1)
    }

    assert statuses == {200}


def test_the_users_window_follows_the_clock(
    user: User, store_class: StoreClass, frozen: time_machine.TimeMachineFixture
) -> None:
    user_id = str(user.pk)

    assert store_class.count_user_reauth_attempt(user_id, 60) == (1, 60)
    frozen.move_to(LOGIN + timedelta(seconds=59), tick=False)
    assert store_class.count_user_reauth_attempt(user_id, 60) == (2, 1)
    store_class.uncount_user_reauth_attempt(user_id, 60)
    assert store_class.count_user_reauth_attempt(user_id, 60) == (2, 1)
    frozen.move_to(LOGIN + timedelta(seconds=60), tick=False)
    store_class.uncount_user_reauth_attempt(user_id, 60)  # the window ended: nothing
    assert store_class.count_user_reauth_attempt(user_id, 60) == (1, 60)
    # Another user's window is their own.
    assert store_class.count_user_reauth_attempt(f"{user_id}0", 60) == (1, 60)


@pytest.mark.parametrize("headers", [{}, JSON], ids=["html", "json"])
def test_a_storage_failure_fault_injection_refuses_the_attempt_unchecked(
    signed_in: Client,
    store_class: StoreClass,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
) -> None:
    key = session_key(signed_in)

    def fail(self: SecureSessionBase, session_id: str) -> int | None:
        raise store_class.storage_errors[0]("injected: the storage went away")

    monkeypatch.setattr(store_class, "_count_attempt", fail)
    with caplog.at_level(logging.ERROR, logger="django_secure_sessions"):
        response = signed_in.post(
            REAUTH, {"password": factories.PASSWORD, "next": "/whoami/"}, headers=headers
        )
    monkeypatch.undo()

    # Not counted, so not checked: even the right password confirms nothing.
    assert response.status_code == 503
    message = response.json()["detail"] if headers else response.content.decode()
    assert "can't be checked right now" in message.replace("&#x27;", "'")
    assert session_key(signed_in) == key
    assert signed_in.get("/whoami/").status_code == 200  # the session goes on
    [record] = [r for r in caplog.records if r.name == "django_secure_sessions"]
    assert session_id(signed_in) in record.getMessage()
    assert key not in record.getMessage()
