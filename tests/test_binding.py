"""The pure client-identification rules of ``django_secure_sessions.binding``.

Client IP (normalisation, ``X-Forwarded-For`` behind trusted proxies), IP binding, and
user-agent binding with real browsers' user agents.
"""

from __future__ import annotations

import ipaddress
import uuid

import pytest
from django.test import RequestFactory
from pytest_django.fixtures import Settings as SettingsWrapper

from django_secure_sessions import binding
from django_secure_sessions.backends.base import SessionMeta
from django_secure_sessions.binding import (
    FAMILY_MAX_LENGTH,
    IP_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
    Mismatch,
    Network,
    UserAgentSummary,
    client_ip,
    ip_mismatch,
    normalize_ip,
    parse_forwarded_hop,
    resolve_client_ip,
    summarize_user_agent,
    user_agent_digest,
    user_agent_mismatch,
)
from tests.user_agents import (
    CHROME_119_WINDOWS,
    CHROME_120_MAC,
    CHROME_120_WINDOWS,
    FIREFOX_121_WINDOWS,
    HUGE,
    LONG_DEVICE,
    SAFARI_IPHONE,
)

PROXIES: tuple[Network, ...] = (ipaddress.ip_network("10.0.0.0/8"),)
IPV6_PROXIES: tuple[Network, ...] = (ipaddress.ip_network("2001:db8:ffff::/48"),)


# -- normalize_ip ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7\t", "203.0.113.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::1", "::1"),
        # IPv4-mapped IPv6, as a dual-stack socket reports an IPv4 client.
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::FFFF:c000:0201", "192.0.2.1"),
        # A scoped address, its zone kept: as long as a session can keep.
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("fe80::1%" + "z" * (IP_MAX_LENGTH - 8), "fe80::1%" + "z" * (IP_MAX_LENGTH - 8)),
    ],
)
def test_normalize_ip(value: str, expected: str) -> None:
    assert normalize_ip(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "unknown",
        "999.1.1.1",
        "203.0.113",
        "203.0.113.7:80",
        "[2001:db8::1]",
        "a.b",
        # Longer than a session keeps (the db engine's column): no address, not a failed write.
        "fe80::1%" + "z" * (IP_MAX_LENGTH - 7),
    ],
)
def test_normalize_ip_refuses_what_is_not_an_address(value: str) -> None:
    assert normalize_ip(value) is None


# -- parse_forwarded_hop -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hop", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ('"[2001:db8::1]:443"', "2001:db8::1"),
        ('"203.0.113.7"', "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
    ],
)
def test_parse_forwarded_hop(hop: str, expected: str) -> None:
    assert parse_forwarded_hop(hop) == expected


@pytest.mark.parametrize(
    "hop",
    [
        "",
        "unknown",
        "_hidden",  # an obfuscated node name (RFC 7239)
        "proxy.example.com",
        "proxy.example.com:80",
        "[2001:db8::1",
        "[not-an-address]:443",
        "203.0.113.7 198.51.100.1",  # a missing comma
        "203.0.113.256",
        "<script>",
    ],
)
def test_parse_forwarded_hop_refuses_garbage(hop: str) -> None:
    assert parse_forwarded_hop(hop) is None


# -- resolve_client_ip -------------------------------------------------------------------


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert resolve_client_ip("198.51.100.7", "203.0.113.10", ()) == "198.51.100.7"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert resolve_client_ip("198.51.100.7", "203.0.113.10", PROXIES) == "198.51.100.7"


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    assert resolve_client_ip("10.0.0.1", None, PROXIES) == "10.0.0.1"
    assert resolve_client_ip("10.0.0.1", "", PROXIES) == "10.0.0.1"


def test_a_trusted_proxy_vouches_for_the_address_it_received_from() -> None:
    assert resolve_client_ip("10.0.0.1", "203.0.113.10", PROXIES) == "203.0.113.10"


def test_the_chain_is_walked_from_the_right_over_trusted_proxies() -> None:
    forwarded = "203.0.113.10, 10.0.0.3, 10.0.0.2"

    assert resolve_client_ip("10.0.0.1", forwarded, PROXIES) == "203.0.113.10"


@pytest.mark.parametrize(
    "spoofed",
    ["198.51.100.66", "10.9.9.9", "garbage", "198.51.100.66, 10.9.9.9"],
)
def test_whatever_the_client_wrote_to_the_left_is_ignored(spoofed: str) -> None:
    # The client sent "X-Forwarded-For: <spoofed>"; the proxy appended its address.
    forwarded = f"{spoofed}, 203.0.113.10"

    assert resolve_client_ip("10.0.0.1", forwarded, PROXIES) == "203.0.113.10"


@pytest.mark.parametrize("garbage", ["unknown", "", "proxy.example.com", "1.2.3.4.5"])
def test_a_garbage_hop_before_the_client_fails_closed(garbage: str) -> None:
    forwarded = f"203.0.113.10, {garbage}"

    assert resolve_client_ip("10.0.0.1", forwarded, PROXIES) is None


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert resolve_client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"


def test_several_headers_joined_with_commas() -> None:
    # WSGI and ASGI servers join repeated headers with "," (with or without a space).
    forwarded = "198.51.100.66,203.0.113.10, 10.0.0.2"

    assert resolve_client_ip("10.0.0.1", forwarded, PROXIES) == "203.0.113.10"


def test_ports_brackets_and_quotes_in_the_chain() -> None:
    forwarded = '"[2001:db8:1::5]:51234", 10.0.0.2:8080'

    assert resolve_client_ip("10.0.0.1", forwarded, PROXIES) == "2001:db8:1::5"


def test_ipv6_proxies() -> None:
    forwarded = "2001:db8:1::5, 2001:db8:ffff::2"

    assert resolve_client_ip("2001:db8:ffff::1", forwarded, IPV6_PROXIES) == "2001:db8:1::5"
    assert resolve_client_ip("2001:db8:ffff::1", "203.0.113.10", IPV6_PROXIES) == "203.0.113.10"
    assert resolve_client_ip("2001:db8:1::1", "203.0.113.10", IPV6_PROXIES) == "2001:db8:1::1"


def test_an_ipv4_mapped_peer_is_matched_against_ipv4_proxies() -> None:
    assert resolve_client_ip("::ffff:10.0.0.1", "203.0.113.10", PROXIES) == "203.0.113.10"


def test_the_peer_address_is_normalized() -> None:
    assert resolve_client_ip("::ffff:203.0.113.10", None, ()) == "203.0.113.10"


@pytest.mark.parametrize("remote_addr", ["", "unix:/run/gunicorn.sock", "garbage"])
def test_an_unparsable_peer_fails_closed(remote_addr: str) -> None:
    assert resolve_client_ip(remote_addr, "203.0.113.10", PROXIES) is None


def test_client_ip_reads_the_request_and_the_setting(
    rf: RequestFactory, settings: SettingsWrapper
) -> None:
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.10")

    assert client_ip(request) == "10.0.0.1"
    settings.SECURE_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request) == "203.0.113.10"


# -- ip_mismatch ---------------------------------------------------------------------------


def subnet(bound: str, current: str | None, v4: int = 24, v6: int = 64) -> Mismatch | None:
    return ip_mismatch(bound, current, "subnet", v4, v6)


@pytest.mark.parametrize("mode", ["exact", "subnet"])
def test_the_same_address_matches(mode: str) -> None:
    assert ip_mismatch("203.0.113.10", "203.0.113.10", mode, 24, 64) is None
    assert ip_mismatch("2001:db8::1", "2001:db8::1", mode, 24, 64) is None


@pytest.mark.parametrize(
    ("bound", "current"),
    [("203.0.113.10", "198.51.100.7"), ("", "203.0.113.10"), ("203.0.113.10", None)],
)
def test_off_never_mismatches(bound: str, current: str | None) -> None:
    assert ip_mismatch(bound, current, "off", 24, 64) is None


def test_exact_needs_the_very_address() -> None:
    assert ip_mismatch("203.0.113.10", "203.0.113.11", "exact", 24, 64) == Mismatch(
        "ip", "203.0.113.10", "203.0.113.11"
    )


@pytest.mark.parametrize("current", ["203.0.113.0", "203.0.113.11", "203.0.113.255"])
def test_ipv4_subnet_within_the_24(current: str) -> None:
    assert subnet("203.0.113.10", current) is None


@pytest.mark.parametrize("current", ["203.0.112.255", "203.0.114.0", "198.51.100.10"])
def test_ipv4_subnet_outside_the_24(current: str) -> None:
    assert subnet("203.0.113.10", current) == Mismatch("ip", "203.0.113.0/24", current)


def test_ipv4_prefix_sets_the_network_size() -> None:
    assert subnet("203.0.113.10", "203.0.200.1", v4=16) is None
    assert subnet("203.0.113.10", "203.1.0.1", v4=16) == Mismatch("ip", "203.0.0.0/16", "203.1.0.1")
    assert subnet("203.0.113.10", "203.0.113.11", v4=32) == Mismatch(
        "ip", "203.0.113.10/32", "203.0.113.11"
    )
    assert subnet("203.0.113.10", "198.51.100.7", v4=0) is None


@pytest.mark.parametrize(
    "current", ["2001:db8:1:2::", "2001:db8:1:2::11", "2001:db8:1:2:ffff:ffff:ffff:ffff"]
)
def test_ipv6_subnet_within_the_64(current: str) -> None:
    assert subnet("2001:db8:1:2::10", current) is None


@pytest.mark.parametrize(
    "current", ["2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:1:3::", "2001:db8:2:2::10"]
)
def test_ipv6_subnet_outside_the_64(current: str) -> None:
    assert subnet("2001:db8:1:2::10", current) == Mismatch("ip", "2001:db8:1:2::/64", current)


def test_ipv6_prefix_sets_the_network_size() -> None:
    assert subnet("2001:db8:1:2::10", "2001:db8:1:ff::1", v6=48) is None
    assert subnet("2001:db8:1:2::10", "2001:db8:2::1", v6=48) is not None


def test_ipv4_and_ipv6_never_match_and_the_report_shows_the_bound_network() -> None:
    assert subnet("203.0.113.10", "2001:db8::1") == Mismatch("ip", "203.0.113.0/24", "2001:db8::1")
    assert subnet("2001:db8:1:2::10", "203.0.113.10") == Mismatch(
        "ip", "2001:db8:1:2::/64", "203.0.113.10"
    )
    # A /0 of the other family still isn't this family.
    assert subnet("2001:db8:1:2::10", "203.0.113.10", v6=0) is not None


@pytest.mark.parametrize("mode", ["exact", "subnet"])
def test_an_unparsable_current_address_mismatches(mode: str) -> None:
    assert ip_mismatch("203.0.113.10", None, mode, 24, 64) == Mismatch(
        "ip", "203.0.113.10", "unknown"
    )


@pytest.mark.parametrize("mode", ["exact", "subnet"])
def test_a_session_bound_to_no_address_mismatches(mode: str) -> None:
    # A login from an address that couldn't be parsed binds to none: fail closed.
    assert ip_mismatch("", "203.0.113.10", mode, 24, 64) == Mismatch(
        "ip", "unbound", "203.0.113.10"
    )


def test_a_corrupt_bound_address_mismatches() -> None:
    assert subnet("not-an-address", "203.0.113.10") == Mismatch(
        "ip", "not-an-address", "203.0.113.10"
    )


# -- user agents ---------------------------------------------------------------------------


def bound_to(user_agent: str) -> SessionMeta:
    """The meta of a session bound to ``user_agent``, as ``bind_client`` records it."""
    summary = summarize_user_agent(user_agent)
    return SessionMeta(
        user_id="7",
        ua_digest=user_agent_digest(user_agent),
        user_agent=user_agent[:USER_AGENT_MAX_LENGTH],
        browser=summary.browser,
        os=summary.os,
        device=summary.device,
    )


def test_real_user_agents_are_summarized() -> None:
    assert summarize_user_agent(CHROME_120_WINDOWS) == UserAgentSummary(
        "Chrome", "Windows", "Other"
    )
    assert summarize_user_agent(FIREFOX_121_WINDOWS) == UserAgentSummary(
        "Firefox", "Windows", "Other"
    )
    assert summarize_user_agent(SAFARI_IPHONE) == UserAgentSummary("Mobile Safari", "iOS", "iPhone")
    assert str(summarize_user_agent("")) == "Other / Other / Other"


@pytest.mark.parametrize("mode", ["exact", "family"])
def test_the_same_user_agent_matches(mode: str) -> None:
    assert user_agent_mismatch(bound_to(CHROME_120_WINDOWS), CHROME_120_WINDOWS, mode) is None


def test_a_browser_update_keeps_the_session_in_family_mode() -> None:
    assert user_agent_mismatch(bound_to(CHROME_119_WINDOWS), CHROME_120_WINDOWS, "family") is None


def test_a_browser_update_ends_the_session_in_exact_mode() -> None:
    assert user_agent_mismatch(bound_to(CHROME_119_WINDOWS), CHROME_120_WINDOWS, "exact") == (
        Mismatch("user_agent", CHROME_119_WINDOWS, CHROME_120_WINDOWS)
    )


@pytest.mark.parametrize(
    ("bound", "current", "expected", "actual"),
    [
        (
            CHROME_120_WINDOWS,
            FIREFOX_121_WINDOWS,
            "Chrome / Windows / Other",
            "Firefox / Windows / Other",
        ),
        (
            CHROME_120_WINDOWS,
            SAFARI_IPHONE,
            "Chrome / Windows / Other",
            "Mobile Safari / iOS / iPhone",
        ),
        (CHROME_120_WINDOWS, CHROME_120_MAC, "Chrome / Windows / Other", "Chrome / Mac OS X / Mac"),
        (CHROME_120_WINDOWS, "", "Chrome / Windows / Other", "Other / Other / Other"),
        ("", CHROME_120_WINDOWS, "Other / Other / Other", "Chrome / Windows / Other"),
    ],
    ids=["firefox-vs-chrome", "desktop-vs-iphone", "windows-vs-mac", "to-empty", "from-empty"],
)
def test_another_browser_os_or_device_mismatches(
    bound: str, current: str, expected: str, actual: str
) -> None:
    assert user_agent_mismatch(bound_to(bound), current, "family") == Mismatch(
        "user_agent", expected, actual
    )


def test_an_empty_user_agent_matches_itself() -> None:
    assert user_agent_mismatch(bound_to(""), "", "family") is None
    assert user_agent_mismatch(bound_to(""), "", "exact") is None


@pytest.mark.parametrize("current", [SAFARI_IPHONE, "", HUGE])
def test_off_never_mismatches_user_agents(current: str) -> None:
    assert user_agent_mismatch(bound_to(CHROME_120_WINDOWS), current, "off") is None


def test_a_huge_user_agent_is_parsed_from_its_beginning_only() -> None:
    assert summarize_user_agent(HUGE) == summarize_user_agent(CHROME_120_WINDOWS)
    assert user_agent_mismatch(bound_to(HUGE), HUGE, "family") is None
    assert user_agent_mismatch(bound_to(CHROME_120_WINDOWS), HUGE, "family") is None
    assert user_agent_mismatch(bound_to(HUGE), SAFARI_IPHONE, "family") is not None


def test_a_family_cut_from_the_header_is_cut_to_the_stored_length() -> None:
    # The parser takes this device family from the header: as long as the client makes it.
    longer = LONG_DEVICE.replace("x" * 300, "x" * 400)

    summary = summarize_user_agent(LONG_DEVICE)

    assert summary.device == ("Samsung " + "x" * 300)[:FAMILY_MAX_LENGTH]
    assert user_agent_mismatch(bound_to(LONG_DEVICE), longer, "family") is None


def test_a_huge_user_agent_is_reported_cut_to_the_stored_length() -> None:
    mismatch = user_agent_mismatch(bound_to(CHROME_120_WINDOWS), HUGE, "exact")

    assert mismatch is not None
    assert mismatch.actual == HUGE[:USER_AGENT_MAX_LENGTH]


def test_the_parse_cache_is_keyed_by_the_cut_user_agent() -> None:
    # Huge, ever-changing headers can't fill memory: what is cached is at most
    # USER_AGENT_MAX_LENGTH characters, whatever the header's size.
    unique = f"{CHROME_120_WINDOWS} {uuid.uuid4().hex} "
    huge = unique + "x" * 8192
    before = binding._summarize.cache_info()

    summarize_user_agent(huge)
    summarize_user_agent(huge[:USER_AGENT_MAX_LENGTH] + "different tail")

    after = binding._summarize.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert after.maxsize is not None


def test_the_user_agent_is_parsed_only_when_its_digest_differs() -> None:
    # Bound to this very header, but with families that no parse of it gives: only a
    # parse could tell them apart, and with the same digest there must be none.
    user_agent = f"{CHROME_120_WINDOWS} {uuid.uuid4().hex}"  # never parsed before
    meta = SessionMeta(
        user_id="7",
        ua_digest=user_agent_digest(user_agent),
        browser="Firefox",
        os="Linux",
        device="Other",
    )
    before = binding._summarize.cache_info()

    assert user_agent_mismatch(meta, user_agent, "family") is None

    after = binding._summarize.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)

    assert user_agent_mismatch(meta, user_agent + " changed", "family") is not None
    assert binding._summarize.cache_info().misses == after.misses + 1
