"""Settings of django-secure-sessions, read at use time.

Every setting is ``SECURE_SESSIONS_<NAME>`` in the project's settings. The ``conf``
object reads them on each access, so ``override_settings`` works, and never writes
anything into ``django.conf.settings``.

Each setting has one validator, shared by the system checks (which report a wrong
value with the setting's name and a hint) and by the accessors. A wrong value that
slipped past the checks (they don't run under every server) never crashes a request:
the accessor logs an error and uses the default, which is the secure choice.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Final, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger("django_secure_sessions")

PREFIX: Final = "SECURE_SESSIONS_"

_T = TypeVar("_T")

BIND_IP_CHOICES: Final = ("off", "exact", "subnet")
BIND_USER_AGENT_CHOICES: Final = ("off", "exact", "family")
BINDING_ACTION_CHOICES: Final = ("logout", "report")

PASSIVE_URLS_FLAGS: Final = 0
FORBIDDEN_KEYS_FLAGS: Final = re.IGNORECASE

# Matched case-insensitively anywhere in a session key. Django's own keys are never
# matched against these (see backends.base.DJANGO_SESSION_KEYS).
DEFAULT_FORBIDDEN_KEYS: Final = (
    r"passw(or)?d",
    r"passphrase",
    r"secret",
    r"private[_-]?key",
    r"api[_-]?key",
    r"card[_-]?(number|num|no)",
    r"credit[_-]?card",
    r"(?<![a-z])pan(?![a-z])",  # a card number, also in card_pan
    r"cvv",
    r"cvc",
    r"(?<![a-z])ssn(?![a-z])",
    r"social[_-]?security",
)


@dataclass(frozen=True)
class Setting:
    """One setting: its name without the prefix, its default and its validator.

    ``validate`` returns ``None`` for a good value, otherwise a sentence saying what
    is wrong; ``hint`` says how to fix it.
    """

    name: str
    default: Any
    validate: Callable[[Any], str | None]
    hint: str

    @property
    def full_name(self) -> str:
        return PREFIX + self.name


def _is_int(value: Any) -> bool:
    # bool is an int subclass: True is not "1 second".
    return isinstance(value, int) and not isinstance(value, bool)


def _to_seconds(value: int | timedelta) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else value


def _duration_problem(value: Any, *, allow_none: bool, allow_zero: bool = False) -> str | None:
    if value is None:
        return None if allow_none else "must not be None"
    if isinstance(value, timedelta):
        # Judged in whole seconds, as used: timedelta(milliseconds=500) is 0, not positive.
        seconds = _to_seconds(value)
    elif _is_int(value):
        seconds = value
    else:
        return f"must be a number of seconds or a timedelta, not {type(value).__name__}"
    if seconds < 0 or (seconds == 0 and not allow_zero):
        return f"must be {'positive' if not allow_zero else 'zero or more'}, not {value!r}"
    return None


def _choice_problem(choices: Sequence[str]) -> Callable[[Any], str | None]:
    def validate(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}"
        return None

    return validate


def _int_problem(
    low: int, high: int | None, *, allow_none: bool = False
) -> Callable[[Any], str | None]:
    def validate(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if not _is_int(value):
            return f"must be an integer, not {type(value).__name__}"
        if high is not None and not low <= value <= high:
            return f"must be between {low} and {high}, not {value}"
        if value < low:
            return f"must be at least {low}, not {value}"
        return None

    return validate


def _string_list_problem(item_problem: Callable[[str], str | None]) -> Callable[[Any], str | None]:
    def validate(value: Any) -> str | None:
        # A lone string is a classic mistake: iterating it gives characters.
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return f"must be a list or tuple of strings, not {type(value).__name__}"
        for item in value:
            if not isinstance(item, str):
                return f"must contain only strings, found {item!r}"
            if problem := item_problem(item):
                return problem
        return None

    return validate


# What compiling a pattern may raise: re.error, but also OverflowError (huge repeat
# counts), RecursionError (deep nesting) and, when warnings are errors, FutureWarning.
_REGEX_ERRORS: Final = (re.error, OverflowError, RecursionError, Warning)


def _regex_problem(item: str) -> str | None:
    try:
        re.compile(item)
    except _REGEX_ERRORS as exc:
        return f"contains an invalid regular expression {item!r}: {exc}"
    return None


def _regex_list_problem(flags: int) -> Callable[[Any], str | None]:
    items_problem = _string_list_problem(_regex_problem)

    def validate(value: Any) -> str | None:
        if problem := items_problem(value):
            return problem
        # The accessor joins the patterns into one regex, which some valid patterns
        # refuse: inline flags such as (?i) not at the start, a group name used twice.
        try:
            _compile(tuple(value), flags)
        except _REGEX_ERRORS as exc:
            return f"cannot be joined into one regular expression: {exc}"
        return None

    return validate


def _dotted_path_problem(value: Any) -> str | None:
    # Only the shape: importing it here could run project code during the checks.
    if not isinstance(value, str) or not all(part.isidentifier() for part in value.split(".")):
        return f"must be the dotted path of a class, not {value!r}"
    if "." not in value:
        return f"must be a dotted path (module.Class), not {value!r}"
    return None


def _network_problem(item: str) -> str | None:
    try:
        ipaddress.ip_network(item, strict=False)
    except ValueError:
        return f"contains {item!r}, which is not an IP address or network"
    return None


def _field_name_problem(item: str) -> str | None:
    return None if item.isidentifier() else f"contains {item!r}, which is not a field name"


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "IDLE_TIMEOUT",
        1800,
        lambda v: _duration_problem(v, allow_none=True),
        "Use a number of seconds (e.g. 1800), a timedelta, or None to disable.",
    ),
    Setting(
        "ABSOLUTE_TIMEOUT",
        43200,
        lambda v: _duration_problem(v, allow_none=True),
        "Use a number of seconds (e.g. 43200), a timedelta, or None to disable.",
    ),
    Setting(
        "ACTIVITY_RESOLUTION",
        60,
        lambda v: _duration_problem(v, allow_none=False, allow_zero=True),
        "Use a number of seconds (e.g. 60) or a timedelta; 0 writes on every request.",
    ),
    Setting(
        "BIND_IP",
        "subnet",
        _choice_problem(BIND_IP_CHOICES),
        'Use "off", "exact" or "subnet".',
    ),
    Setting("IPV4_PREFIX", 24, _int_problem(0, 32), "Use a prefix length from 0 to 32."),
    Setting("IPV6_PREFIX", 64, _int_problem(0, 128), "Use a prefix length from 0 to 128."),
    Setting(
        "BIND_USER_AGENT",
        "family",
        _choice_problem(BIND_USER_AGENT_CHOICES),
        'Use "off", "exact" or "family".',
    ),
    Setting(
        "BINDING_ACTION",
        "logout",
        _choice_problem(BINDING_ACTION_CHOICES),
        'Use "logout" or "report".',
    ),
    Setting(
        "TRUSTED_PROXIES",
        (),
        _string_list_problem(_network_problem),
        'Use a list of CIDRs, e.g. ["10.0.0.0/8"]; a single string must be wrapped in a list.',
    ),
    Setting(
        "INVALIDATE_ON",
        ("password", "email", "is_active"),
        _string_list_problem(_field_name_problem),
        'Use a list of user model field names, e.g. ["password", "email"].',
    ),
    Setting(
        "MAX_PER_USER",
        None,
        _int_problem(1, None, allow_none=True),
        "Use a positive integer, or None for no limit.",
    ),
    Setting(
        "REAUTH_MAX_AGE",
        300,
        lambda v: _duration_problem(v, allow_none=False),
        "Use a positive number of seconds (e.g. 300) or a timedelta.",
    ),
    Setting(
        "REAUTH_MAX_FAILURES",
        5,
        _int_problem(1, None),
        "Use a positive integer: failed re-authentications that end the session.",
    ),
    Setting(
        "REAUTH_USER_MAX_FAILURES",
        20,
        _int_problem(1, None, allow_none=True),
        "Use a positive integer: re-authentication attempts of one user, across all of "
        "their sessions, per window; or None for no such limit.",
    ),
    Setting(
        "REAUTH_USER_FAILURE_WINDOW",
        900,
        lambda v: _duration_problem(v, allow_none=False),
        "Use a positive number of seconds (e.g. 900) or a timedelta.",
    ),
    Setting(
        "REAUTH_FORM",
        "django_secure_sessions.forms.ReauthForm",
        _dotted_path_problem,
        'Use the dotted path of a form class, e.g. "myproject.forms.ConfirmForm".',
    ),
    Setting("MAX_SIZE", 16384, _int_problem(1, None), "Use a positive number of bytes."),
    Setting(
        "PASSIVE_URLS",
        (),
        _regex_list_problem(PASSIVE_URLS_FLAGS),
        r'Use a list of path regexes, e.g. [r"^/api/poll/"].',
    ),
    Setting(
        "REDIS_CLUSTER",
        False,
        lambda v: None if isinstance(v, bool) else f"is {v!r}, not True or False",
        "Use True to reach the Redis engine's storage as a Redis Cluster (its startup "
        "nodes are the LOCATION of the cache named by SESSION_CACHE_ALIAS), or False.",
    ),
    Setting(
        "FORBIDDEN_KEYS",
        DEFAULT_FORBIDDEN_KEYS,
        _regex_list_problem(FORBIDDEN_KEYS_FLAGS),
        "Use a list of regexes matched case-insensitively against session keys.",
    ),
)

_BY_NAME: Final = {s.name: s for s in SETTINGS}


@lru_cache(maxsize=64)
def _warn_invalid(name: str, problem: str) -> None:
    # lru_cache makes this log once per distinct problem, not once per request.
    logger.error("%s%s %s; using its default. Run manage.py check.", PREFIX, name, problem)


def _value(name: str) -> Any:
    setting = _BY_NAME[name]
    value = getattr(settings, setting.full_name, setting.default)
    if (problem := setting.validate(value)) is not None:
        _warn_invalid(name, problem)
        return setting.default
    return value


# Validated (and derived: seconds, compiled regexes) values by setting name, so a
# setting is checked once, not on every request; override_settings empties it.
_resolved: dict[str, Any] = {}


@receiver(setting_changed)
def _forget_resolved(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(PREFIX):
        _resolved.clear()


def _resolve(name: str, derive: Callable[[Any], _T]) -> _T:
    try:
        cached: _T = _resolved[name]
    except KeyError:
        cached = _resolved[name] = derive(_value(name))
    return cached


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_seconds(value: Any) -> int | None:
    return None if value is None else _to_seconds(value)


def _compile(patterns: tuple[str, ...], flags: int) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags) if patterns else None


def _networks(cidrs: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


class Conf:
    """Typed, validated access to the settings; see the module docstring."""

    @property
    def IDLE_TIMEOUT(self) -> int | None:
        return _resolve("IDLE_TIMEOUT", _optional_seconds)

    @property
    def ABSOLUTE_TIMEOUT(self) -> int | None:
        return _resolve("ABSOLUTE_TIMEOUT", _optional_seconds)

    @property
    def ACTIVITY_RESOLUTION(self) -> int:
        return _resolve("ACTIVITY_RESOLUTION", _to_seconds)  # its validator refuses None

    @property
    def BIND_IP(self) -> str:
        return _resolve("BIND_IP", str)

    @property
    def IPV4_PREFIX(self) -> int:
        return _resolve("IPV4_PREFIX", int)

    @property
    def IPV6_PREFIX(self) -> int:
        return _resolve("IPV6_PREFIX", int)

    @property
    def BIND_USER_AGENT(self) -> str:
        return _resolve("BIND_USER_AGENT", str)

    @property
    def BINDING_ACTION(self) -> str:
        return _resolve("BINDING_ACTION", str)

    @property
    def TRUSTED_PROXIES(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _resolve("TRUSTED_PROXIES", _networks)

    @property
    def INVALIDATE_ON(self) -> tuple[str, ...]:
        return _resolve("INVALIDATE_ON", tuple)

    @property
    def MAX_PER_USER(self) -> int | None:
        return _resolve("MAX_PER_USER", _optional_int)

    @property
    def REAUTH_MAX_AGE(self) -> int:
        return _resolve("REAUTH_MAX_AGE", _to_seconds)  # its validator refuses None

    @property
    def REAUTH_MAX_FAILURES(self) -> int:
        return _resolve("REAUTH_MAX_FAILURES", int)

    @property
    def REAUTH_USER_MAX_FAILURES(self) -> int | None:
        return _resolve("REAUTH_USER_MAX_FAILURES", _optional_int)

    @property
    def REAUTH_USER_FAILURE_WINDOW(self) -> int:
        return _resolve("REAUTH_USER_FAILURE_WINDOW", _to_seconds)  # its validator refuses None

    @property
    def REAUTH_FORM(self) -> str:
        return _resolve("REAUTH_FORM", str)

    @property
    def MAX_SIZE(self) -> int:
        return _resolve("MAX_SIZE", int)

    @property
    def PASSIVE_URLS(self) -> re.Pattern[str] | None:
        """One compiled regex matching any passive path, or None when there are none."""
        return _resolve("PASSIVE_URLS", lambda v: _compile(tuple(v), PASSIVE_URLS_FLAGS))

    @property
    def REDIS_CLUSTER(self) -> bool:
        return _resolve("REDIS_CLUSTER", bool)

    @property
    def FORBIDDEN_KEYS(self) -> re.Pattern[str] | None:
        """One compiled, case-insensitive regex matching any forbidden key."""
        return _resolve("FORBIDDEN_KEYS", lambda v: _compile(tuple(v), FORBIDDEN_KEYS_FLAGS))


conf = Conf()
