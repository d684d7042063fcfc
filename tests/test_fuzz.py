"""Fuzzing the whole middleware stack (hypothesis): hostile cookies, corrupt stored records
and hostile client headers, on both engines, through ``Client`` (the middleware's sync
path) and ``AsyncClient`` (its async path).

What holds for every example:

- no 500 and no exception escapes: every answer is one the stack gives by design;
- no adopted session: a cookie value the server did not mint never signs anybody in, and
  nothing is ever stored under it; a stored record that is corrupt, tampered with or signed
  with another key is no session (anonymous, logged on ``django.security``), and it is not
  overwritten: the request goes on with a fresh session of its own;
- a signed-in user's session with fuzzed ``User-Agent``, ``X-Forwarded-For``,
  ``X-Real-IP``, ``Accept`` and ``Accept-Language`` headers is kept or ended as the binding
  settings say, and an ended one is gone from storage for good;
- each example (several requests) takes less than ``DEADLINE``.

Examples are derived from a fixed seed (``derandomize``) and no database of past failures
is kept or replayed (``database=None``), so a run is the same on every machine and in CI;
hypothesis's own caches go to ``.hypothesis/``, which git ignores. Corrupt records are
written into the real storage (the database table, Redis).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any, Final

import hypothesis
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import parse_cookie
from django.test import Client, override_settings
from hypothesis import strategies as st

from django_secure_sessions import signals
from django_secure_sessions.backends.base import (
    SIGNATURE_LENGTH,
    SessionMeta,
    dumps,
    is_valid_session_key,
    session_id_for_key,
    sign,
)
from tests.browsing import AsyncClientFrom, force_login_on_either_path, send_on_either_path
from tests.factories import PASSWORD
from tests.marks import async_test
from tests.sessions import Storage, StoreClass, capture
from tests.user_agents import CHROME_120_WINDOWS, FIREFOX_121_WINDOWS, HUGE, SAFARI_IPHONE

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedASGIResponse, _MonkeyPatchedWSGIResponse

    Response = _MonkeyPatchedWSGIResponse | _MonkeyPatchedASGIResponse

SECURITY_LOGGER: Final = "django.security.SuspiciousSession"

# A whole example, several requests, on this suite's slowest setup (PostgreSQL, a loaded
# CI machine) takes well under this; a request that hangs or does work in proportion to a
# hostile input fails it.
DEADLINE: Final = timedelta(milliseconds=500)


def fuzz(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        deadline=DEADLINE,
        derandomize=True,
        database=None,
        # Fixtures (a user, the storage, the client) are shared by the examples on
        # purpose: each example makes its own session, and asserts on that one only.
        suppress_health_check=[
            hypothesis.HealthCheck.function_scoped_fixture,
            hypothesis.HealthCheck.too_slow,
        ],
    )


# What the stack answers by design: a page, a redirect to log in, Django's 400 for a
# session ended by a concurrent request, 401 / 403 from the re-auth and CSRF checks, and
# 503 when the storage is down.
DESIGNED_STATUSES: Final = frozenset({200, 302, 400, 401, 403, 503})

PROXY_IP: Final = "10.0.0.2"
PROXY_NETWORK: Final = "10.0.0.0/8"
HOME_IP: Final = "203.0.113.10"

# Pages that read the session (poll), need a signed-in user (whoami, the sessions page, a
# sensitive page behind the re-authentication window; sync and async views) or write to
# the session (cart).
READING: Final = ("/poll/",)
SENSITIVE: Final = ("/sensitive/email/", "/async/sensitive/email/")
SIGNED_IN_ONLY: Final = ("/whoami/", "/async/whoami/", "/account/sessions/", *SENSITIVE)
WRITING: Final = ("/cart/add/",)
pages = st.sampled_from(READING + SIGNED_IN_ONLY + WRITING)


# -- browsers --------------------------------------------------------------------------------


@dataclass
class Visitor:
    """A browser on ``Client`` (the middleware's sync path) or ``AsyncClientFrom``
    (async), whose requests come through ``PROXY_IP``."""

    client: Client | AsyncClientFrom

    async def get(self, path: str, headers: Mapping[str, str]) -> Response:
        return await self._send("get", path, None, headers)

    async def post(self, path: str, data: dict[str, str], headers: Mapping[str, str]) -> Response:
        return await self._send("post", path, data, headers)

    async def _send(
        self, method: str, path: str, data: dict[str, str] | None, headers: Mapping[str, str]
    ) -> Response:
        response = await send_on_either_path(
            self.client, method, path, data, headers=headers, ip=PROXY_IP
        )
        assert response.status_code in DESIGNED_STATUSES, response.content[:2000]
        return response

    async def force_login(self, user: AbstractBaseUser) -> None:
        await force_login_on_either_path(self.client, user)

    @property
    def session_key(self) -> str | None:
        morsel = self.client.cookies.get(settings.SESSION_COOKIE_NAME)
        return morsel.value if morsel is not None and morsel.value else None


@dataclass
class Site:
    """What the examples of a test share: the engine's storage, a user with an account,
    and the path (sync or async) that new browsers take."""

    storage: Storage
    store_class: StoreClass
    user: AbstractBaseUser
    asynchronous: bool

    def new_visitor(self) -> Visitor:
        """A new browser, with no cookies."""
        return Visitor(AsyncClientFrom() if self.asynchronous else Client())


@pytest.fixture(params=["client", "async_client"])
def site(
    request: pytest.FixtureRequest,
    storage: Storage,
    store_class: StoreClass,
    user: AbstractBaseUser,
) -> Site:
    return Site(storage, store_class, user, asynchronous=request.param == "async_client")


def session_cookie(response: Response) -> Morsel[str] | None:
    cookie: Morsel[str] | None = response.cookies.get(settings.SESSION_COOKIE_NAME)
    return cookie


def signed_in_as(path: str, response: Response) -> str | None:
    """Who the page says is signed in (None: nobody); for the cart, None."""
    if response.status_code == HTTPStatus.FOUND:
        assert path in SIGNED_IN_ONLY
        assert response["Location"].startswith(f"{settings.LOGIN_URL}?next=")
        return None
    assert response.status_code == HTTPStatus.OK, response.content[:2000]
    if path in WRITING:
        return None
    if path == "/account/sessions/":
        return "someone"  # the page lists a signed-in user's sessions
    name = response.content.decode()
    if path in SENSITIVE:  # signed in moments ago: inside the re-authentication window
        return name.removeprefix("change email for ")
    return None if name == "anonymous" else name


async def who_is_signed_in(visitor: Visitor, headers: Mapping[str, str]) -> str | None:
    return signed_in_as("/poll/", await visitor.get("/poll/", headers))


# -- what a client sends ---------------------------------------------------------------------

# What an HTTP server hands on as a header's value: Latin-1 text without control characters
# (servers refuse those), decoded as WSGI and ASGI do.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=200,
)
# A header as large as servers let through (8 KB).
huge_header = st.builds(lambda char, size: char * size, st.sampled_from("a,;= 9:"), st.just(8000))
hostile_header = header_text | huge_header

KEY_CHARS: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
key_shaped = st.text(st.sampled_from(KEY_CHARS), min_size=32, max_size=32)


@st.composite
def variants_of(draw: st.DrawFn, key: str) -> str:
    """``key`` with one change: a character replaced, removed, added, or its case changed."""
    index = draw(st.integers(0, len(key) - 1))
    char = draw(st.sampled_from(KEY_CHARS + "ABZ-_./*?\x00é \"'"))
    return draw(
        st.sampled_from(
            [
                key[:index] + char + key[index + 1 :],
                key[:index] + key[index + 1 :],
                key[:index] + char + key[index:],
                key.upper(),
                key + key,
            ]
        )
    )


def cookie_headers(minted: str) -> st.SearchStrategy[str]:
    """A ``Cookie`` header naming a session key the server did not mint (most of the
    time: Django's cookie parsing decides, see the test), beside other cookies."""
    name = settings.SESSION_COOKIE_NAME
    value = key_shaped | variants_of(minted) | header_text | huge_header
    return st.one_of(
        value.map(lambda text: f"{name}={text}"),
        st.tuples(value, value).map(lambda pair: f"{name}={pair[0]}; {name}={pair[1]}"),
        st.tuples(header_text, value).map(lambda pair: f"{pair[0]}; {name}={pair[1]}"),
        hostile_header,
    )


# -- hostile cookies -----------------------------------------------------------------------------


@async_test
@fuzz(examples=60)
@hypothesis.given(data=st.data(), path=pages)
async def test_a_session_key_the_server_did_not_mint_is_never_adopted(
    site: Site,
    data: st.DataObject,
    path: str,
) -> None:
    victim = site.new_visitor()
    await victim.force_login(site.user)
    minted = victim.session_key
    assert minted is not None
    victim_id = session_id_for_key(minted)
    victim_record = await sync_to_async(site.storage.stored)(victim_id)
    header = data.draw(cookie_headers(minted), label="cookie header")
    presented = parse_cookie(header).get(settings.SESSION_COOKIE_NAME, "")
    hypothesis.assume(presented != minted)  # the real key is the victim's, not a forgery

    attacker = site.new_visitor()
    response = await attacker.get(path, {"Cookie": header})

    assert signed_in_as(path, response) is None
    cookie = session_cookie(response)
    if cookie is not None and cookie.value:  # a session was made for this request
        assert cookie.value != presented
        assert is_valid_session_key(cookie.value)
    if path in WRITING:
        assert response.content == b"book"  # a new cart: not the victim's session
        assert cookie is not None
        assert is_valid_session_key(cookie.value)
    stored = await sync_to_async(site.storage.session_ids)()
    if is_valid_session_key(presented):
        assert session_id_for_key(presented) not in stored
    # The victim's session is untouched, and still signs the victim in.
    assert await sync_to_async(site.storage.stored)(victim_id) == victim_record
    assert await who_is_signed_in(victim, {}) == site.user.get_username()


# -- corrupt stored records ----------------------------------------------------------------------

# JSON values of every type, small.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
not_an_object = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(json_values, max_size=3),
)
containers = st.lists(json_values, max_size=3) | st.dictionaries(
    st.text(max_size=5), json_values, max_size=3
)
NUMBERS: Final = frozenset({"created", "last_activity", "expires"})
OPTIONAL_NUMBERS: Final = frozenset({"last_auth", "absolute_expiry"})


# Times before 1970 or after the year 9999 (which a datetime can't hold).
out_of_range_times = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=253_402_300_800),
    st.sampled_from([float("inf"), float("-inf")]),
)


def wrong_type_for(field: str) -> st.SearchStrategy[Any]:
    """A JSON value of a type (or, for a time, a range) the engine never writes into this
    field of a record's meta."""
    if field in NUMBERS or field in OPTIONAL_NUMBERS:
        wrong: st.SearchStrategy[Any] = (
            containers | st.text(max_size=8) | st.booleans() | out_of_range_times
        )
        return wrong if field in OPTIONAL_NUMBERS else wrong | st.none()
    # The user id (text; None only for an anonymous session) and the client's details.
    return containers | st.integers() | st.floats(allow_nan=False) | st.booleans()


@st.composite
def signed_with_wrong_types(draw: st.DrawFn, storage: Storage, session_id: str, text: str) -> str:
    """The record's signed part, correctly signed but with JSON of the wrong types: what
    only a bug of ours, another version of the package or a stolen secret could write."""
    payload = text[SIGNATURE_LENGTH:]
    if storage.signed_part == "data":  # db: the data alone, which must be a JSON object
        return sign(session_id, "data", dumps(draw(not_an_object)))
    meta, session_data = json.loads(payload)
    index = draw(st.integers(0, len(SessionMeta.FIELDS)))
    if index == len(SessionMeta.FIELDS):
        shaped = [meta, draw(not_an_object)]
    else:
        meta[index] = draw(wrong_type_for(SessionMeta.FIELDS[index]))
        shaped = [meta, session_data]
    return sign(session_id, "record", dumps(shaped))


def signed_with_another_secret(secret: str, session_id: str, part: str, payload: str) -> str:
    with override_settings(SECRET_KEY=secret):
        return sign(session_id, part, payload)


def corruptions(
    storage: Storage, session_id: str, stored: bytes, text: str
) -> st.SearchStrategy[Any]:
    """What a record's signed part may turn into: bytes flipped, cut, added or replaced
    (by an attacker with write access to storage, or a broken disk), signed with another
    secret, or correctly signed with the wrong JSON types. ``stored`` is the signed part
    as stored, ``text`` the signed JSON in it."""
    # A position in the record, drawn in the same range for every record (their sizes
    # differ a little, and hypothesis replays an example only if its draws are the same).
    at = st.integers(0, 4095).map(lambda index: index % len(stored))
    return st.one_of(
        st.tuples(at, st.integers(1, 255)).map(
            lambda flip: (
                stored[: flip[0]] + bytes([stored[flip[0]] ^ flip[1]]) + stored[flip[0] + 1 :]
            )
        ),
        at.map(lambda end: stored[:end]),
        st.tuples(at, st.binary(min_size=1, max_size=16)).map(
            lambda cut: stored[: cut[0]] + cut[1] + stored[cut[0] :]
        ),
        st.binary(max_size=512),
        st.integers(64 * 1024, 2 * 1024 * 1024).map(lambda length: b"\xff" * length),
        st.text(min_size=1, max_size=20).map(
            lambda secret: signed_with_another_secret(
                secret, session_id, storage.signed_part, text[SIGNATURE_LENGTH:]
            )
        ),
        signed_with_wrong_types(storage, session_id, text),
    )


@contextmanager
def security_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The records logged on ``django.security.SuspiciousSession`` inside the block."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=SECURITY_LOGGER):
        seen: list[logging.LogRecord] = []
        yield seen
        seen.extend(record for record in caplog.records if record.name == SECURITY_LOGGER)


@async_test
@fuzz(examples=60)
@hypothesis.given(data=st.data(), path=pages)
async def test_a_corrupt_stored_record_is_no_session_and_is_not_overwritten(
    site: Site,
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
    path: str,
) -> None:
    visitor = site.new_visitor()
    await visitor.force_login(site.user)
    assert await who_is_signed_in(visitor, {}) == site.user.get_username()  # bound, stored
    key = visitor.session_key
    assert key is not None
    session_id = session_id_for_key(key)
    stored = await sync_to_async(site.storage.stored)(session_id)
    assert stored is not None
    signed = await sync_to_async(site.storage.signed)(session_id)
    text = signed.decode() if isinstance(signed, bytes) else signed
    assert text is not None
    corrupt = data.draw(corruptions(site.storage, session_id, stored, text), label="stored")
    await sync_to_async(site.storage.overwrite)(session_id, corrupt)
    written = await sync_to_async(site.storage.stored)(session_id)
    hypothesis.assume(written != stored)

    with security_log(caplog) as logged:
        response = await visitor.get(path, {})

    assert logged, "a corrupt record is logged on django.security"
    assert signed_in_as(path, response) is None
    assert await who_is_signed_in(visitor, {}) is None
    cookie = session_cookie(response)
    if path in WRITING:  # a new session of its own, under a new key
        assert response.content == b"book"
        assert cookie is not None
        assert cookie.value != key
        assert is_valid_session_key(cookie.value)
    else:
        assert cookie is not None
        assert cookie.value == ""  # the cookie of no session is deleted
    # Nothing was written over the corrupt record (it is left for its owner to see).
    assert await sync_to_async(site.storage.stored)(session_id) == written


# -- hostile client headers on a signed-in session ---------------------------------------------

bindings = st.fixed_dictionaries(
    {
        "SECURE_SESSIONS_BIND_IP": st.sampled_from(["off", "exact", "subnet"]),
        "SECURE_SESSIONS_BIND_USER_AGENT": st.sampled_from(["off", "exact", "family"]),
        "SECURE_SESSIONS_BINDING_ACTION": st.sampled_from(["logout", "report"]),
        "SECURE_SESSIONS_TRUSTED_PROXIES": st.sampled_from([[], [PROXY_NETWORK]]),
    }
)
# Real browsers' user agents, and the shapes of real ones with a part the parser copies
# into a family (a device model, a browser name) made up, short or long.
user_agents = st.sampled_from(
    [CHROME_120_WINDOWS, FIREFOX_121_WINDOWS, SAFARI_IPHONE, HUGE, ""]
) | st.builds(
    str.format,
    st.sampled_from(
        [
            "Mozilla/5.0 (Linux; Android 10; SAMSUNG {}) AppleWebKit/537.36",
            "Mozilla/5.0 (Linux; Android 10; {} Build/QP1A) AppleWebKit/537.36 Chrome/120.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) {}",
            "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 {}/120.0 Safari/537.36",
        ]
    ),
    st.sampled_from(["SM-G991B", "x" * 300]) | header_text,
)
# Addresses, scoped IPv6 ones among them (whose zone has no bound of its own).
addresses = st.ip_addresses().map(str) | st.builds(
    "{}%{}".format,
    st.ip_addresses(v=6),
    st.sampled_from(["eth0", "z" * 80]) | st.text(st.sampled_from(KEY_CHARS), min_size=1),
)
forwarded_for = st.one_of(
    st.just(HOME_IP),
    addresses,
    st.lists(addresses | header_text, min_size=1, max_size=4).map(", ".join),
    hostile_header,
)
accepts = st.sampled_from(["application/json", "text/html,*/*;q=0.8", "*/*"]) | header_text
languages = st.sampled_from(["en", "de-DE,de;q=0.9", "zh-Hans", "pt-br"]) | header_text


def optional(
    header: str, values: st.SearchStrategy[str]
) -> st.SearchStrategy[dict[str, str] | None]:
    return st.none() | values.map(lambda value: {header: value})


@st.composite
def request_headers(draw: st.DrawFn, user_agent: str) -> dict[str, str]:
    """Headers for a request of the browser that logged in with ``user_agent``: each kept,
    changed or fuzzed."""
    headers = {"User-Agent": draw(st.just(user_agent) | user_agents | hostile_header)}
    for extra in (
        optional("X-Forwarded-For", forwarded_for),
        optional("X-Real-IP", addresses | hostile_header),
        optional("Accept", accepts),
        optional("Accept-Language", languages),
    ):
        if (header := draw(extra)) is not None:
            headers.update(header)
    return headers


@async_test
@fuzz(examples=60)
@hypothesis.given(
    binding=bindings,
    login=st.fixed_dictionaries(
        {"User-Agent": user_agents | hostile_header, "X-Forwarded-For": addresses | forwarded_for}
    ),
    data=st.data(),
    path=pages,
)
async def test_a_signed_in_session_with_hostile_headers_is_kept_or_ended_as_bound(
    site: Site,
    binding: dict[str, Any],
    login: dict[str, str],
    data: st.DataObject,
    path: str,
) -> None:
    login_user_agent, login_forwarded_for = login["User-Agent"], login["X-Forwarded-For"]
    headers = data.draw(request_headers(login_user_agent), label="headers")
    visitor = site.new_visitor()
    with override_settings(**binding):
        credentials = {"username": site.user.get_username(), "password": PASSWORD}
        logged_in = await visitor.post(str(settings.LOGIN_URL), credentials, login)
        assert logged_in.status_code == HTTPStatus.FOUND, logged_in.content
        key = visitor.session_key
        assert key is not None

        with capture(signals.binding_mismatch) as mismatches:
            response = await visitor.get(path, headers)
        follow_up = await who_is_signed_in(visitor, login)

    kept = follow_up == site.user.get_username()
    hypothesis.event("kept" if kept else "ended")
    # Changed as the binding sees it: the address counts only from a trusted proxy, and
    # may differ when the header does, or when the login's was garbage (no address).
    trusted = bool(binding["SECURE_SESSIONS_TRUSTED_PROXIES"])
    sent = headers.get("X-Forwarded-For")
    ip_changed = trusted and (sent != login_forwarded_for or sent != HOME_IP)
    user_agent_changed = headers["User-Agent"] != login_user_agent
    logout = binding["SECURE_SESSIONS_BINDING_ACTION"] == "logout"
    checks_ip = binding["SECURE_SESSIONS_BIND_IP"] != "off"
    checks_user_agent = binding["SECURE_SESSIONS_BIND_USER_AGENT"] != "off"
    if not logout or not ((ip_changed and checks_ip) or (user_agent_changed and checks_user_agent)):
        assert kept, "nothing the binding checks changed, or it only reports"
    if logout and user_agent_changed and binding["SECURE_SESSIONS_BIND_USER_AGENT"] == "exact":
        assert not kept, "another user agent, bound exactly"
    # Ended if and only if a mismatch was signalled and the action is to log out.
    assert kept == (not (mismatches and logout))
    assert (signed_in_as(path, response) is not None) == (kept and path not in WRITING)
    if kept:
        assert visitor.session_key == key
    else:
        assert not await site.store_class().aexists(key)  # ended server-side, for good
        cookie = session_cookie(response)
        assert cookie is not None
        assert cookie.value != key
