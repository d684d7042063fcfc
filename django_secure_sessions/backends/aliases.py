"""Aliases: how a session of another engine keeps its browser signed in on Redis Cluster.

On Redis Cluster a session must be stored under a key that carries its user's routing tag
(backends/routing.py), and a key minted by Django's engines carries none. So
``importsessions`` stores such a session under a new key of ours, and leaves an *alias*
behind, found from the old key alone: the old key's cookie is swapped for the new one on
its browser's first request (see ``backends.redis``).

What an alias stores, and why it gives nothing away:

- it is named by a one-way digest of the old key (``alias_id``), as a session is named by
  the digest of its key, so its name can't be sent back as a cookie;
- it holds the new key *sealed*: XORed with a pad that only the old key gives
  (``_pad``, a BLAKE2b of it). A copy of Redis holds no key that works: the old key is
  not stored anywhere of ours, and without it the new key can't be told from noise.
  Whoever holds the old key (its browser, or whoever stole its cookie) learns the new
  one, exactly as they could have used the old cookie with Django's engine;
- the sealed key is signed and bound to the alias, like every record of ours, so a
  corrupt or copied alias is refused, never followed.

An alias lasts as long as its session at most, and ``FOLLOW_GRACE`` seconds once
followed (see ``backends.redis._FOLLOW``): the old cookie stops working a minute after
its browser's first request, where on a single server it would have lasted as long as
the session.
"""

from __future__ import annotations

import hashlib
from typing import Final

from . import routing
from .base import KEY_LENGTH, is_valid_session_key, sign, unsign

# How long an alias still works once followed: the requests a browser sends at once
# (a page and its XHRs, several tabs restored) all carry the old cookie, and each must
# find the session, not sign its user out in the response that reaches the browser last.
FOLLOW_GRACE: Final = 60

_ALIAS_ID_LENGTH: Final = 40


def alias_id(old_key: str) -> str:
    """The public name of the alias of ``old_key``: a BLAKE2b-160 of it, personalized so
    that it is never a session's id (nor anything else computed from the same key)."""
    return hashlib.blake2b(
        old_key.encode(), digest_size=_ALIAS_ID_LENGTH // 2, person=b"dss/alias-id"
    ).hexdigest()


def _pad(old_key: str) -> bytes:
    # A key of ours is 32 ASCII characters: the pad covers it in one block. The old key
    # carries about 165 random bits, so its hash is a pad nobody can compute without it;
    # each pad seals one new key only (one alias per old key), as a one-time pad must.
    return hashlib.blake2b(
        old_key.encode(), digest_size=KEY_LENGTH, person=b"dss/alias-pad"
    ).digest()


def seal(old_key: str, new_key: str) -> str:
    """What the alias of ``old_key`` stores: ``new_key`` sealed and signed."""
    sealed = bytes(a ^ b for a, b in zip(new_key.encode(), _pad(old_key), strict=True))
    return sign(alias_id(old_key), "alias", sealed.hex())


def unseal(old_key: str, stored: str) -> str | None:
    """The new key sealed in the alias of ``old_key``, or None if what is stored is not
    an alias of ours for it (tampered with, copied from another alias, corrupt)."""
    payload = unsign(alias_id(old_key), "alias", stored)
    try:
        sealed = bytes.fromhex(payload or "")
    except ValueError:
        return None
    if len(sealed) != KEY_LENGTH:
        return None
    new_key = bytes(a ^ b for a, b in zip(sealed, _pad(old_key), strict=True)).decode("latin-1")
    return new_key if is_valid_session_key(new_key) and routing.has_tag(new_key) else None
