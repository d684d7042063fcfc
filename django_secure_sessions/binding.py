"""Client identification: the client's IP address and a summary of its user agent.

Pure functions, no I/O: the middleware's sync and async paths and the login handler
share them, and tests call them directly.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from django.http import HttpRequest
from user_agents import parse as parse_user_agent

from .conf import conf

if TYPE_CHECKING:
    from .backends.base import SessionMeta

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Stored for display only (the digest is what binding compares), so a hostile 8 KB
# header costs the store no more than this.
USER_AGENT_MAX_LENGTH: Final = 512
# The longest browser, OS or device family kept (the size of the db engine's columns).
# The parser's families are mostly names it knows, but some are cut from the header
# itself ("SAMSUNG <model>"), as long as the client makes them.
FAMILY_MAX_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class UserAgentSummary:
    """The families that ``BIND_USER_AGENT = "family"`` compares."""

    browser: str
    os: str
    device: str

    def __str__(self) -> str:
        return f"{self.browser} / {self.os} / {self.device}"


def user_agent_digest(user_agent: str) -> str:
    """A short digest of the raw header, to notice a change without parsing it."""
    return hashlib.sha256(user_agent.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def summarize_user_agent(user_agent: str) -> UserAgentSummary:
    """Parse a user agent into browser, OS and device families.

    Parsing runs dozens of regexes, so results are cached. The input is cut to the
    length we store *before* it becomes a cache key, and the cache is bounded, so an
    attacker sending huge or ever-changing headers costs a bounded amount of memory.
    """
    return _summarize(user_agent[:USER_AGENT_MAX_LENGTH])


@lru_cache(maxsize=512)
def _summarize(user_agent: str) -> UserAgentSummary:
    parsed = parse_user_agent(user_agent)
    # Cut to what a session keeps: a longer family failed the login's write on
    # PostgreSQL (a 503, logged as a storage outage) for a header any client can send.
    # Both sides of a "family" comparison are cut alike, so it still compares equals.
    return UserAgentSummary(
        browser=(parsed.browser.family or "Other")[:FAMILY_MAX_LENGTH],
        os=(parsed.os.family or "Other")[:FAMILY_MAX_LENGTH],
        device=(parsed.device.family or "Other")[:FAMILY_MAX_LENGTH],
    )


# The longest address text a session keeps (the size of the db engine's ``ip`` column).
# An IPv6 address takes at most 45 characters, but the zone of a scoped one
# (``fe80::1%eth0``) has no bound of its own.
IP_MAX_LENGTH: Final = 64


def normalize_ip(value: str) -> str | None:
    """The canonical text of an IP address, or None when it is not one.

    IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) become plain IPv4, so a dual-stack
    server sees one client as one address. An address longer than ``IP_MAX_LENGTH`` (a
    scoped address with a zone of hundreds of characters, sent in ``X-Forwarded-For``) is
    none either: a session can't be bound to it, and storing it failed the login's write
    on PostgreSQL, a 503 reported as a storage outage. As for any unparsable address, the
    session is then bound to no address, which no request matches (fail closed).
    """
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    text = str(address)
    return text if len(text) <= IP_MAX_LENGTH else None


def parse_forwarded_hop(hop: str) -> str | None:
    """One address of ``X-Forwarded-For``, without brackets, quotes or port; or None.

    Accepts ``203.0.113.7``, ``203.0.113.7:4711``, ``2001:db8::1`` and
    ``[2001:db8::1]:443``; anything else (``unknown``, obfuscated names) is None.
    """
    hop = hop.strip().strip('"')
    if hop.startswith("["):
        end = hop.find("]")
        return None if end == -1 else normalize_ip(hop[1:end])
    if hop.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        hop = hop.partition(":")[0]
    return normalize_ip(hop)


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in trusted)


def resolve_client_ip(
    remote_addr: str, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client's address, or None when it can't be told (which never matches).

    ``X-Forwarded-For`` is believed only when the peer is a trusted proxy, and then only
    as far as trusted proxies vouch for it: read from the right, the first address that
    is not a trusted proxy is the client. Anything to its left was written by the client
    itself and may be forged, so it is never looked at. A hop that is not an address
    where one is needed makes the answer None: fail closed.
    """
    peer = normalize_ip(remote_addr)
    if peer is None or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    address: str | None = peer
    for hop in reversed(forwarded_for.split(",")):
        address = parse_forwarded_hop(hop)
        if address is None or not _is_trusted(address, trusted):
            return address
    # Every hop is a trusted proxy: the leftmost is as close to a client as there is.
    return address


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for ``request``, per ``SECURE_SESSIONS_TRUSTED_PROXIES``."""
    meta = request.META
    return resolve_client_ip(
        str(meta.get("REMOTE_ADDR", "")),
        meta.get("HTTP_X_FORWARDED_FOR"),
        conf.TRUSTED_PROXIES,
    )


def request_user_agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A request that doesn't match its session's binding; safe to signal and log."""

    kind: str  # "ip" or "user_agent"
    expected: str
    actual: str


def ip_mismatch(
    bound: str, current: str | None, mode: str, ipv4_prefix: int, ipv6_prefix: int
) -> Mismatch | None:
    """None when ``current`` matches the address the session is bound to."""
    if mode == "off":
        return None
    if current is None or not bound:
        # An address we couldn't parse, or a session never bound: fail closed.
        return Mismatch("ip", bound or "unbound", current or "unknown")
    if mode == "exact":
        return None if bound == current else Mismatch("ip", bound, current)
    try:
        bound_address = ipaddress.ip_address(bound)
        address = ipaddress.ip_address(current)
    except ValueError:
        return Mismatch("ip", bound, current)
    # The network is sized by the family of the bound address: an IPv4 client that
    # comes back over IPv6 (or the reverse) is in another network, whatever the prefix.
    prefix = ipv4_prefix if isinstance(bound_address, ipaddress.IPv4Address) else ipv6_prefix
    network = ipaddress.ip_network((bound_address, prefix), strict=False)
    return None if address in network else Mismatch("ip", str(network), current)


def user_agent_mismatch(meta: SessionMeta, user_agent: str, mode: str) -> Mismatch | None:
    """None when ``user_agent`` matches the one the session is bound to.

    The header is parsed only when its digest differs from the bound one: a browser
    sends the same string on every request, so that is rare.
    """
    if mode == "off" or hmac.compare_digest(user_agent_digest(user_agent), meta.ua_digest):
        return None
    if mode == "exact":
        return Mismatch("user_agent", meta.user_agent, user_agent[:USER_AGENT_MAX_LENGTH])
    bound = UserAgentSummary(meta.browser, meta.os, meta.device)
    current = summarize_user_agent(user_agent)
    return None if current == bound else Mismatch("user_agent", str(bound), str(current))
