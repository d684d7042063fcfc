"""System checks: a misconfiguration is reported by ``manage.py check``, naming the
setting, why it matters and how to fix it, instead of failing deep inside a request.

``check_configuration`` runs with every ``check`` (and so before ``runserver`` and
``migrate``); ``check_deploy`` only with ``check --deploy``, for settings that are
fine on a developer's machine but weaken sessions in production.

Every rule is total: whatever type a setting has, the result is a message, never a
traceback. User code (engines, middleware, serializers, cache backends) is imported
lazily and defensively, only to recognise subclasses of ours.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.utils.module_loading import import_string

from .conf import PREFIX, SETTINGS, Setting, _to_seconds

# Each ID is written once, here.
ENGINE_NOT_OURS: Final = "secure_sessions.W001"
SERIALIZER_IGNORED: Final = "secure_sessions.W002"
UNKNOWN_SETTING: Final = "secure_sessions.W003"
MIDDLEWARE_MISSING: Final = "secure_sessions.E001"
MIDDLEWARE_ORDER: Final = "secure_sessions.E002"
PICKLE_SERIALIZER: Final = "secure_sessions.E003"
INVALID_SETTING: Final = "secure_sessions.E004"
ENGINE_NOT_IMPORTABLE: Final = "secure_sessions.E005"
REDIS_CACHE_MISSING: Final = "secure_sessions.E006"
REDIS_CLUSTER_CACHE: Final = "secure_sessions.E007"
COOKIE_NOT_SECURE: Final = "secure_sessions.W010"
COOKIE_NOT_HTTPONLY: Final = "secure_sessions.W011"
COOKIE_SAMESITE_NONE: Final = "secure_sessions.W012"
COOKIE_DOMAIN_SET: Final = "secure_sessions.W013"
IDLE_TIMEOUT_DISABLED: Final = "secure_sessions.W014"
ABSOLUTE_TIMEOUT_DISABLED: Final = "secure_sessions.W015"

DB_ENGINE: Final = "django_secure_sessions.backends.db"
REDIS_ENGINE: Final = "django_secure_sessions.backends.redis"
SECURE_SESSION_BASE: Final = "django_secure_sessions.backends.base.SecureSessionBase"
REDIS_SESSION_STORE: Final = REDIS_ENGINE + ".SessionStore"
SECURE_SESSION_MIDDLEWARE: Final = "django_secure_sessions.middleware.SecureSessionMiddleware"
AUTH_MIDDLEWARE: Final = "django.contrib.auth.middleware.AuthenticationMiddleware"
DJANGO_SESSION_MIDDLEWARE: Final = "django.contrib.sessions.middleware.SessionMiddleware"
DJANGO_REDIS_CACHE: Final = "django_redis.cache.RedisCache"
# Django's default; django.contrib.sessions.serializers.JSONSerializer is an alias of
# django.core.signing.JSONSerializer.
JSON_SERIALIZERS: Final = (
    "django.contrib.sessions.serializers.JSONSerializer",
    "django.core.signing.JSONSerializer",
)

ENGINE_HINT: Final = f'Set SESSION_ENGINE = "{DB_ENGINE}" (or "{REDIS_ENGINE}").'
MIDDLEWARE_HINT: Final = (
    f'Put "{SECURE_SESSION_MIDDLEWARE}" in MIDDLEWARE, after "{AUTH_MIDDLEWARE}".'
)

_UNPREFIX: Final = re.compile(r"^SECURE_SESSIONS?_?")

Rule = Callable[[], Iterable[checks.CheckMessage]]


def _import(dotted_path: object) -> Any:
    """The object at ``dotted_path``, or None when it is not a string or fails to import.

    Importing runs user code, which may raise anything; a check reports, it never
    crashes, and each caller decides what an unimportable path means.
    """
    if not isinstance(dotted_path, str):
        return None
    try:
        return import_string(dotted_path)
    except Exception:  # see the docstring
        return None


def _is_subclass(candidate: object, base: object) -> bool:
    return isinstance(candidate, type) and isinstance(base, type) and issubclass(candidate, base)


def _is_or_subclasses(value: object, dotted_path: str) -> bool:
    """Whether ``value`` is ``dotted_path`` or the path of a subclass of it."""
    return value == dotted_path or _is_subclass(_import(value), _import(dotted_path))


def _engine_uses(module_path: str, store_path: str) -> bool:
    """Whether SESSION_ENGINE is ``module_path``, or an engine whose SessionStore
    subclasses ``store_path``."""
    engine = getattr(settings, "SESSION_ENGINE", None)
    if engine == module_path:
        return True
    return isinstance(engine, str) and _is_or_subclasses(f"{engine}.SessionStore", store_path)


def _engine_is_ours() -> bool:
    return _engine_uses(DB_ENGINE, SECURE_SESSION_BASE) or _engine_uses(
        REDIS_ENGINE, SECURE_SESSION_BASE
    )


def _configured(setting: Setting) -> Any:
    return getattr(settings, setting.full_name, setting.default)


def _effective(setting: Setting) -> Any:
    """The value the app runs with: the configured one, or the default if it is invalid."""
    value = _configured(setting)
    return value if setting.validate(value) is None else setting.default


# Configuration rules.


def _check_engine() -> Iterator[checks.CheckMessage]:
    engine = getattr(settings, "SESSION_ENGINE", None)
    if engine in (DB_ENGINE, REDIS_ENGINE):
        return
    if not isinstance(engine, str):
        yield checks.Error(
            f"SESSION_ENGINE must be the dotted path of a module, not {type(engine).__name__}.",
            hint=ENGINE_HINT,
            id=ENGINE_NOT_IMPORTABLE,
        )
        return
    try:
        import_string(f"{engine}.SessionStore")
    except Exception as exc:  # user code may raise anything on import
        yield checks.Error(
            f"Cannot import SESSION_ENGINE {engine!r} (or its SessionStore): "
            f"{type(exc).__name__}: {exc}. Django cannot load any session.",
            hint=f"Check the dotted path and that the module imports. {ENGINE_HINT}",
            id=ENGINE_NOT_IMPORTABLE,
        )
        return
    if not _engine_is_ours():
        yield checks.Warning(
            f"SESSION_ENGINE is {engine!r}, not a django-secure-sessions engine: sessions "
            "are stored without its protections (hashed keys, per-user index and "
            "revocation, forbidden keys and size limit).",
            hint=ENGINE_HINT,
            id=ENGINE_NOT_OURS,
        )


def _check_redis_cache() -> Iterator[checks.CheckMessage]:
    if not _engine_uses(REDIS_ENGINE, REDIS_SESSION_STORE):
        return
    hint = (
        "Install django-redis and configure the cache named by SESSION_CACHE_ALIAS, e.g. "
        f'CACHES = {{"default": {{"BACKEND": "{DJANGO_REDIS_CACHE}", '
        '"LOCATION": "redis://127.0.0.1:6379/0"}}.'
    )
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    caches = getattr(settings, "CACHES", None)
    config = caches.get(alias) if isinstance(caches, dict) and isinstance(alias, str) else None
    backend = config.get("BACKEND") if isinstance(config, dict) else None
    if config is None:
        problem = f"CACHES has no {alias!r} entry (SESSION_CACHE_ALIAS)"
    elif _import(DJANGO_REDIS_CACHE) is None:
        problem = "django-redis is not installed"
    elif not _is_or_subclasses(backend, DJANGO_REDIS_CACHE):
        problem = f"CACHES[{alias!r}] has BACKEND {backend!r}, not django-redis's RedisCache"
    else:
        yield from _check_redis_cluster(alias, config)
        return
    yield checks.Error(
        f"SESSION_ENGINE is the Redis engine, which reaches Redis through django-redis, "
        f"but {problem}.",
        hint=hint,
        id=REDIS_CACHE_MISSING,
    )


def _check_redis_cluster(alias: str, config: dict[str, Any]) -> Iterator[checks.CheckMessage]:
    """With SECURE_SESSIONS_REDIS_CLUSTER, the cache's LOCATION must name cluster nodes
    (database 0: a cluster has no other) and its KEY_PREFIX must have no brace (Redis
    Cluster would take it for the hash tag of every key, see backends/routing.py)."""
    if getattr(settings, "SECURE_SESSIONS_REDIS_CLUSTER", False) is not True:
        return
    location = config.get("LOCATION", "")
    urls = location.split(",") if isinstance(location, str) else location
    problems = []
    if not isinstance(urls, (list, tuple)) or not all(isinstance(url, str) for url in urls):
        problems.append(f"its LOCATION {location!r} is not a URL or a list of URLs")
    else:
        for url in urls:
            parts = urlsplit(url.strip())
            if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
                problems.append(f"its LOCATION {url!r} is not a redis:// URL of a node")
            elif parts.path.strip("/") not in {"", "0"}:
                problems.append(f"its LOCATION {url!r} names a database (a cluster has only 0)")
    prefix = config.get("KEY_PREFIX", "")
    if isinstance(prefix, str) and ("{" in prefix or "}" in prefix):
        problems.append(
            f"its KEY_PREFIX {prefix!r} has a brace, which Redis Cluster reads as a hash tag"
        )
    for problem in problems:
        yield checks.Error(
            f"SECURE_SESSIONS_REDIS_CLUSTER is True, but in CACHES[{alias!r}] {problem}.",
            hint=(
                'Set LOCATION to the cluster\'s nodes, e.g. ["redis://10.0.0.1:6379", '
                '"redis://10.0.0.2:6379"], and a KEY_PREFIX without braces.'
            ),
            id=REDIS_CLUSTER_CACHE,
        )


def _check_middleware() -> Iterator[checks.CheckMessage]:
    middleware = getattr(settings, "MIDDLEWARE", None)
    entries: Sequence[object] = middleware if isinstance(middleware, (list, tuple)) else ()
    ours = _position(entries, SECURE_SESSION_MIDDLEWARE)
    if ours is None:
        yield checks.Error(
            f"{SECURE_SESSION_MIDDLEWARE} is not in MIDDLEWARE: idle and absolute "
            "timeouts and client binding are not enforced.",
            hint=MIDDLEWARE_HINT,
            id=MIDDLEWARE_MISSING,
        )
        return
    auth = _position(entries, AUTH_MIDDLEWARE)
    if auth is None:
        yield checks.Error(
            f"{AUTH_MIDDLEWARE} is not in MIDDLEWARE: SecureSessionMiddleware needs the "
            "request.user it sets, to know which sessions to check and to sign out the "
            "request of a session it ends.",
            hint=MIDDLEWARE_HINT,
            id=MIDDLEWARE_ORDER,
        )
    elif ours < auth:
        yield checks.Error(
            "SecureSessionMiddleware comes before AuthenticationMiddleware in MIDDLEWARE: "
            "it runs before request.user is set, so it cannot check the signed-in "
            "session nor sign out the request of a session it ends.",
            hint=MIDDLEWARE_HINT,
            id=MIDDLEWARE_ORDER,
        )


def _position(entries: Sequence[object], dotted_path: str) -> int | None:
    """Index of the first entry that is ``dotted_path`` or a subclass of it.

    An entry that fails to import is not ours to report (Django will), so it is
    simply not a match.
    """
    for index, entry in enumerate(entries):
        if _is_or_subclasses(entry, dotted_path):
            return index
    return None


def _check_serializer() -> Iterator[checks.CheckMessage]:
    serializer = getattr(settings, "SESSION_SERIALIZER", JSON_SERIALIZERS[0])
    if _is_pickle(serializer):
        yield checks.Error(
            f"SESSION_SERIALIZER is {serializer!r}, a pickle serializer: unpickling "
            "session data lets anyone who can write to the session store, or sign data "
            "with a leaked SECRET_KEY, run code on the server.",
            hint="Remove SESSION_SERIALIZER from your settings: the engines of "
            "django-secure-sessions only ever use JSON.",
            id=PICKLE_SERIALIZER,
        )
    elif serializer not in JSON_SERIALIZERS and _engine_is_ours():
        yield checks.Warning(
            f"SESSION_SERIALIZER is {serializer!r}, which the engines of "
            "django-secure-sessions ignore: they always serialize with JSON.",
            hint="Remove SESSION_SERIALIZER from your settings.",
            id=SERIALIZER_IGNORED,
        )


def _is_pickle(serializer: object) -> bool:
    # Django removed its PickleSerializer in 5.0, so the name is what is left to go on:
    # the path itself and, when it imports, every class it inherits from.
    names = [str(serializer)]
    cls = _import(serializer)
    if isinstance(cls, type):
        names += [f"{base.__module__}.{base.__qualname__}" for base in cls.__mro__]
    return any("pickle" in name.lower() for name in names)


def _check_setting_values() -> Iterator[checks.CheckMessage]:
    for setting in SETTINGS:
        if (problem := setting.validate(_configured(setting))) is not None:
            yield _invalid(f"{setting.full_name} {problem}.", setting.hint)


def _invalid(msg: str, hint: str) -> checks.CheckMessage:
    return checks.Error(msg, hint=hint, id=INVALID_SETTING)


def _check_activity_resolution() -> Iterator[checks.CheckMessage]:
    # Activity is persisted at most once per resolution, so the stored last activity
    # lags by up to that much: with a resolution as long as the idle timeout, a user
    # active all along can be signed out as idle.
    by_name = {setting.name: setting for setting in SETTINGS}
    idle = _effective(by_name["IDLE_TIMEOUT"])
    resolution = _effective(by_name["ACTIVITY_RESOLUTION"])
    if idle is not None and _to_seconds(resolution) >= _to_seconds(idle):
        yield _invalid(
            f"{PREFIX}ACTIVITY_RESOLUTION ({_to_seconds(resolution)}s) must be shorter than "
            f"{PREFIX}IDLE_TIMEOUT ({_to_seconds(idle)}s): last activity is recorded at most "
            "once per ACTIVITY_RESOLUTION, so active users would be signed out as idle.",
            "Use an ACTIVITY_RESOLUTION that is a small fraction of IDLE_TIMEOUT "
            "(the defaults are 60 and 1800).",
        )


def _check_invalidate_on_fields() -> Iterator[checks.CheckMessage]:
    # A misspelt field silently turns off revocation on its change. Only an explicit
    # value is checked: the default names fields ("email") a custom user may lack.
    setting = next(s for s in SETTINGS if s.name == "INVALIDATE_ON")
    fields = getattr(settings, setting.full_name, None)
    if fields is None or setting.validate(fields) is not None:  # unset, or reported above
        return
    try:
        user_model = get_user_model()
    except Exception:  # a broken AUTH_USER_MODEL is reported by Django
        return
    for field in fields:
        try:
            user_model._meta.get_field(field)
        except FieldDoesNotExist:
            yield _invalid(
                f"{setting.full_name} contains {field!r}, which is not a field of "
                f"{user_model._meta.label}.",
                setting.hint,
            )


def _check_unknown_settings() -> Iterator[checks.CheckMessage]:
    # "SECURE_SESSION" without the S catches the likeliest typo of the prefix too;
    # Django has no setting of its own starting like this.
    known = {setting.name: setting.full_name for setting in SETTINGS}
    for name in dir(settings):
        if name.startswith("SECURE_SESSION") and name not in known.values():
            # Compared without the prefix, which every name shares and would make any
            # name look close to some setting.
            matches = difflib.get_close_matches(_UNPREFIX.sub("", name), known, n=1)
            yield checks.Warning(
                f"{name} is not a setting of django-secure-sessions, so it has no effect.",
                hint=f"Did you mean {known[matches[0]]}?"
                if matches
                else "See the settings reference for the names of the settings.",
                id=UNKNOWN_SETTING,
            )


# Deployment rules.


def _djangos_cookie_checks_run() -> bool:
    """Whether Django's own deploy checks of the session cookie's Secure and HttpOnly
    flags (security.W010 to W015) run: they do when django.contrib.sessions is installed
    or its SessionMiddleware is in MIDDLEWARE, and ours (W010, W011) would only repeat
    them. They don't for a project with neither (a SessionMiddleware subclass of its own)."""
    apps = getattr(settings, "INSTALLED_APPS", ())
    middleware = getattr(settings, "MIDDLEWARE", ())
    return (isinstance(apps, (list, tuple)) and "django.contrib.sessions" in apps) or (
        isinstance(middleware, (list, tuple)) and DJANGO_SESSION_MIDDLEWARE in middleware
    )


def _check_cookie_secure() -> Iterator[checks.CheckMessage]:
    if _djangos_cookie_checks_run():
        return
    if not getattr(settings, "SESSION_COOKIE_SECURE", False):
        yield checks.Warning(
            "SESSION_COOKIE_SECURE is not True: browsers send the session cookie over "
            "plain HTTP, where anyone on the network path can read it and take over "
            "the session.",
            hint="Set SESSION_COOKIE_SECURE = True and serve the site over HTTPS only.",
            id=COOKIE_NOT_SECURE,
        )


def _check_cookie_httponly() -> Iterator[checks.CheckMessage]:
    if _djangos_cookie_checks_run():
        return
    if not getattr(settings, "SESSION_COOKIE_HTTPONLY", True):
        yield checks.Warning(
            "SESSION_COOKIE_HTTPONLY is not True: JavaScript can read the session "
            "cookie, so any cross-site scripting flaw can steal sessions.",
            hint="Set SESSION_COOKIE_HTTPONLY = True (Django's default).",
            id=COOKIE_NOT_HTTPONLY,
        )


def _check_cookie_samesite() -> Iterator[checks.CheckMessage]:
    samesite = getattr(settings, "SESSION_COOKIE_SAMESITE", "Lax")
    if not (isinstance(samesite, str) and samesite.lower() in ("lax", "strict")):
        yield checks.Warning(
            f"SESSION_COOKIE_SAMESITE is {samesite!r}, not 'Lax' or 'Strict': browsers "
            "may send the session cookie with requests from other sites, which exposes "
            "the session to cross-site request forgery.",
            hint='Set SESSION_COOKIE_SAMESITE = "Lax" (Django\'s default) or "Strict".',
            id=COOKIE_SAMESITE_NONE,
        )


def _check_cookie_domain() -> Iterator[checks.CheckMessage]:
    domain = getattr(settings, "SESSION_COOKIE_DOMAIN", None)
    if domain:
        yield checks.Warning(
            f"SESSION_COOKIE_DOMAIN is {domain!r}: the session cookie is shared with every "
            "subdomain, and any of them can set it, which allows session fixation from "
            "a compromised or user-controlled subdomain.",
            hint="Leave SESSION_COOKIE_DOMAIN = None, unless sessions must be shared "
            "across subdomains and you trust every one of them.",
            id=COOKIE_DOMAIN_SET,
        )


def _check_timeouts() -> Iterator[checks.CheckMessage]:
    if getattr(settings, f"{PREFIX}IDLE_TIMEOUT", 0) is None:
        yield checks.Warning(
            f"{PREFIX}IDLE_TIMEOUT is None: a session left open on an unattended or "
            "shared computer stays usable until its absolute timeout.",
            hint="Set it to a number of seconds (the default is 1800, 30 minutes).",
            id=IDLE_TIMEOUT_DISABLED,
        )
    if getattr(settings, f"{PREFIX}ABSOLUTE_TIMEOUT", 0) is None:
        yield checks.Warning(
            f"{PREFIX}ABSOLUTE_TIMEOUT is None: a stolen session can be kept alive "
            "for ever by regular use.",
            hint="Set it to a number of seconds (the default is 43200, 12 hours).",
            id=ABSOLUTE_TIMEOUT_DISABLED,
        )


CONFIGURATION_RULES: Final[tuple[Rule, ...]] = (
    _check_engine,
    _check_redis_cache,
    _check_middleware,
    _check_serializer,
    _check_setting_values,
    _check_activity_resolution,
    _check_invalidate_on_fields,
    _check_unknown_settings,
)

DEPLOY_RULES: Final[tuple[Rule, ...]] = (
    _check_cookie_secure,
    _check_cookie_httponly,
    _check_cookie_samesite,
    _check_cookie_domain,
    _check_timeouts,
)


def check_configuration(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Settings that break the app or its guarantees, on every ``manage.py check``."""
    return [message for rule in CONFIGURATION_RULES for message in rule()]


def check_deploy(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Settings that weaken sessions in production, with ``manage.py check --deploy``."""
    return [message for rule in DEPLOY_RULES for message in rule()]
