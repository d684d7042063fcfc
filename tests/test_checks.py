"""System checks (django_secure_sessions.checks) and the validated settings behind them."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import types
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core import checks as django_checks
from django.core.checks import CheckMessage, run_checks
from django.test import override_settings
from django.utils.module_loading import import_string
from pytest_django import Settings as SettingsWrapper

from django_secure_sessions import checks
from django_secure_sessions import conf as conf_module
from django_secure_sessions.conf import SETTINGS, conf

BY_NAME = {setting.name: setting for setting in SETTINGS}
CHECKS_SOURCE = Path(checks.__file__).read_text(encoding="utf-8")
CHECKS_DOC = Path(__file__).parents[1] / "docs" / "reference" / "checks.rst"
SETTINGS_DOC = Path(__file__).parents[1] / "docs" / "reference" / "settings.rst"
ID_PATTERN = re.compile(r"secure_sessions\.[EW]\d{3}")

OUR_MIDDLEWARE = "django_secure_sessions.middleware.SecureSessionMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
REDIS_ENGINE = "django_secure_sessions.backends.redis"


@pytest.fixture(autouse=True)
def default_redis_mode(settings: SettingsWrapper) -> None:
    """The checks are tested from the default settings; the cluster mode of the suite
    (tests/settings.py) sets SECURE_SESSIONS_REDIS_CLUSTER. (Set to its default rather
    than deleted: a deleted setting comes back without a setting_changed signal, and the
    values derived from it would be stale.)"""
    settings.SECURE_SESSIONS_REDIS_CLUSTER = False


def messages(*, deploy: bool = False) -> list[CheckMessage]:
    """The messages of this app, from every registered check, as manage.py check runs them."""
    return [
        message
        for message in run_checks(include_deployment_checks=deploy)
        if message.id and message.id.startswith("secure_sessions.")
    ]


def only(check_id: str, *, deploy: bool = False) -> CheckMessage:
    """The one message there is, asserting it has ``check_id``, its level and a hint."""
    found = messages(deploy=deploy)
    assert [message.id for message in found] == [check_id], found
    message = found[0]
    expected_level = django_checks.ERROR if ".E" in check_id else django_checks.WARNING
    assert message.level == expected_level
    assert message.hint
    return message


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> None:
    """Make ``name`` importable, holding ``attributes``, for this test only."""
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture
def deploy_ready(settings: SettingsWrapper) -> SettingsWrapper:
    """The test settings plus what a production site sets; the deploy checks are silent."""
    settings.SESSION_COOKIE_SECURE = True
    return settings


# The good configuration.


def test_test_settings_are_silent() -> None:
    assert messages() == []


def test_deploy_ready_settings_are_silent(deploy_ready: SettingsWrapper) -> None:
    assert messages(deploy=True) == []


def test_deploy_checks_only_run_with_deploy(settings: SettingsWrapper) -> None:
    settings.SESSION_COOKIE_DOMAIN = ".example.com"
    assert messages() == []
    assert [message.id for message in messages(deploy=True)] == ["secure_sessions.W013"]


class ProjectSessionMiddleware(SessionMiddleware):
    """A project's own session middleware, which Django's cookie checks don't look for."""


@pytest.fixture
def without_djangos_cookie_checks(deploy_ready: SettingsWrapper) -> SettingsWrapper:
    """No django.contrib.sessions and a SessionMiddleware subclass: Django's deploy checks
    of the cookie flags don't run, so ours do."""
    deploy_ready.INSTALLED_APPS = [
        app for app in deploy_ready.INSTALLED_APPS if app != "django.contrib.sessions"
    ]
    deploy_ready.MIDDLEWARE = [
        f"{__name__}.ProjectSessionMiddleware" if entry == SESSION_MIDDLEWARE else entry
        for entry in deploy_ready.MIDDLEWARE
    ]
    return deploy_ready


# SESSION_ENGINE: W001, E005.


def test_django_engine_is_w001(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    message = only("secure_sessions.W001")
    assert "SESSION_ENGINE" in message.msg
    assert "'django.contrib.sessions.backends.cache'" in message.msg


@pytest.mark.parametrize(
    "engine", ["django_secure_sessions.backends.db", "django_secure_sessions.backends.redis"]
)
def test_our_engines_are_silent(settings: SettingsWrapper, engine: str) -> None:
    settings.SESSION_ENGINE = engine
    assert messages() == []


def test_engine_subclassing_ours_is_silent(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_secure_sessions.backends.db import SessionStore

    fake_module(
        monkeypatch, "project_engine", SessionStore=type("SessionStore", (SessionStore,), {})
    )
    settings.SESSION_ENGINE = "project_engine"
    assert messages() == []


@pytest.mark.parametrize("engine", ["no_such_engine", "django.contrib.sessions"])
def test_unimportable_engine_is_e005(settings: SettingsWrapper, engine: str) -> None:
    settings.SESSION_ENGINE = engine
    message = only("secure_sessions.E005")
    assert f"SESSION_ENGINE {engine!r}" in message.msg


def test_engine_raising_on_import_is_e005(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(name: str) -> Any:
        raise RuntimeError("boom")

    fake_module(monkeypatch, "broken_engine", __getattr__=explode)
    settings.SESSION_ENGINE = "broken_engine"
    assert "RuntimeError: boom" in only("secure_sessions.E005").msg


def test_engine_of_wrong_type_is_e005(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = 42
    assert "not int" in only("secure_sessions.E005").msg


# SECURE_SESSIONS_REDIS_CLUSTER: the cache's LOCATION names the nodes: E007.


def cluster_cache(**entry: Any) -> dict[str, Any]:
    return {"default": {"BACKEND": "django_redis.cache.RedisCache", **entry}}


def test_redis_cluster_with_node_urls_is_silent(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = REDIS_ENGINE
    settings.SECURE_SESSIONS_REDIS_CLUSTER = True
    settings.CACHES = cluster_cache(
        LOCATION=["redis://10.0.0.1:6379", "rediss://10.0.0.2:6379/0"], KEY_PREFIX="shop"
    )
    assert messages() == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"LOCATION": "redis://10.0.0.1:6379/3"}, "names a database (a cluster has only 0)"),
        ({"LOCATION": "10.0.0.1:6379"}, "is not a redis:// URL of a node"),
        ({"LOCATION": [6379]}, "is not a URL or a list of URLs"),
        (
            {"LOCATION": "redis://10.0.0.1:6379", "KEY_PREFIX": "{shop}"},
            "has a brace, which Redis Cluster reads as a hash tag",
        ),
    ],
)
def test_redis_cluster_with_a_bad_cache_is_e007(
    settings: SettingsWrapper, entry: dict[str, Any], problem: str
) -> None:
    settings.SESSION_ENGINE = REDIS_ENGINE
    settings.SECURE_SESSIONS_REDIS_CLUSTER = True
    settings.CACHES = cluster_cache(**entry)

    message = only("secure_sessions.E007")

    assert message.msg.startswith("SECURE_SESSIONS_REDIS_CLUSTER is True, but in CACHES")
    assert message.msg.endswith(f"{problem}.")


# The Redis engine needs django-redis: E006.


def test_redis_engine_with_django_redis_cache_is_silent(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = REDIS_ENGINE
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert messages() == []


def test_redis_engine_with_subclass_of_django_redis_cache_is_silent(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_cache = import_string("django_redis.cache.RedisCache")
    subclass = type("ProjectRedisCache", (redis_cache,), {})
    fake_module(monkeypatch, "project_cache", ProjectRedisCache=subclass)
    settings.SESSION_ENGINE = REDIS_ENGINE
    settings.CACHES = {"default": {"BACKEND": "project_cache.ProjectRedisCache"}}
    assert messages() == []


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.locmem.LocMemCache",
    ],
)
def test_redis_engine_with_other_cache_is_e006(settings: SettingsWrapper, backend: Any) -> None:
    settings.SESSION_ENGINE = REDIS_ENGINE
    settings.CACHES = {"default": {"BACKEND": backend}}
    message = only("secure_sessions.E006")
    assert f"CACHES['default'] has BACKEND {backend!r}" in message.msg
    assert "django-redis" in str(message.hint)


def test_redis_engine_without_the_session_cache_is_e006(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = REDIS_ENGINE
    settings.SESSION_CACHE_ALIAS = "sessions"
    assert "CACHES has no 'sessions' entry" in only("secure_sessions.E006").msg


def test_redis_engine_without_django_redis_is_e006(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SESSION_ENGINE = REDIS_ENGINE
    # A None entry in sys.modules makes the import fail. Called directly: Django's own
    # cache checks would fail first, creating the cache.
    monkeypatch.setitem(sys.modules, "django_redis.cache", None)
    found = checks.check_configuration(None)
    assert [message.id for message in found] == ["secure_sessions.E006"]
    assert "django-redis is not installed" in found[0].msg


def test_db_engine_ignores_caches(settings: SettingsWrapper) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert messages() == []


# MIDDLEWARE: E001, E002.


def without(entry: str, middleware: list[str]) -> list[str]:
    assert entry in middleware
    return [m for m in middleware if m != entry]


def test_missing_middleware_is_e001(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = without(OUR_MIDDLEWARE, settings.MIDDLEWARE)
    message = only("secure_sessions.E001")
    assert message.msg.startswith(f"{OUR_MIDDLEWARE} is not in MIDDLEWARE")
    assert OUR_MIDDLEWARE in str(message.hint)


def test_subclass_of_our_middleware_is_silent(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_secure_sessions.middleware import SecureSessionMiddleware

    subclass = type("ProjectMiddleware", (SecureSessionMiddleware,), {})
    fake_module(monkeypatch, "project_middleware", ProjectMiddleware=subclass)
    settings.MIDDLEWARE = [
        "project_middleware.ProjectMiddleware" if entry == OUR_MIDDLEWARE else entry
        for entry in settings.MIDDLEWARE
    ]
    assert messages() == []


def test_broken_middleware_entries_are_not_ours_to_report(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = ["no.such.Middleware", *settings.MIDDLEWARE, "also.broken"]
    assert messages() == []


def test_middleware_before_authentication_is_e002(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = [SESSION_MIDDLEWARE, OUR_MIDDLEWARE, AUTH_MIDDLEWARE]
    message = only("secure_sessions.E002")
    assert "comes before AuthenticationMiddleware" in message.msg
    assert f'after "{AUTH_MIDDLEWARE}"' in str(message.hint)


def test_missing_authentication_middleware_is_e002(settings: SettingsWrapper) -> None:
    settings.MIDDLEWARE = [SESSION_MIDDLEWARE, OUR_MIDDLEWARE]
    assert only("secure_sessions.E002").msg.startswith(f"{AUTH_MIDDLEWARE} is not in MIDDLEWARE")


class ProjectAuthenticationMiddleware(AuthenticationMiddleware):
    pass


def test_subclass_of_authentication_middleware_counts(settings: SettingsWrapper) -> None:
    project_auth = f"{__name__}.ProjectAuthenticationMiddleware"
    settings.MIDDLEWARE = [SESSION_MIDDLEWARE, project_auth, OUR_MIDDLEWARE]
    assert messages() == []
    settings.MIDDLEWARE = [SESSION_MIDDLEWARE, OUR_MIDDLEWARE, project_auth]
    assert "comes before" in only("secure_sessions.E002").msg


# SESSION_SERIALIZER: E003, W002.


class PickleSerializer:
    """Stands for a project's own pickle serializer, which a subclass hides by its name."""


class CompactSerializer(PickleSerializer):
    pass


@pytest.mark.parametrize(
    "serializer",
    [
        # Removed from Django in 5.0, still found in old settings files.
        "django.contrib.sessions.serializers.PickleSerializer",
        "project.serializers.SafePickler",
        f"{__name__}.CompactSerializer",
    ],
)
def test_pickle_serializer_is_e003(settings: SettingsWrapper, serializer: str) -> None:
    settings.SESSION_SERIALIZER = serializer
    message = only("secure_sessions.E003")
    assert message.msg.startswith(f"SESSION_SERIALIZER is {serializer!r}")
    assert "only ever use JSON" in str(message.hint)


def test_pickle_serializer_is_e003_whatever_the_engine(settings: SettingsWrapper) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.SESSION_SERIALIZER = "django.contrib.sessions.serializers.PickleSerializer"
    found = {message.id for message in messages()}
    assert found == {"secure_sessions.W001", "secure_sessions.E003"}


@pytest.mark.parametrize(
    "serializer",
    ["django.contrib.sessions.serializers.JSONSerializer", "django.core.signing.JSONSerializer"],
)
def test_json_serializer_is_silent(settings: SettingsWrapper, serializer: str) -> None:
    settings.SESSION_SERIALIZER = serializer
    assert messages() == []


def test_other_serializer_is_w002(settings: SettingsWrapper) -> None:
    settings.SESSION_SERIALIZER = "project.serializers.MsgPackSerializer"
    message = only("secure_sessions.W002")
    assert "SESSION_SERIALIZER is 'project.serializers.MsgPackSerializer'" in message.msg
    assert "ignore" in message.msg


def test_other_serializer_with_django_engine_is_not_w002(settings: SettingsWrapper) -> None:
    # Django's engine does use it: only the engine warning applies.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.SESSION_SERIALIZER = "project.serializers.MsgPackSerializer"
    assert only("secure_sessions.W001")


# SECURE_SESSIONS_* values: E004.

BAD_VALUES: dict[str, list[Any]] = {
    "IDLE_TIMEOUT": ["1800", True, -1, 0, 1.5, timedelta(seconds=-1), timedelta(milliseconds=500)],
    "ABSOLUTE_TIMEOUT": ["43200", False, -5, 0, [43200]],
    "ACTIVITY_RESOLUTION": [None, "60", -1, True],
    "BIND_IP": ["Subnet", "on", True, None, ""],
    "IPV4_PREFIX": [33, -1, "24", True, None, 24.0],
    "IPV6_PREFIX": [129, -1, "64"],
    "BIND_USER_AGENT": ["browser", None, False],
    "BINDING_ACTION": ["block", None, "LOGOUT"],
    "TRUSTED_PROXIES": [
        "10.0.0.0/8",  # a lone string, not a list
        ["10.0.0.0/33"],
        ["::1/129"],
        ["not-an-ip"],
        [10],
        None,
        {"10.0.0.0/8"},
    ],
    "INVALIDATE_ON": ["password", ["pass word"], [1], None],
    "MAX_PER_USER": [0, -1, "3", True],
    "REAUTH_MAX_AGE": [None, 0, "300", -1],
    "REAUTH_MAX_FAILURES": [0, -1, "5", None, True],
    "REAUTH_USER_MAX_FAILURES": [0, -1, "20", True],
    "REAUTH_USER_FAILURE_WINDOW": [None, 0, "900", -1, timedelta(milliseconds=500)],
    "REAUTH_FORM": [None, 1, "ReauthForm", "my forms.Form", "a..b", ["a.B"]],
    "MAX_SIZE": [0, -1, "16384", None, True],
    "REDIS_CLUSTER": [1, "yes", None, ["redis://127.0.0.1:7000"]],
    "PASSIVE_URLS": [
        "^/health/",
        ["("],
        [None],
        # Valid alone, but not once joined into one regex:
        ["(?i)^/poll/"],
        ["(?P<kind>a)", "(?P<kind>b)"],
    ],
    "FORBIDDEN_KEYS": ["password", ["[unclosed"], ["a{99999999999999999999}"]],
}

GOOD_VALUES: dict[str, list[Any]] = {
    "IDLE_TIMEOUT": [None, 300, timedelta(minutes=30)],
    "ABSOLUTE_TIMEOUT": [None, 1, timedelta(hours=12)],
    "ACTIVITY_RESOLUTION": [0, 30, timedelta(seconds=30)],
    "BIND_IP": ["off", "exact", "subnet"],
    "IPV4_PREFIX": [0, 16, 32],
    "IPV6_PREFIX": [0, 48, 128],
    "BIND_USER_AGENT": ["off", "exact", "family"],
    "BINDING_ACTION": ["logout", "report"],
    "TRUSTED_PROXIES": [[], ("10.0.0.0/8", "::1", "192.168.1.7/24")],
    "INVALIDATE_ON": [[], ("password",), ["email", "is_active", "is_staff"]],
    "MAX_PER_USER": [None, 1, 5],
    "REAUTH_MAX_AGE": [1, timedelta(minutes=5)],
    "REAUTH_MAX_FAILURES": [1, 10],
    "REAUTH_USER_MAX_FAILURES": [None, 1, 100],
    "REAUTH_USER_FAILURE_WINDOW": [1, 900, timedelta(hours=1)],
    "REAUTH_FORM": ["django_secure_sessions.forms.ReauthForm", "myproject.forms.ConfirmForm"],
    "MAX_SIZE": [1, 1_000_000],
    "REDIS_CLUSTER": [False, True],
    "PASSIVE_URLS": [[], [r"^/health/$", r"^/api/poll/(?P<id>\d+)/$"]],
    "FORBIDDEN_KEYS": [[], ["token"], ("access_token", r"\bpin\b")],
}


def test_every_setting_has_bad_and_good_values_under_test() -> None:
    assert set(BAD_VALUES) == set(BY_NAME)
    assert set(GOOD_VALUES) == set(BY_NAME)


def test_defaults_are_valid() -> None:
    assert [s.full_name for s in SETTINGS if s.validate(s.default) is not None] == []


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in BAD_VALUES.items() for value in values]
)
def test_invalid_value_is_e004(settings: SettingsWrapper, name: str, value: Any) -> None:
    setting = BY_NAME[name]
    setattr(settings, setting.full_name, value)
    message = only("secure_sessions.E004")
    assert message.msg.startswith(f"{setting.full_name} ")
    assert message.msg.endswith(".")
    assert message.hint == setting.hint


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in GOOD_VALUES.items() for value in values]
)
def test_valid_value_is_silent(settings: SettingsWrapper, name: str, value: Any) -> None:
    setattr(settings, BY_NAME[name].full_name, value)
    assert messages() == []


def test_lone_string_is_not_read_as_a_list_of_characters(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_TRUSTED_PROXIES = "10.0.0.0/8"
    message = only("secure_sessions.E004")
    assert message.msg == (
        "SECURE_SESSIONS_TRUSTED_PROXIES must be a list or tuple of strings, not str."
    )
    assert "wrapped in a list" in str(message.hint)


def test_every_invalid_setting_gets_its_own_message(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_BIND_IP = "on"
    settings.SECURE_SESSIONS_MAX_SIZE = "big"
    found = messages()
    assert [message.id for message in found] == ["secure_sessions.E004"] * 2
    assert {message.msg.split()[0] for message in found} == {
        "SECURE_SESSIONS_BIND_IP",
        "SECURE_SESSIONS_MAX_SIZE",
    }


@pytest.mark.parametrize(
    ("resolution", "idle"), [(60, 60), (600, 300), (timedelta(minutes=5), timedelta(minutes=5))]
)
def test_activity_resolution_not_below_idle_timeout_is_e004(
    settings: SettingsWrapper, resolution: Any, idle: Any
) -> None:
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = resolution
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = idle
    message = only("secure_sessions.E004")
    assert message.msg.startswith("SECURE_SESSIONS_ACTIVITY_RESOLUTION (")
    assert "SECURE_SESSIONS_IDLE_TIMEOUT" in message.msg


def test_activity_resolution_is_free_without_idle_timeout(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_ACTIVITY_RESOLUTION = 3600
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = None
    assert messages() == []


def test_invalidate_on_unknown_user_field_is_e004(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_INVALIDATE_ON = ["password", "emial"]
    message = only("secure_sessions.E004")
    assert message.msg == (
        "SECURE_SESSIONS_INVALIDATE_ON contains 'emial', which is not a field of auth.User."
    )


# Unknown SECURE_SESSIONS_* names: W003.


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("SECURE_SESSIONS_IDLE_TIMOUT", "SECURE_SESSIONS_IDLE_TIMEOUT"),
        ("SECURE_SESSION_MAX_SIZE", "SECURE_SESSIONS_MAX_SIZE"),
        ("SECURE_SESSIONS_TRUSTED_PROXY", "SECURE_SESSIONS_TRUSTED_PROXIES"),
    ],
)
def test_misspelt_setting_is_w003(settings: SettingsWrapper, name: str, meant: str) -> None:
    setattr(settings, name, 60)
    message = only("secure_sessions.W003")
    assert message.msg.startswith(f"{name} is not a setting of django-secure-sessions")
    assert message.hint == f"Did you mean {meant}?"


def test_unknown_setting_without_a_close_name_is_w003(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_ZZZ = True
    assert "Did you mean" not in str(only("secure_sessions.W003").hint)


def test_django_secure_settings_are_not_w003(settings: SettingsWrapper) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    assert messages() == []


# Deployment: W010 to W015.


@pytest.mark.parametrize(
    ("setting", "ours", "djangos"),
    [("SESSION_COOKIE_SECURE", "W010", "W012"), ("SESSION_COOKIE_HTTPONLY", "W011", "W015")],
)
def test_an_insecure_cookie_flag_is_reported_once_by_djangos_check(
    deploy_ready: SettingsWrapper, setting: str, ours: str, djangos: str
) -> None:
    setattr(deploy_ready, setting, False)
    found = {message.id for message in run_checks(include_deployment_checks=True)}
    assert f"security.{djangos}" in found
    assert f"secure_sessions.{ours}" not in found


def test_insecure_cookie_is_w010_where_djangos_check_does_not_run(
    without_djangos_cookie_checks: SettingsWrapper,
) -> None:
    without_djangos_cookie_checks.SESSION_COOKIE_SECURE = False
    assert "SESSION_COOKIE_SECURE" in only("secure_sessions.W010", deploy=True).msg
    djangos_cookie_checks = {f"security.W01{n}" for n in range(6)}
    found = {message.id for message in run_checks(include_deployment_checks=True)}
    assert found.isdisjoint(djangos_cookie_checks)


def test_cookie_readable_by_javascript_is_w011_where_djangos_check_does_not_run(
    without_djangos_cookie_checks: SettingsWrapper,
) -> None:
    without_djangos_cookie_checks.SESSION_COOKIE_HTTPONLY = False
    assert "SESSION_COOKIE_HTTPONLY" in only("secure_sessions.W011", deploy=True).msg


@pytest.mark.parametrize("samesite", [None, False, "None", "none", "NONE", "", "Laxx", 1])
def test_samesite_none_is_w012(deploy_ready: SettingsWrapper, samesite: Any) -> None:
    deploy_ready.SESSION_COOKIE_SAMESITE = samesite
    message = only("secure_sessions.W012", deploy=True)
    assert message.msg.startswith(f"SESSION_COOKIE_SAMESITE is {samesite!r}")


@pytest.mark.parametrize("samesite", ["Lax", "Strict", "lax", "STRICT"])
def test_samesite_lax_or_strict_is_silent(deploy_ready: SettingsWrapper, samesite: str) -> None:
    deploy_ready.SESSION_COOKIE_SAMESITE = samesite
    assert messages(deploy=True) == []


def test_cookie_domain_is_w013(deploy_ready: SettingsWrapper) -> None:
    deploy_ready.SESSION_COOKIE_DOMAIN = ".example.com"
    message = only("secure_sessions.W013", deploy=True)
    assert "SESSION_COOKIE_DOMAIN is '.example.com'" in message.msg
    assert "fixation" in message.msg
    assert "None" in str(message.hint)


def test_empty_cookie_domain_is_silent(deploy_ready: SettingsWrapper) -> None:
    # Django then sends no Domain attribute, as with None.
    deploy_ready.SESSION_COOKIE_DOMAIN = ""
    assert messages(deploy=True) == []


def test_idle_timeout_disabled_is_w014(deploy_ready: SettingsWrapper) -> None:
    deploy_ready.SECURE_SESSIONS_IDLE_TIMEOUT = None
    assert "SECURE_SESSIONS_IDLE_TIMEOUT" in only("secure_sessions.W014", deploy=True).msg


def test_absolute_timeout_disabled_is_w015(deploy_ready: SettingsWrapper) -> None:
    deploy_ready.SECURE_SESSIONS_ABSOLUTE_TIMEOUT = None
    assert "SECURE_SESSIONS_ABSOLUTE_TIMEOUT" in only("secure_sessions.W015", deploy=True).msg


# Checks never raise.

ODD_SETTINGS: list[tuple[dict[str, Any], set[str]]] = [
    ({"SESSION_ENGINE": None}, {"secure_sessions.E005"}),
    ({"SESSION_ENGINE": object()}, {"secure_sessions.E005"}),
    ({"SESSION_ENGINE": REDIS_ENGINE, "CACHES": "redis://"}, {"secure_sessions.E006"}),
    (
        {"SESSION_ENGINE": REDIS_ENGINE, "SESSION_CACHE_ALIAS": ["default"]},
        {"secure_sessions.E006"},
    ),
    ({"SESSION_ENGINE": REDIS_ENGINE, "CACHES": {"default": "redis"}}, {"secure_sessions.E006"}),
    (
        {"SESSION_ENGINE": REDIS_ENGINE, "CACHES": {"default": {"BACKEND": ["x"]}}},
        {"secure_sessions.E006"},
    ),
    (
        {"SESSION_ENGINE": REDIS_ENGINE, "CACHES": {"default": {"BACKEND": "no.such.Backend"}}},
        {"secure_sessions.E006"},
    ),
    ({"SESSION_ENGINE": REDIS_ENGINE, "CACHES": {"default": {}}}, {"secure_sessions.E006"}),
    ({"MIDDLEWARE": None}, {"secure_sessions.E001"}),
    ({"MIDDLEWARE": OUR_MIDDLEWARE}, {"secure_sessions.E001"}),
    ({"MIDDLEWARE": [None, 42, b"x", OUR_MIDDLEWARE]}, {"secure_sessions.E002"}),
    ({"SESSION_SERIALIZER": None}, {"secure_sessions.W002"}),
    ({"SESSION_SERIALIZER": PickleSerializer}, {"secure_sessions.E003"}),
    ({"SESSION_COOKIE_SAMESITE": ["Lax"]}, {"secure_sessions.W012"}),
    ({"SESSION_COOKIE_DOMAIN": [".example.com"]}, {"secure_sessions.W013"}),
    ({"SECURE_SESSIONS_INVALIDATE_ON": "email"}, {"secure_sessions.E004"}),
    ({"SECURE_SESSIONS_PASSIVE_URLS": ["(" * 1000 + ")" * 1000]}, {"secure_sessions.E004"}),
    (
        {"SECURE_SESSIONS_IDLE_TIMEOUT": float("nan"), "SECURE_SESSIONS_ACTIVITY_RESOLUTION": {}},
        {"secure_sessions.E004"},
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), ODD_SETTINGS)
def test_checks_report_odd_values_without_raising(
    overrides: dict[str, Any], expected: set[str]
) -> None:
    # Called directly: Django's own checks are not as forgiving of some of these.
    with override_settings(SESSION_COOKIE_SECURE=True, **overrides):
        found = [*checks.check_configuration(None), *checks.check_deploy(None)]
    assert all(isinstance(message, CheckMessage) for message in found)
    assert {message.id for message in found} == expected


# IDs.

EXPECTED_IDS = {
    "secure_sessions.W001",
    "secure_sessions.W002",
    "secure_sessions.W003",
    "secure_sessions.E001",
    "secure_sessions.E002",
    "secure_sessions.E003",
    "secure_sessions.E004",
    "secure_sessions.E005",
    "secure_sessions.E006",
    "secure_sessions.E007",
    "secure_sessions.W010",
    "secure_sessions.W011",
    "secure_sessions.W012",
    "secure_sessions.W013",
    "secure_sessions.W014",
    "secure_sessions.W015",
}


def test_each_id_is_defined_exactly_once() -> None:
    counts = Counter(ID_PATTERN.findall(CHECKS_SOURCE))
    assert {check_id: n for check_id, n in counts.items() if n != 1} == {}
    assert set(counts) == EXPECTED_IDS


def test_each_id_is_documented() -> None:
    documented = set(ID_PATTERN.findall(CHECKS_DOC.read_text(encoding="utf-8")))
    assert documented == EXPECTED_IDS


def test_each_setting_is_documented() -> None:
    documented = set(re.findall(r"SECURE_SESSIONS_[A-Z0-9_]+", SETTINGS_DOC.read_text("utf-8")))
    assert documented == {setting.full_name for setting in SETTINGS}


# The conf object: read at use time, invalid values fall back to the default.


@pytest.fixture
def conf_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    # conf logs each distinct problem once per process; start from a clean slate.
    conf_module._warn_invalid.cache_clear()
    caplog.set_level(logging.ERROR, logger="django_secure_sessions")
    return caplog


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in BAD_VALUES.items() for value in values]
)
def test_invalid_value_falls_back_to_default_and_logs(
    settings: SettingsWrapper, conf_log: pytest.LogCaptureFixture, name: str, value: Any
) -> None:
    setting = BY_NAME[name]
    default = getattr(conf, name)
    setattr(settings, setting.full_name, value)
    assert getattr(conf, name) == default
    records = [r for r in conf_log.records if r.name == "django_secure_sessions"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].getMessage().startswith(f"{setting.full_name} ")


def test_invalid_value_is_logged_once(
    settings: SettingsWrapper, conf_log: pytest.LogCaptureFixture
) -> None:
    settings.SECURE_SESSIONS_IDLE_TIMEOUT = "30"
    assert [conf.IDLE_TIMEOUT for _ in range(3)] == [1800] * 3
    assert len(conf_log.records) == 1


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("IDLE_TIMEOUT", 600, 600),
        ("IDLE_TIMEOUT", timedelta(minutes=10), 600),
        ("IDLE_TIMEOUT", None, None),
        ("ABSOLUTE_TIMEOUT", timedelta(hours=1), 3600),
        ("ACTIVITY_RESOLUTION", timedelta(0), 0),
        ("REAUTH_MAX_AGE", timedelta(minutes=2), 120),
        ("BIND_IP", "exact", "exact"),
        ("IPV4_PREFIX", 16, 16),
        ("MAX_PER_USER", 3, 3),
        ("INVALIDATE_ON", ["password"], ("password",)),
    ],
)
def test_conf_reads_settings_at_use_time(name: str, value: Any, expected: Any) -> None:
    before = getattr(conf, name)
    with override_settings(**{f"SECURE_SESSIONS_{name}": value}):
        assert getattr(conf, name) == expected
    assert getattr(conf, name) == before


def test_conf_defaults(settings: SettingsWrapper) -> None:
    for setting in SETTINGS:
        delattr(settings, setting.full_name)
    assert (conf.IDLE_TIMEOUT, conf.ABSOLUTE_TIMEOUT, conf.ACTIVITY_RESOLUTION) == (1800, 43200, 60)
    assert (conf.BIND_IP, conf.IPV4_PREFIX, conf.IPV6_PREFIX) == ("subnet", 24, 64)
    assert (conf.BIND_USER_AGENT, conf.BINDING_ACTION) == ("family", "logout")
    assert conf.TRUSTED_PROXIES == ()
    assert conf.INVALIDATE_ON == ("password", "email", "is_active")
    assert (conf.MAX_PER_USER, conf.REAUTH_MAX_AGE, conf.MAX_SIZE) == (None, 300, 16384)
    assert conf.PASSIVE_URLS is None
    assert conf.FORBIDDEN_KEYS is not None


def test_trusted_proxies_are_networks(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8::1"]
    assert [str(network) for network in conf.TRUSTED_PROXIES] == ["10.0.0.0/8", "2001:db8::1/128"]


def test_passive_urls_match_any_pattern(settings: SettingsWrapper) -> None:
    settings.SECURE_SESSIONS_PASSIVE_URLS = [r"^/health/$", r"^/api/poll/"]
    pattern = conf.PASSIVE_URLS
    assert pattern is not None
    assert [bool(pattern.search(p)) for p in ["/health/", "/api/poll/7", "/account/"]] == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("key", ["password", "user_PASSWORD", "api_key", "card-number", "cvv"])
def test_default_forbidden_keys_match_secrets(key: str) -> None:
    pattern = conf.FORBIDDEN_KEYS
    assert pattern is not None
    assert pattern.search(key)


@pytest.mark.parametrize("key", ["cart", "theme", "company", "last_page"])
def test_default_forbidden_keys_spare_ordinary_keys(key: str) -> None:
    pattern = conf.FORBIDDEN_KEYS
    assert pattern is not None
    assert pattern.search(key) is None


def test_conf_never_writes_settings(settings: SettingsWrapper) -> None:
    from django.conf import settings as django_settings

    before = set(dir(django_settings))
    for setting in SETTINGS:
        getattr(conf, setting.name)
    assert set(dir(django_settings)) == before


def test_check_functions_are_registered() -> None:
    assert import_string("django_secure_sessions.checks.check_configuration") in (
        django_checks.registry.registry.get_checks()
    )
    assert import_string("django_secure_sessions.checks.check_deploy") in (
        django_checks.registry.registry.get_checks(include_deployment_checks=True)
    )


# A process of its own: the app registry of this one has the app installed for good.
WITHOUT_THE_APP = """
import sys

import django
from django.conf import settings

from tests import settings as base

settings.configure(**{
    **{name: getattr(base, name) for name in dir(base) if name.isupper()},
    "INSTALLED_APPS": [app for app in base.INSTALLED_APPS if app != "django_secure_sessions"],
    "SESSION_ENGINE": sys.argv[1],
})
django.setup()
from django.core.handlers.wsgi import WSGIHandler

WSGIHandler()  # what a WSGI server does as it starts: load the middleware
print("started")
"""


@pytest.mark.parametrize("engine", [checks.DB_ENGINE, checks.REDIS_ENGINE])
def test_an_engine_without_the_app_installed_stops_the_server_starting_naming_the_fix(
    engine: str,
) -> None:
    # Nothing of the app runs at start-up then (no handlers, no checks): it must not serve.
    result = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", WITHOUT_THE_APP, engine],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: django_secure_sessions is used "
        "(SESSION_ENGINE or MIDDLEWARE names it) but is not in INSTALLED_APPS: add "
        '"django_secure_sessions" to INSTALLED_APPS (after "django.contrib.sessions"), then '
        "run `manage.py migrate`."
    )
