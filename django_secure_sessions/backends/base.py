"""The shared base of the session engines.

What both engines have in common lives here; a subclass only moves records in and out
of its storage through the ``_read`` / ``_write`` / ``_remove`` primitives (and their
``_a*`` async twins) and the class-level queries used by the Python API.

Security properties, each explained where it is implemented:

- storage is keyed by ``session_id_for_key(key)``, a one-way digest of the key;
- a malformed key never reaches storage, an unknown key is never adopted;
- stored data is signed, bound to its session id, and JSON only;
- forbidden keys and oversized sessions are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, ClassVar, Final

from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, SessionBase
from django.utils.crypto import get_random_string

from .. import signals
from ..binding import USER_AGENT_MAX_LENGTH, summarize_user_agent, user_agent_digest
from ..conf import conf
from ..exceptions import SensitiveDataError, SessionTooLarge

logger = logging.getLogger("django_secure_sessions")
security_logger = logging.getLogger("django.security.SuspiciousSession")

# django.contrib.auth.SESSION_KEY: where login() puts the user's primary key.
USER_ID_KEY: Final = "_auth_user_id"

# Keys that Django itself writes into sessions. They are never refused, even when a
# FORBIDDEN_KEYS pattern matches them ("_password_reset_token" contains "password").
DJANGO_SESSION_KEYS: Final = frozenset(
    {
        USER_ID_KEY,
        "_auth_user_backend",  # django.contrib.auth.BACKEND_SESSION_KEY
        "_auth_user_hash",  # django.contrib.auth.HASH_SESSION_KEY
        "_password_reset_token",  # auth.views.INTERNAL_RESET_SESSION_TOKEN
        "_session_expiry",  # SessionBase.set_expiry()
        "_csrftoken",  # django.middleware.csrf.CSRF_SESSION_KEY
        "_messages",  # messages.storage.session.SessionStorage.session_key
        "testcookie",  # SessionBase.TEST_COOKIE_NAME
    }
)

# Django's keys are get_random_string(32, VALID_KEY_CHARS). Anything else did not come
# from us, so it is refused before any storage round trip (no lookup for hostile
# 10 KB, NUL, glob or path keys, and no way to make us hash attacker-sized input).
_KEY_RE: Final = re.compile(f"[{re.escape(VALID_KEY_CHARS)}]{{32}}")
KEY_LENGTH: Final = 32

# A signature is an HMAC-SHA256, base64url without padding.
_SIGNATURE_LENGTH: Final = 43


def is_valid_session_key(key: object) -> bool:
    return isinstance(key, str) and len(key) == KEY_LENGTH and _KEY_RE.fullmatch(key) is not None


def session_id_for_key(session_key: str) -> str:
    """The digest under which a session is stored; also its public ``SessionInfo.id``.

    SHA-256 is one-way, so a leaked database or Redis dump, or an id shown in a page,
    gives nothing that can be sent back as a cookie. No secret is mixed in on purpose:
    the key already carries about 165 random bits, so a keyed hash would not make
    guessing any harder, and a storage id that does not depend on SECRET_KEY keeps
    every session reachable in one lookup when the secret is rotated. The prefix
    separates this digest from any other use of SHA-256 over the same key.
    """
    return hashlib.sha256(b"django-secure-sessions/session-id\x00" + session_key.encode()).hexdigest()


@lru_cache(maxsize=8)
def _signing_key(secret: str | bytes) -> bytes:
    # A key derived for this purpose only (domain separation): a signature made here
    # can't be replayed against any other use of SECRET_KEY, and vice versa.
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(b"django-secure-sessions/signing\x00" + raw).digest()


def _signature(key: bytes, session_id: str, part: str, payload: str) -> str:
    # The session id and the part's name are signed with the payload, so signed data
    # copied from another session (say, an administrator's) into this one, or from one
    # part of a record into another, does not verify.
    message = f"{session_id}\x00{part}\x00{payload}".encode()
    return base64.urlsafe_b64encode(hmac.digest(key, message, "sha256")).decode()[:_SIGNATURE_LENGTH]


def sign(session_id: str, part: str, payload: str) -> str:
    """``payload`` prefixed with its signature under the current SECRET_KEY."""
    return _signature(_signing_key(settings.SECRET_KEY), session_id, part, payload) + payload


def unsign(session_id: str, part: str, signed: str) -> str | None:
    """The payload of ``signed`` if its signature verifies, else None.

    Signatures made with a key of SECRET_KEY_FALLBACKS are accepted, so rotating the
    secret logs nobody out; the next write re-signs with the current key.
    """
    signature, payload = signed[:_SIGNATURE_LENGTH], signed[_SIGNATURE_LENGTH:]
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        expected = _signature(_signing_key(secret), session_id, part, payload)
        if hmac.compare_digest(signature, expected):
            return payload
    return None


def dumps(value: Any) -> str:
    """Compact JSON; ``ensure_ascii`` keeps its length equal to its size in bytes."""
    return json.dumps(value, separators=(",", ":"))


def load_signed_json(session_id: str, part: str, signed: str | None) -> Any:
    """The JSON value in a signed record part, or None if it is missing or corrupt.

    Corrupt, tampered or non-JSON data (a pickle, say) is logged on
    ``django.security.SuspiciousSession`` and never decoded further: it is no session.
    """
    if signed is None:
        return None
    payload = unsign(session_id, part, signed)
    if payload is not None:
        try:
            return json.loads(payload)
        except ValueError:
            pass
    security_logger.warning("Session data corrupted or tampered with (session %s)", session_id)
    return None


def to_datetime(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def epoch_to_datetime(epoch: int | None) -> datetime | None:
    return None if epoch is None else to_datetime(epoch)


def now_epoch() -> int:
    return int(time.time())


@dataclass(slots=True)
class SessionMeta:
    """What is recorded about a session beside its data. Times are epoch seconds.

    ``expires`` is when storage forgets the session; ``absolute_expiry`` is when it ends
    whatever the activity (login + ABSOLUTE_TIMEOUT). ``ip`` is the client address (or
    network) the session is bound to; ``ua_digest`` the digest of the raw user agent.
    """

    user_id: str | None = None
    created: int = 0
    last_activity: int = 0
    last_auth: int | None = None
    absolute_expiry: int | None = None
    expires: int = 0
    ip: str = ""
    ua_digest: str = ""
    user_agent: str = ""
    browser: str = ""
    os: str = ""
    device: str = ""

    # The order of fields in the compact list form used by the Redis engine.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "user_id",
        "created",
        "last_activity",
        "last_auth",
        "absolute_expiry",
        "expires",
        "ip",
        "ua_digest",
        "user_agent",
        "browser",
        "os",
        "device",
    )

    def to_list(self) -> list[Any]:
        return [getattr(self, name) for name in self.FIELDS]

    @classmethod
    def from_list(cls, values: Any) -> SessionMeta | None:
        """The meta in ``values`` (as made by ``to_list``), or None if malformed."""
        if not isinstance(values, list) or len(values) != len(cls.FIELDS):
            return None
        try:
            return cls(*values)
        except TypeError:
            return None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A read-only description of a session, safe to show and to log.

    ``id`` is a public, non-secret handle: the digest the session is stored under. It
    can be shown in a page or sent in an API answer; it can't be used as a cookie.
    """

    id: str
    user_id: str | None
    created: datetime
    last_activity: datetime
    last_auth: datetime | None
    expires: datetime
    absolute_expiry: datetime | None
    ip: str
    user_agent: str
    browser: str
    os: str
    device: str
    is_current: bool = field(default=False, compare=False)

    @classmethod
    def from_meta(cls, session_id: str, meta: SessionMeta) -> SessionInfo:
        return cls(
            id=session_id,
            user_id=meta.user_id,
            created=to_datetime(meta.created),
            last_activity=to_datetime(meta.last_activity),
            last_auth=epoch_to_datetime(meta.last_auth),
            expires=to_datetime(meta.expires),
            absolute_expiry=epoch_to_datetime(meta.absolute_expiry),
            ip=meta.ip,
            user_agent=meta.user_agent,
            browser=meta.browser,
            os=meta.os,
            device=meta.device,
        )


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read from storage: the signed data and the meta."""

    data: str
    meta: SessionMeta


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """What a save will write. ``data`` is None when only the meta changes."""

    session_id: str
    data: str | None
    meta: SessionMeta
    payload: str


class SecureSessionBase(SessionBase):
    """A ``SessionBase`` with hashed storage keys, signed JSON data and metadata."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The meta of the loaded (or created) record; None until then.
        self.meta: SessionMeta | None = None
        # The JSON of the data as last loaded or written, to tell a save that changes
        # nothing (which then refreshes only the meta) from one that does.
        self._stored_payload: str | None = None

    # -- keys ---------------------------------------------------------------------

    def _validate_session_key(self, key: Any) -> bool:
        return is_valid_session_key(key)

    def _get_new_session_key(self) -> str:
        # No exists() round trip: a collision among 36**32 keys won't happen, and if it
        # did, creation is an insert-if-absent that raises CreateError and is retried.
        return get_random_string(KEY_LENGTH, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    @property
    def session_id(self) -> str | None:
        """The public id of this session, or None before it has a key."""
        key = self.session_key
        return None if key is None else session_id_for_key(key)

    # -- guards on assignment -------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if key in DJANGO_SESSION_KEYS:
            return
        forbidden = conf.FORBIDDEN_KEYS
        if forbidden is not None and isinstance(key, str) and forbidden.search(key):
            raise SensitiveDataError(
                f"Refusing to store {key!r} in the session: it matches "
                "SECURE_SESSIONS_FORBIDDEN_KEYS. Keep secrets and personal data out of "
                "session state."
            )

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_key(key)
        super().__setitem__(key, value)

    async def aset(self, key: str, value: Any) -> None:
        self._check_key(key)
        await super().aset(key, value)

    def update(self, dict_: Mapping[str, Any]) -> None:
        for key in dict_:
            self._check_key(key)
        super().update(dict_)

    async def aupdate(self, dict_: Mapping[str, Any]) -> None:
        for key in dict_:
            self._check_key(key)
        await super().aupdate(dict_)

    # -- expiry -----------------------------------------------------------------------

    def _cap_age(self, age: int, modification: datetime | None) -> int:
        """Never let the cookie or storage outlive the session's absolute expiry."""
        absolute = self.meta.absolute_expiry if self.meta is not None else None
        if absolute is None:
            return age
        now = modification.timestamp() if modification is not None else time.time()
        return min(age, int(absolute - now))

    def get_expiry_age(self, **kwargs: Any) -> int:
        age: int = super().get_expiry_age(**kwargs)
        return self._cap_age(age, kwargs.get("modification"))

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        age: int = await super().aget_expiry_age(**kwargs)
        return self._cap_age(age, kwargs.get("modification"))

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        date: datetime = super().get_expiry_date(**kwargs)
        absolute = epoch_to_datetime(self.meta.absolute_expiry if self.meta else None)
        return date if absolute is None else min(date, absolute)

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        date: datetime = await super().aget_expiry_date(**kwargs)
        absolute = epoch_to_datetime(self.meta.absolute_expiry if self.meta else None)
        return date if absolute is None else min(date, absolute)

    # -- loading ----------------------------------------------------------------------

    def _adopt(self, session_id: str, record: StoredRecord | None) -> dict[str, Any]:
        """The data of a record just read, or an empty session if there is none."""
        data = None
        if record is not None:
            absolute = record.meta.absolute_expiry
            # Storage forgets a session at its absolute expiry; this check covers a TTL
            # or an expiry column that lags behind: past it, the session is over.
            if absolute is None or now_epoch() < absolute:
                data = load_signed_json(session_id, "data", record.data)
        if record is None or not isinstance(data, dict):
            # Never adopt a key we don't know: the next save makes a fresh one, so a
            # key planted by an attacker (session fixation) is never brought to life.
            self._session_key = None
            self._forget()
            return {}
        self.meta = record.meta
        self._stored_payload = record.data[_SIGNATURE_LENGTH:]
        return data

    def load(self) -> dict[str, Any]:
        key = self.session_key
        if key is None:
            return {}
        session_id = session_id_for_key(key)
        return self._adopt(session_id, self._read(session_id))

    async def aload(self) -> dict[str, Any]:
        key = self.session_key
        if key is None:
            return {}
        session_id = session_id_for_key(key)
        return self._adopt(session_id, await self._aread(session_id))

    def exists(self, session_key: str) -> bool:
        if not is_valid_session_key(session_key):
            return False
        return self._read(session_id_for_key(session_key)) is not None

    async def aexists(self, session_key: str) -> bool:
        if not is_valid_session_key(session_key):
            return False
        return await self._aread(session_id_for_key(session_key)) is not None

    # -- saving -----------------------------------------------------------------------

    def _new_meta(self, now: int) -> SessionMeta:
        return SessionMeta(created=now, last_activity=now)

    def _prepare(self, data: dict[str, Any], must_create: bool, age: int) -> PendingWrite:
        """Everything a save writes, computed without I/O (shared by save and asave)."""
        key = self.session_key
        assert key is not None  # save() creates a key first
        payload = dumps(data)
        if len(payload) > conf.MAX_SIZE:
            raise SessionTooLarge(
                f"The session is {len(payload)} bytes, more than "
                f"SECURE_SESSIONS_MAX_SIZE ({conf.MAX_SIZE})."
            )
        now = now_epoch()
        meta = replace(self.meta) if self.meta is not None else self._new_meta(now)
        user_id = data.get(USER_ID_KEY)
        user_id = None if user_id is None else str(user_id)
        if user_id != meta.user_id:
            # The session changed hands (normally at login, which also rotated the
            # key): nothing about the previous owner's authentication carries over.
            meta.user_id = user_id
            self._stamp_authentication(meta, now)
        meta.last_activity = now
        meta.expires = now + max(age, 1)
        session_id = session_id_for_key(key)
        changed = must_create or payload != self._stored_payload
        signed = sign(session_id, "data", payload) if changed else None
        return PendingWrite(session_id, signed, meta, payload)

    @staticmethod
    def _stamp_authentication(meta: SessionMeta, now: int) -> None:
        if meta.user_id is None:
            meta.last_auth = meta.absolute_expiry = None
            return
        meta.last_auth = now
        absolute_timeout = conf.ABSOLUTE_TIMEOUT
        meta.absolute_expiry = None if absolute_timeout is None else now + absolute_timeout

    def _written(self, pending: PendingWrite) -> None:
        self.meta = pending.meta
        self._stored_payload = pending.payload

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        pending = self._prepare(data, must_create, self.get_expiry_age())
        self._write(pending, must_create)
        self._written(pending)
        return None

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        pending = self._prepare(data, must_create, await self.aget_expiry_age())
        await self._awrite(pending, must_create)
        self._written(pending)
        return None

    def create(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    async def acreate(self) -> None:
        while True:
            self._session_key = await self._aget_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    # -- metadata set by the app ------------------------------------------------------

    def record_login(self, ip: str | None, user_agent: str) -> None:
        """Stamp a fresh authentication and bind the session to this client.

        Called at login (``user_logged_in``); saved with the session's next save.
        """
        self._get_session()  # make sure self.meta reflects storage before changing it
        now = now_epoch()
        meta = self.meta if self.meta is not None else self._new_meta(now)
        meta.created = now
        meta.user_id = None if (uid := self.get(USER_ID_KEY)) is None else str(uid)
        self._stamp_authentication(meta, now)
        self._bind_client(meta, ip, user_agent)
        self.meta = meta
        self.modified = True

    @staticmethod
    def _bind_client(meta: SessionMeta, ip: str | None, user_agent: str) -> None:
        summary = summarize_user_agent(user_agent)
        meta.ip = ip or ""
        meta.ua_digest = user_agent_digest(user_agent)
        meta.user_agent = user_agent[:USER_AGENT_MAX_LENGTH]
        meta.browser, meta.os, meta.device = summary.browser, summary.os, summary.device

    def touch(self) -> None:
        """Persist only the last activity and slide the expiry; the data is untouched.

        For a request that changed nothing but must record activity: it never
        overwrites data saved meanwhile by a concurrent request, and raises
        ``UpdateError`` (like ``save``) if the session was deleted meanwhile.
        """
        self._write(self._prepare_touch(self.get_expiry_age()), must_create=False)

    async def atouch(self) -> None:
        await self._awrite(self._prepare_touch(await self.aget_expiry_age()), must_create=False)

    def _prepare_touch(self, age: int) -> PendingWrite:
        key, meta = self.session_key, self.meta
        if key is None or meta is None:
            raise ValueError("touch() needs a loaded session")
        now = now_epoch()
        pending = PendingWrite(
            session_id_for_key(key),
            None,
            replace(meta, last_activity=now, expires=now + max(age, 1)),
            self._stored_payload or "",
        )
        self.meta = pending.meta
        return pending

    # -- rotation, flush, delete ------------------------------------------------------

    def cycle_key(self) -> None:
        previous = self.session_id
        super().cycle_key()  # keeps self.meta: the new record carries it over
        self._rotated(previous)

    async def acycle_key(self) -> None:
        previous = self.session_id
        await super().acycle_key()
        self._rotated(previous)

    def _rotated(self, previous: str | None) -> None:
        if previous is None:
            return
        signals.session_rotated.send(
            sender=type(self),
            request=None,
            user_id=self.meta.user_id if self.meta else None,
            session_id=self.session_id,
            previous_session_id=previous,
        )
        logger.info("Session %s rotated to %s", previous, self.session_id)

    def flush(self) -> None:
        super().flush()
        self._forget()

    async def aflush(self) -> None:
        await super().aflush()
        self._forget()

    def _forget(self) -> None:
        self.meta = None
        self._stored_payload = None

    def delete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if key is not None and is_valid_session_key(key):
            self._remove(session_id_for_key(key))

    async def adelete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if key is not None and is_valid_session_key(key):
            await self._aremove(session_id_for_key(key))

    # -- storage primitives, implemented by each engine ----------------------------------

    def _read(self, session_id: str) -> StoredRecord | None:
        raise NotImplementedError

    async def _aread(self, session_id: str) -> StoredRecord | None:
        raise NotImplementedError

    def _write(self, pending: PendingWrite, must_create: bool) -> None:
        """Write ``pending``: insert-if-absent (else ``CreateError``) when
        ``must_create``, otherwise update-if-present (else ``UpdateError``), so a
        session deleted meanwhile is never brought back. When ``pending.data`` is None
        only the meta is written."""
        raise NotImplementedError

    async def _awrite(self, pending: PendingWrite, must_create: bool) -> None:
        raise NotImplementedError

    def _remove(self, session_id: str) -> None:
        """Delete one session and its entry in the per-user index."""
        raise NotImplementedError

    async def _aremove(self, session_id: str) -> None:
        raise NotImplementedError

    # -- queries for the Python API -----------------------------------------------------

    @classmethod
    def user_sessions(cls, user_id: str) -> list[SessionInfo]:
        """The live sessions of a user, most recently active first."""
        raise NotImplementedError

    @classmethod
    def remove_user_sessions(cls, user_id: str, keep: Iterable[str] = ()) -> list[str]:
        """Delete every session of a user but those in ``keep``; return their ids."""
        raise NotImplementedError

    @classmethod
    def remove_session(cls, session_id: str) -> SessionMeta | None:
        """Delete a session by its public id; return its meta if it existed."""
        raise NotImplementedError
