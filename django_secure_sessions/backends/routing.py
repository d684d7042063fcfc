"""Routing tags: what keeps a session and its user's index in one Redis Cluster slot.

On Redis Cluster (``SECURE_SESSIONS_REDIS_CLUSTER = True``) a script may only touch keys
of one hash slot, and the save script writes a session's hash and its user's index
together. So every key we mint there starts with a *routing tag* of ``TAG_LENGTH`` hex
digits, and the session's id starts with the same tag (see
``base.session_id_for_key``); the Redis names of the session and of its user's index
both carry it as their ``{tag}``, so they hash to the same slot.

In the key, the tag's digits are written as the capitals ``A`` to ``P`` (``0`` to ``f``):
the keys of Django's engines are lowercase letters and digits only, so a key of ours can
never be taken for one of theirs, nor theirs for ours. A key of theirs names no session
of ours, only the alias that an import left (backends/aliases.py), and the look for it
is the one round trip of its load, as the look for the session is the one of ours.

- A signed-in session's tag is its user's: a keyed digest of the user id (never the id
  itself, which is often a small number anyone could hash), under a key derived from
  ``SECRET_KEY``. All the sessions of a user and their index then share a slot, and
  revoking them all is one script.
- An anonymous session's tag is random, so anonymous sessions spread over all slots.

What a tag reveals (docs/security.rst): which sessions probably belong to the same user
(different users share a tag by chance, one in 65536), and nothing about who the user is
without ``SECRET_KEY``. It is not secret: it is in the public session id. So it is not
counted in a key's strength: the ``RANDOM_LENGTH`` other characters are random, about
144 bits.

A tag is chosen when a key is minted. A session whose user changes without a new key
(or whose tag is a previous ``SECRET_KEY``'s) no longer fits its key: its next save moves
it to a new key with the right tag (see ``backends.redis``).

On a single Redis server (the default) none of this applies: keys are 32 random
characters, and ids the plain digest of the key, as they always were.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any, Final

from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string

from ..conf import conf

TAG_LENGTH: Final = 4
# 32 characters in all, as Django's keys: a key stays a key's shape whatever the mode.
RANDOM_LENGTH: Final = 32 - TAG_LENGTH
# A key of ours on Cluster: its tag in capitals, then random characters as Django's.
TAGGED_KEY_RE: Final = re.compile(
    f"[A-P]{{{TAG_LENGTH}}}[{re.escape(VALID_KEY_CHARS)}]{{{RANDOM_LENGTH}}}"
)
_TO_KEY: Final = str.maketrans("0123456789abcdef", "ABCDEFGHIJKLMNOP")
_FROM_KEY: Final = str.maketrans("ABCDEFGHIJKLMNOP", "0123456789abcdef")

# The keys of the user tags (current SECRET_KEY first, then the fallbacks), derived once;
# and whether routing is on: both read on every request.
_tag_keys: list[bytes] = []
_enabled: list[bool] = []


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting in {"SECRET_KEY", "SECRET_KEY_FALLBACKS"}:
        _tag_keys.clear()
    if setting in {"SESSION_ENGINE", "SECURE_SESSIONS_REDIS_CLUSTER"}:
        _enabled.clear()


def enabled() -> bool:
    """Whether keys and ids carry routing tags: the session engine is the Redis one, on
    a Redis Cluster. (SECURE_SESSIONS_REDIS_CLUSTER means nothing to the db engine.)"""
    if not _enabled:
        _enabled.append(conf.REDIS_CLUSTER and _engine_is_redis())
    return _enabled[0]


def _engine_is_redis() -> bool:
    from .redis import SessionStore as RedisStore

    try:
        store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    except ImportError:
        return False
    return isinstance(store, type) and issubclass(store, RedisStore)


def _keys() -> list[bytes]:
    if not _tag_keys:
        # Domain separation: this key serves only to route, so a tag can't be replayed
        # as (or computed from) a signature or any other use of SECRET_KEY.
        _tag_keys.extend(
            hashlib.sha256(
                b"django-secure-sessions/routing\x00"
                + (secret.encode() if isinstance(secret, str) else secret)
            ).digest()
            for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
        )
    return _tag_keys


def _tag(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:TAG_LENGTH]


def user_tag(user_id: str) -> str:
    """The tag of ``user_id``'s sessions from now on (under the current SECRET_KEY)."""
    return _tag(_keys()[0], user_id)


def user_tags(user_id: str) -> list[str]:
    """Every tag ``user_id``'s live sessions can carry: the current one, and those of
    SECRET_KEY_FALLBACKS (sessions not written since the secret was rotated)."""
    return list(dict.fromkeys(_tag(key, user_id) for key in _keys()))


def has_tag(key: str) -> bool:
    """Whether a key is one of ours on Cluster: it starts with a routing tag."""
    return TAGGED_KEY_RE.fullmatch(key) is not None


def key_tag(key: str) -> str:
    """The routing tag of a key that has one (``has_tag``), as hex digits."""
    return key[:TAG_LENGTH].translate(_FROM_KEY)


def new_key(user_id: str | None) -> str:
    """A new session key: the user's tag (a random one for an anonymous session), then
    ``RANDOM_LENGTH`` random characters."""
    tag = secrets.token_hex(TAG_LENGTH // 2) if user_id is None else user_tag(user_id)
    return tag.translate(_TO_KEY) + get_random_string(RANDOM_LENGTH, VALID_KEY_CHARS)


def fits(key: str, user_id: str | None) -> bool:
    """Whether a session of ``user_id`` may be stored under ``key``, one of ours: an
    anonymous one under any tag; a signed-in one only under its user's current tag."""
    return user_id is None or hmac.compare_digest(key_tag(key), user_tag(user_id))
