"""Client identification: the client's IP address and a summary of its user agent.

Pure functions, no I/O: the middleware's sync and async paths and the login handler
share them, and tests call them directly.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from django.http import HttpRequest
from user_agents import parse as parse_user_agent

# Stored for display only (the digest is what binding compares), so a hostile 8 KB
# header costs the store no more than this.
USER_AGENT_MAX_LENGTH: Final = 512


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


@lru_cache(maxsize=512)
def summarize_user_agent(user_agent: str) -> UserAgentSummary:
    """Parse a user agent into browser, OS and device families.

    Parsing runs dozens of regexes, so results are cached; the cache is bounded and the
    input is cut to the length we store, so an attacker sending huge or ever-changing
    headers costs a bounded amount of memory.
    """
    parsed = parse_user_agent(user_agent[:USER_AGENT_MAX_LENGTH])
    return UserAgentSummary(
        browser=parsed.browser.family or "Other",
        os=parsed.os.family or "Other",
        device=parsed.device.family or "Other",
    )


def normalize_ip(value: str) -> str | None:
    """The canonical text of an IP address, or None when it is not one.

    IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) become plain IPv4, so a dual-stack
    server sees one client as one address.
    """
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the server saw it (``REMOTE_ADDR``), or None."""
    return normalize_ip(str(request.META.get("REMOTE_ADDR", "")))
