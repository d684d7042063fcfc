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

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, ClassVar, Final

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.signals import setting_changed
from django.core.signing import JSONSerializer
from django.dispatch import receiver
from django.utils.crypto import get_random_string
from django.utils.translation import gettext

from .. import signals, timeouts
from ..binding import USER_AGENT_MAX_LENGTH, summarize_user_agent, user_agent_digest
from ..conf import conf
from ..exceptions import SensitiveDataError, SessionStorageUnavailable, SessionTooLarge
from . import routing

logger = logging.getLogger("django_secure_sessions")
security_logger = logging.getLogger("django.security.SuspiciousSession")

# While the session storage keeps failing, how often (seconds) the log says so again.
OUTAGE_REPORT_INTERVAL: Final = 60.0


class StorageOutage:
    """Whether this process's session storage is failing, so that an outage is logged
    when it starts, once a minute while it lasts and when it ends, instead of once per
    request: in a flood of failures, one line per request would bury everything else.

    The hot path pays one attribute read (``answered`` while nothing is failing).
    """

    def __init__(self) -> None:
        self.failing = False
        self._lock = threading.Lock()
        self._since = self._reported = 0.0
        self._failures = 0

    def failed(self, store: str, error: BaseException) -> None:
        now = time.time()
        with self._lock:
            self._failures += 1
            if not self.failing:
                self.failing, self._since, self._reported, self._failures = True, now, now, 1
                # The storage's own message names the server and the failure, never a
                # session key (only digests are ever sent to storage).
                logger.error(
                    "Session storage (%s) failed; sessions fail closed until it answers "
                    "again (requests go on without their session, those that must write "
                    "one get 503; logged again once a minute while it lasts). %s: %s",
                    store,
                    type(error).__name__,
                    error,
                )
            elif now - self._reported >= OUTAGE_REPORT_INTERVAL:
                self._reported = now
                logger.error(
                    "Session storage (%s) still failing after %.0f s, %d failed operations. "
                    "Last: %s: %s",
                    store,
                    now - self._since,
                    self._failures,
                    type(error).__name__,
                    error,
                )

    def answered(self, store: str) -> None:
        if not self.failing:
            return
        with self._lock:
            if self.failing:
                self.failing = False
                logger.warning(
                    "Session storage (%s) answers again, after %.0f s and %d failed operations.",
                    store,
                    time.time() - self._since,
                    self._failures,
                )


outage = StorageOutage()

# django.contrib.auth.SESSION_KEY: where login() puts the user's primary key.
USER_ID_KEY: Final = "_auth_user_id"


def user_id_in(data: dict[str, Any]) -> str | None:
    """The user a session's data is signed in as, as text (None: anonymous)."""
    user_id = data.get(USER_ID_KEY)
    return None if user_id is None else str(user_id)


# How a session began (SessionMeta.origin).
ORIGIN_REQUEST: Final = ""
ORIGIN_SCRIPT: Final = "script"
ORIGIN_IMPORTED: Final = "imported"

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

# Keys that django-allauth writes into sessions, by design, with a secret in them: like
# Django's "_password_reset_token", each keeps a secret of allauth's own flows out of a
# URL or a form for a few minutes, and allauth removes it when the flow ends. Refusing
# them would break password resets and authenticator setup for every allauth site; they
# are exempt by exact name, so any other key (yours) is still checked.
ALLAUTH_SESSION_KEYS: Final = frozenset(
    {
        "_password_reset_key",  # allauth.account: the key of a reset link, once opened
        "account_password_reset_verification",  # allauth.account: password reset by code
        "mfa.totp.secret",  # allauth.mfa: the seed of an authenticator app being set up
    }
)

# The keys never matched against FORBIDDEN_KEYS.
FRAMEWORK_SESSION_KEYS: Final = DJANGO_SESSION_KEYS | ALLAUTH_SESSION_KEYS

# Django's keys are get_random_string(32, VALID_KEY_CHARS). Anything else did not come
# from us, so it is refused before any storage round trip (no lookup for hostile
# 10 KB, NUL, glob or path keys, and no way to make us hash attacker-sized input).
_KEY_RE: Final = re.compile(f"[{re.escape(VALID_KEY_CHARS)}]{{32}}")
KEY_LENGTH: Final = 32

# The digests are no longer than they need to be (see session_id_for_key and
# _keyed_states): they are in every row, index entry and Redis key, and the size of those
# is what the cost of storing and cleaning up follows.
#
# A session id is a BLAKE2b-160, 40 hex digits: never the shape of a key (32 letters and
# digits), so an id in a log or a page can't be taken for a leaked key, nor a key for
# an id.
SESSION_ID_LENGTH: Final = 40
# A signature is a keyed BLAKE2b-128, 32 hex digits.
_SIGNATURE_SIZE: Final = 16
SIGNATURE_LENGTH: Final = 2 * _SIGNATURE_SIZE

# Copied for every id: cheaper than a new hash object with its parameters each time.
_SESSION_ID_STATE: Final = hashlib.blake2b(
    digest_size=SESSION_ID_LENGTH // 2, person=b"dss/session-id"
)


def is_valid_session_key(key: object) -> bool:
    """Whether ``key`` has the shape of a key: of Django's engines (and of ours on a single
    server), or on Redis Cluster of ours there (backends/routing.py)."""
    return (
        isinstance(key, str)
        and len(key) == KEY_LENGTH
        and (
            _KEY_RE.fullmatch(key) is not None
            or (routing.enabled() and routing.TAGGED_KEY_RE.fullmatch(key) is not None)
        )
    )


def session_id_for_key(session_key: str) -> str:
    """The digest under which a session is stored; also its public ``SessionInfo.id``.

    BLAKE2b is one-way, so a leaked database or Redis dump, or an id shown in a page,
    gives nothing that can be sent back as a cookie: finding any key with a given id
    takes about 2**160 tries. Two live keys would share an id only by a collision (an
    even chance needs about 2**80 sessions), and even then the second one's creation
    is refused as a conflict (Django then draws another key), never merged.

    No secret is mixed in on purpose: the key already carries about 165 random bits,
    so a keyed hash would not make guessing any harder, and a storage id that does not
    depend on SECRET_KEY keeps every session reachable in one lookup when the secret is
    rotated. The personalization separates this digest from any other use of BLAKE2b
    over the same key.

    On Redis Cluster, the id starts with the key's routing tag instead of the digest's
    first digits (backends/routing.py): the tag is not secret (it is no part of the
    key's randomness), and the rest of the digest, 144 bits, keeps the properties above.
    A key without a tag (another engine's, see backends/aliases.py) has the plain digest
    as its id: its first characters are as secret as the rest, and never shown.
    """
    digest = _SESSION_ID_STATE.copy()
    digest.update(session_key.encode())
    if routing.enabled() and routing.has_tag(session_key):
        return routing.key_tag(session_key) + digest.hexdigest()[routing.TAG_LENGTH :]
    return digest.hexdigest()


def _derive_key(secret: str | bytes) -> bytes:
    # A key derived for this purpose only (domain separation): a signature made here
    # can't be replayed against any other use of SECRET_KEY, and vice versa.
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(b"django-secure-sessions/signing\x00" + raw).digest()


# The signing keys (current first, then the fallbacks), each as a keyed BLAKE2b state
# made once and copied for every signature: reading the settings, or hashing the key
# block again, on every signature costs more than the signature.
_signers: list[Any] = []


@receiver(setting_changed)
def _forget_signers(*, setting: str, **kwargs: Any) -> None:
    if setting in {"SECRET_KEY", "SECRET_KEY_FALLBACKS"}:
        _signers.clear()


def _keyed_states() -> list[Any]:
    if not _signers:
        secrets = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
        # BLAKE2b in keyed mode is a MAC by design (no HMAC construction needed), and
        # about twice as fast as HMAC-SHA256: it runs on every load. A 128-bit tag, as
        # in AES-GCM or Poly1305: a forgery has one chance in 2**128 per try, and every
        # failed try is a refused session and a log line.
        _signers.extend(
            hashlib.blake2b(key=_derive_key(secret), digest_size=_SIGNATURE_SIZE)
            for secret in secrets
        )
    return _signers


def _message(session_id: str, part: str, payload: str) -> bytes:
    # The session id and the part's name are signed with the payload, so signed data
    # copied from another session (say, an administrator's) into this one, or from one
    # part of a record into another, does not verify.
    return f"{session_id}\x00{part}\x00{payload}".encode()


def sign(session_id: str, part: str, payload: str) -> str:
    """``payload`` prefixed with its signature under the current SECRET_KEY."""
    mac = _keyed_states()[0].copy()
    mac.update(_message(session_id, part, payload))
    return f"{mac.hexdigest()}{payload}"


def unsign(session_id: str, part: str, signed: str) -> str | None:
    """The payload of ``signed`` if its signature verifies, else None.

    Signatures made with a key of SECRET_KEY_FALLBACKS are accepted, so rotating the
    secret logs nobody out; the next write re-signs with the current key.
    """
    signature, payload = signed[:SIGNATURE_LENGTH], signed[SIGNATURE_LENGTH:]
    message = _message(session_id, part, payload)
    for keyed in _keyed_states():
        mac = keyed.copy()
        mac.update(message)
        if hmac.compare_digest(signature, mac.hexdigest()):
            return payload
    return None


def dumps(value: Any) -> str:
    """Compact JSON; ``ensure_ascii`` keeps its length equal to its size in bytes."""
    return json.dumps(value, separators=(",", ":"))


# The JSON value at an index of a string, and the index where it ends: the C scanner
# behind json.loads, called directly. It skips json.loads's checks for surrounding
# whitespace, which a verified payload (our own ``dumps`` output) never has, and two
# Python frames on every load. It raises one of DECODE_ERRORS for anything else.
_Scanner = Callable[[str, int], tuple[Any, int]]
decode_prefix: Final[_Scanner] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
DECODE_ERRORS: Final = (StopIteration, ValueError)


def report_corrupt(session_id: str) -> None:
    """Log a record that is corrupt, tampered with or not JSON (a pickle, say): it is
    never decoded further, and loads as no session."""
    security_logger.warning("Session data corrupted or tampered with (session %s)", session_id)


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def epoch_to_datetime(epoch: int | None) -> datetime | None:
    return None if epoch is None else to_datetime(epoch)


def now_epoch() -> int:
    return int(time.time())


def now_precise() -> float:
    """Now in epoch seconds to the microsecond, as a datetime column keeps it (so a
    value read back from the database is the very same float)."""
    return time.time_ns() // 1000 / 1_000_000


@dataclass(slots=True)
class SessionMeta:
    """What is recorded about a session beside its data. Times are epoch seconds;
    ``created`` to the microsecond, so that the sessions of one user logging in several
    times within a second still have an order (``MAX_PER_USER`` ends the oldest).

    ``expires`` is when the session ends: its cookie age, or sooner its idle or absolute
    deadline as of its last write (storage keeps the record ``EXPIRY_GRACE`` longer);
    ``absolute_expiry`` is when it ends whatever the activity (login + ABSOLUTE_TIMEOUT).
    ``ip`` is the client address the session is bound to (empty: bound to none);
    ``ua_digest`` the digest of the raw user agent (empty: not bound yet).
    ``origin`` is how the session began, for the pages that show it before its first
    request fills in the client: ``ORIGIN_REQUEST`` (a sign-in over HTTP, or an
    anonymous visit), ``ORIGIN_SCRIPT`` (signed in outside a request: a script, the test
    client's ``force_login()``) or ``ORIGIN_IMPORTED`` (copied by ``importsessions``).
    """

    user_id: str | None = None
    created: float = 0
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
    origin: str = ""

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
        "origin",
    )

    def same_except_activity(self, other: SessionMeta | None) -> bool:
        return (
            other is not None
            and replace(self, last_activity=other.last_activity, expires=other.expires) == other
        )

    def to_list(self) -> list[Any]:
        return [getattr(self, name) for name in self.FIELDS]

    @classmethod
    def from_list(cls, values: Any) -> SessionMeta | None:
        """The meta in ``values`` (as made by ``to_list``), or None if malformed: not a
        list of the right length, or a field of a type or range ``to_list`` never writes.

        A correctly signed record can still hold such a meta (written by another version
        of the package, or by a bug: the signature says who wrote it, not that it is
        well formed), and every field is used as what it claims to be: compared with the
        time by the timeouts, turned into a datetime to list sessions. Taken as it is, a
        list where a time belongs raises TypeError: a 500 on every request of the
        session, and on every page listing its user's sessions (theirs, the admin's).
        So it is corrupt: no session (fail closed), logged, never a crash.
        """
        if not isinstance(values, list) or len(values) != len(cls.FIELDS):
            return None
        user_id, created, activity, auth, absolute, expires, *texts = values
        # type() rather than isinstance(): JSON's true and false are Python bools, which
        # are ints, and never a time. Inline, as it runs on every load (under 1 µs).
        well_typed = (
            (user_id is None or type(user_id) is str)
            and (type(created) is float or type(created) is int)  # see the class
            and 0 <= created < _EPOCH_LIMIT
            and type(activity) is int
            and 0 <= activity < _EPOCH_LIMIT
            and type(expires) is int
            and 0 <= expires < _EPOCH_LIMIT
            and (auth is None or (type(auth) is int and 0 <= auth < _EPOCH_LIMIT))
            and (absolute is None or (type(absolute) is int and 0 <= absolute < _EPOCH_LIMIT))
            and all(type(text) is str for text in texts)
        )
        return cls(*values) if well_typed else None


# The first epoch second that a datetime can't hold (year 10000): a time in a record is
# always before it, and one past it could not even be shown.
_EPOCH_LIMIT: Final = 253_402_300_800


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
    origin: str = ORIGIN_REQUEST
    is_current: bool = field(default=False, compare=False)

    @property
    def device_label(self) -> str:
        """What to call the session's device on a page (see ``device_label``)."""
        return device_label(self.browser, self.os, self.device, self.origin)

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
            origin=meta.origin,
        )


def device_label(browser: str, os: str, device: str, origin: str) -> str:
    """ "Firefox · Ubuntu", "Mobile Safari · iOS · iPhone", or, for a session whose
    client is not known yet (its first request fills it in), "Unknown device" and how
    the session began: "Unknown device (imported)"."""
    # "Other" is what the user agent parser says of what it doesn't know (a desktop's
    # device, say): not worth showing.
    known = [part for part in (browser, os, device) if part and part != "Other"]
    if known:
        return " · ".join(known)
    if browser or os:
        return gettext("Unknown device")
    if origin == ORIGIN_IMPORTED:
        return gettext("Unknown device (imported)")
    if origin == ORIGIN_SCRIPT:
        return gettext("Unknown device (signed in by a script)")
    return gettext("Unknown device")


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A session that a load found past a timeout (and so refused)."""

    session_id: str
    user_id: str | None
    reason: timeouts.EndReason


@dataclass(frozen=True, slots=True)
class ImportedSession:
    """What ``import_session`` did (or, in a dry run, would do) with a session of
    another engine: the public id it has here, and whether it is ``new`` (False: it was
    imported before). The id is "" in a dry run that would store the session under a
    key not chosen yet (see the Redis engine on Cluster)."""

    session_id: str
    new: bool


# What identifies a version of a stored record (see StoredRecord).
Version = str | bytes


@dataclass(slots=True)
class StoredRecord:
    """A record as read from storage, its signature verified: the JSON of its data
    (decoded only if the session is adopted) and its meta.

    ``version`` identifies what is stored, as it is read, at no cost: Redis, the
    signature of the whole record; the db engine, the data column's bytes. A save with
    changes of its own writes only if the record is still this version, else it merges
    them (see ``WriteConflict``); a save without (a refresh of the activity) writes
    only if it is still this version on Redis, whose record is rewritten whole, so it
    never undoes what a concurrent request saved.
    """

    payload: str
    meta: SessionMeta
    version: Version = ""


class WriteConflict(Exception):
    """Raised by an engine's ``_write``: a concurrent request saved the session since
    this one loaded it, so nothing was written. ``record`` is what storage holds now, or
    None if it holds no readable record any more (deleted, or corrupt)."""

    def __init__(self, record: StoredRecord | None) -> None:
        super().__init__("The session was saved by a concurrent request.")
        self.record = record


# How many times a save that keeps meeting concurrent saves merges and tries again before
# it gives up (SessionStorageUnavailable, which the middleware answers with 503: the
# change is not acknowledged, never acknowledged and lost). Each try after the first
# means another request's save got in between: some request always makes progress.
SAVE_ATTEMPTS: Final = 10

# The meta fields that change together: a binding (bind_client) and an authentication
# (record_login, record_reauth). A merge takes each group whole from one side, never
# one client's address with another's user agent. The activity and expiry are not
# merged: the save records its own (see _prepare).
META_GROUPS: Final = (
    ("ip", "ua_digest", "user_agent", "browser", "os", "device"),
    ("user_id", "created", "last_auth", "absolute_expiry", "origin"),
)


def _json_equal(a: Any, b: Any) -> bool:
    # Compared as JSON, not with ==, for which 1, 1.0 and True are all equal.
    return a is b or dumps(a) == dumps(b)


def merge_data(
    fresh: dict[str, Any], loaded: dict[str, Any], ours: dict[str, Any]
) -> dict[str, Any]:
    """This request's changes (``ours`` against ``loaded``, what it loaded) applied onto
    ``fresh``, what a concurrent request saved meanwhile.

    A change is a key this request set (new, or a value that differs from the one it
    loaded: a diff, so a nested value changed in place and flagged with
    ``session.modified = True`` counts too) or deleted; every other key is as the
    concurrent request left it. A key that both changed: this request's value, the
    later save's (the last save wins, key by key).
    """
    merged = dict(fresh)
    for key, value in ours.items():
        if key not in loaded or not _json_equal(loaded[key], value):
            merged[key] = value
    for key in loaded.keys() - ours.keys():
        merged.pop(key, None)
    return merged


def merge_meta(fresh: SessionMeta, loaded: SessionMeta, ours: SessionMeta) -> SessionMeta:
    """``fresh`` with each group of ``META_GROUPS`` that this request changed (``ours``
    against ``loaded``) taken from ``ours``."""
    changed: dict[str, Any] = {}
    for group in META_GROUPS:
        if any(getattr(ours, name) != getattr(loaded, name) for name in group):
            changed.update((name, getattr(ours, name)) for name in group)
    return replace(fresh, **changed)


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """What a save will write.

    The activity (last activity, expiry) is always written. ``data_changed`` is False
    when the data (``payload``, its JSON) didn't change, and ``meta_changed`` False
    when nothing else in the meta did: a write then can't undo what a concurrent
    request saved.
    """

    session_id: str
    data_changed: bool
    meta: SessionMeta
    meta_changed: bool
    payload: str
    # The session's age is zero or less (set_expiry() with a past date or a negative
    # number): it ends now, so the save removes it. A session that reached its idle or
    # absolute deadline meanwhile is not this: its write is refused (UpdateError).
    ends_at_once: bool = False


class SecureSessionBase(SessionBase):
    """A ``SessionBase`` with hashed storage keys, signed JSON data and metadata."""

    # What the storage raises when it is unreachable or fails.
    storage_errors: ClassVar[tuple[type[Exception], ...]] = ()
    # What expired_batches() removes per batch unless told otherwise (see the engines).
    expired_batch_size: ClassVar[int]

    # Django's JSON serializer, whatever SESSION_SERIALIZER says (check E003 refuses
    # pickle there): only SessionBase.encode() and decode() use it, for code that calls
    # them; the engines store their own signed JSON.
    serializer = JSONSerializer

    # The meta of the loaded (or created) record; None until then.
    meta: SessionMeta | None = None
    # Set when the load found this session past its idle or absolute timeout.
    ended: EndedSession | None = None
    # The data's JSON, the meta and its version (see StoredRecord) as last loaded or
    # written, to tell what a save changes: what it doesn't change, it doesn't write.
    _stored_payload: str | None = None
    _stored_meta: SessionMeta | None = None
    _stored_version: Version = ""
    # Set when this request's load failed: the session is unknown, not absent, so it is
    # neither adopted nor written (see _unreadable).
    _unreadable_error: BaseException | None = None

    def __init__(self, session_key: str | None = None) -> None:
        # What SessionBase.__init__ does, but for resolving SESSION_SERIALIZER with
        # import_string on every request (``serializer`` is a class attribute); the
        # per-session state starts as the class attributes above. A test holds the
        # attributes set here to those SessionBase.__init__ sets.
        self._session_key = session_key
        self.accessed = False
        self.modified = False

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
        if key in FRAMEWORK_SESSION_KEYS:
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

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(self._checked(dict(*args, **kwargs)))

    async def aupdate(self, *args: Any, **kwargs: Any) -> None:
        await super().aupdate(self._checked(dict(*args, **kwargs)))

    def _checked(self, items: dict[str, Any]) -> dict[str, Any]:
        for key in items:
            self._check_key(key)
        return items

    # -- expiry -----------------------------------------------------------------------

    def _deadline(self, now: float) -> int | None:
        meta = self.meta
        if meta is None:
            return None
        if self.modified:
            # SessionMiddleware asks for the cookie's age just before it saves, and the
            # save records this moment as the last activity.
            meta = replace(meta, last_activity=max(meta.last_activity, int(now)))
        return timeouts.deadline(meta, conf.IDLE_TIMEOUT)

    def _cap_age(self, age: int, modification: datetime | None) -> int:
        """The cookie never outlives the session: not its idle nor absolute deadline."""
        now = modification.timestamp() if modification is not None else time.time()
        limit = self._deadline(now)
        return age if limit is None else min(age, int(limit - now))

    def get_expiry_age(self, **kwargs: Any) -> int:
        age: int = super().get_expiry_age(**kwargs)
        return self._cap_age(age, kwargs.get("modification"))

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        age: int = await super().aget_expiry_age(**kwargs)
        return self._cap_age(age, kwargs.get("modification"))

    def _cap_date(self, date: datetime, modification: datetime | None) -> datetime:
        now = modification.timestamp() if modification is not None else time.time()
        limit = self._deadline(now)
        return date if limit is None else min(date, to_datetime(limit))

    def get_expiry_date(self, **kwargs: Any) -> datetime:
        return self._cap_date(super().get_expiry_date(**kwargs), kwargs.get("modification"))

    async def aget_expiry_date(self, **kwargs: Any) -> datetime:
        return self._cap_date(await super().aget_expiry_date(**kwargs), kwargs.get("modification"))

    def _uncapped_age(self) -> int:
        age: int = SessionBase.get_expiry_age(self)
        return age

    async def _auncapped_age(self) -> int:
        age: int = await SessionBase.aget_expiry_age(self)
        return age

    @staticmethod
    def _expires(meta: SessionMeta, now: int, age: int) -> int:
        """When storage should end a session written now: its cookie age, or sooner
        at its idle or absolute deadline."""
        limit = timeouts.deadline(meta, conf.IDLE_TIMEOUT)
        # An age of zero or less ends the session now (see PendingWrite.ends_at_once).
        expires = now + age
        return expires if limit is None else min(expires, limit)

    # -- loading ----------------------------------------------------------------------

    def _adopt(self, session_id: str, record: StoredRecord | None) -> dict[str, Any]:
        """The data of a record just read, or an empty session if there is none."""
        data = None
        if record is not None:
            meta, now = record.meta, now_epoch()
            # Deadlines are checked before anything else: storage keeps an ended
            # session a little longer (EXPIRY_GRACE) only so it can be reported.
            reason = timeouts.end_reason(meta, now, conf.IDLE_TIMEOUT)
            if reason is not None:
                self.ended = EndedSession(session_id, meta.user_id, reason)
            elif now < meta.expires:
                data = self._decode_data(session_id, record.payload)
                if data is not None and user_id_in(data) != meta.user_id:
                    # The timeouts, the binding and the user's index go by the meta's
                    # user, and every save writes it from the data: a record where they
                    # differ was not written by a save (a bug, a hand-edited row), and
                    # adopting it would sign in a user whom none of those checks saw.
                    report_corrupt(session_id)
                    data = None
        if record is None or data is None:
            # Never adopt a key we don't know: the next save makes a fresh one, so a
            # key planted by an attacker (session fixation) is never brought to life.
            self._session_key = None
            self._forget()
            return {}
        self.meta = self._stored_meta = record.meta
        self._stored_payload = record.payload
        self._stored_version = record.version
        return data

    @staticmethod
    def _decode_data(session_id: str, payload: str) -> dict[str, Any] | None:
        try:
            data, end = decode_prefix(payload, 0)
        except DECODE_ERRORS:
            data, end = None, -1
        if end != len(payload) or not isinstance(data, dict):
            report_corrupt(session_id)
            return None
        return data

    def load(self) -> dict[str, Any]:
        key = self.session_key
        if key is None:
            return {}
        try:
            session_id, record = self._find(key)
        except self.storage_errors as error:
            return self._unreadable(error)
        outage.answered(type(self).__module__)
        return self._adopt(session_id, record)

    def _find(self, key: str) -> tuple[str, StoredRecord | None]:
        """The id and the record of the session a cookie's key names (one round trip)."""
        session_id = session_id_for_key(key)
        return session_id, self._read(session_id)

    async def _afind(self, key: str) -> tuple[str, StoredRecord | None]:
        session_id = session_id_for_key(key)
        return session_id, await self._aread(session_id)

    def _unreadable(self, error: BaseException) -> dict[str, Any]:
        """Fail closed when the storage can't be read: without it, a valid session can't
        be told from a forged one, so the request goes on with no session data
        (anonymous). The key is kept, not forgotten as an unknown one is: Django's
        SessionMiddleware would otherwise delete the cookie of a session that may be
        fine once the storage answers again. And nothing is written under it (see
        ``_writing``): a save now would replace the stored data with this request's."""
        outage.failed(type(self).__module__, error)
        self._unreadable_error = error
        self._forget()
        return {}

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Around every write: the storage's failure becomes ``SessionStorageUnavailable``
        (which the middleware answers with 503), logged once per outage."""
        if self._unreadable_error is not None:
            msg = "This request's session could not be read, so it is not written."
            raise SessionStorageUnavailable(msg) from self._unreadable_error
        try:
            yield
        except SessionStorageUnavailable:
            raise
        except self.storage_errors as error:
            outage.failed(type(self).__module__, error)
            msg = f"The session storage failed ({type(error).__name__}: {error})."
            raise SessionStorageUnavailable(msg) from error

    async def aload(self) -> dict[str, Any]:
        key = self.session_key
        if key is None:
            return {}
        try:
            session_id, record = await self._afind(key)
        except self.storage_errors as error:
            return self._unreadable(error)
        outage.answered(type(self).__module__)
        return self._adopt(session_id, record)

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

    def _prepare(
        self, session_id: str, data: dict[str, Any], must_create: bool, age: int
    ) -> PendingWrite:
        """Everything a save writes, computed without I/O (shared by save and asave)."""
        payload = dumps(data)
        if len(payload) > conf.MAX_SIZE:
            raise SessionTooLarge(
                f"The session is {len(payload)} bytes, more than "
                f"SECURE_SESSIONS_MAX_SIZE ({conf.MAX_SIZE})."
            )
        now = now_epoch()
        meta = replace(self.meta) if self.meta is not None else self._new_meta(now)
        user_id = user_id_in(data)
        if user_id != meta.user_id:
            # The session changed hands (normally at login, which also rotated the
            # key): nothing about the previous owner's authentication carries over.
            meta.user_id = user_id
            self._stamp_authentication(meta, now)
        meta.last_activity = now
        meta.expires = self._expires(meta, now, age)
        changed = must_create or payload != self._stored_payload
        meta_changed = not meta.same_except_activity(self._stored_meta)
        return PendingWrite(session_id, changed, meta, meta_changed, payload, age <= 0)

    @staticmethod
    def _stamp_authentication(meta: SessionMeta, now: int) -> None:
        if meta.user_id is None:
            meta.last_auth = meta.absolute_expiry = None
            return
        meta.last_auth = now
        absolute_timeout = conf.ABSOLUTE_TIMEOUT
        meta.absolute_expiry = None if absolute_timeout is None else now + absolute_timeout

    def _written(self, pending: PendingWrite, version: Version | None) -> None:
        """Keep what a save stored, to tell what the next one changes; ``version`` None:
        the engine left the write out, and what it stores is still what was loaded."""
        self.meta = pending.meta
        if version is not None:
            self._stored_meta, self._stored_payload = pending.meta, pending.payload
            self._stored_version = version

    def save(self, must_create: bool = False) -> None:
        key = self.session_key
        if key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        pending = self._prepare(session_id_for_key(key), data, must_create, self._uncapped_age())
        self._store(pending, must_create)
        return None

    async def asave(self, must_create: bool = False) -> None:
        key = self.session_key
        if key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined]
        age = await self._auncapped_age()
        pending = self._prepare(session_id_for_key(key), data, must_create, age)
        await self._astore(pending, must_create)
        return None

    def _store(self, pending: PendingWrite, must_create: bool) -> None:
        with self._writing():
            for _ in range(SAVE_ATTEMPTS):
                if pending.ends_at_once:
                    # Removed rather than stored: no load would accept it, and the
                    # cleanup would keep it EXPIRY_GRACE longer for nothing.
                    self._remove(pending.session_id)
                    self._forget()
                    return
                try:
                    version = self._write(pending, must_create)
                except WriteConflict as conflict:
                    data = self._merge(pending, conflict.record)
                    pending = self._prepare(pending.session_id, data, False, self._uncapped_age())
                else:
                    self._written(pending, version)
                    return
            raise self._contended(pending)

    async def _astore(self, pending: PendingWrite, must_create: bool) -> None:
        with self._writing():
            for _ in range(SAVE_ATTEMPTS):
                if pending.ends_at_once:
                    await self._aremove(pending.session_id)
                    self._forget()
                    return
                try:
                    version = await self._awrite(pending, must_create)
                except WriteConflict as conflict:
                    data = self._merge(pending, conflict.record)
                    age = await self._auncapped_age()
                    pending = self._prepare(pending.session_id, data, False, age)
                else:
                    self._written(pending, version)
                    return
            raise self._contended(pending)

    def _merge(self, pending: PendingWrite, fresh: StoredRecord | None) -> dict[str, Any]:
        """After a ``WriteConflict``: this request's changes (``pending`` against what it
        loaded) applied onto ``fresh``, what storage holds now, which becomes what this
        request loaded; the merged data becomes this session's data, to be saved again
        on top of ``fresh``. No I/O: the engine read ``fresh`` with its conflict.

        Only here is the JSON as loaded decoded again: a save that meets no concurrent
        one costs what it did before merging existed.
        """
        session_id, loaded_meta, loaded = pending.session_id, self._stored_meta, None
        if self._stored_payload is not None:
            loaded = self._decode_data(session_id, self._stored_payload)
        if (
            # Deleted (revoked, logged out), or unreadable: it stays that way.
            fresh is None
            # Ended (expired, or past a timeout as of its last write; storage keeps it
            # EXPIRY_GRACE longer): never brought back.
            or fresh.meta.expires <= now_epoch()
            # Another user's now (a login or logout rotates the key, so this is not
            # a session that two tabs share): nothing of this request's may go into it.
            or loaded_meta is None
            or fresh.meta.user_id != loaded_meta.user_id
            or loaded is None
            or (current := self._decode_data(session_id, fresh.payload)) is None
            or (ours := self._decode_data(session_id, pending.payload)) is None
        ):
            raise UpdateError
        if user_id_in(current) != fresh.meta.user_id:
            # Not written by a save (see _adopt): corrupt, and never merged into.
            report_corrupt(session_id)
            raise UpdateError
        data = merge_data(current, loaded, ours)
        self.meta = merge_meta(fresh.meta, loaded_meta, self.meta or loaded_meta)
        self._stored_meta, self._stored_payload = fresh.meta, fresh.payload
        self._stored_version = fresh.version
        self._session_cache = data
        return data

    def _contended(self, pending: PendingWrite) -> SessionStorageUnavailable:
        logger.warning(
            "Session %s not saved: %d concurrent saves got in first, one after the other.",
            pending.session_id,
            SAVE_ATTEMPTS,
        )
        return SessionStorageUnavailable(
            f"The session was saved by concurrent requests {SAVE_ATTEMPTS} times while "
            "this one tried to save it; this request's change is not saved."
        )

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

    def _ensure_loaded(self) -> None:
        # Loads (once), so that self.meta reflects storage before it is changed.
        self._get_session()  # type: ignore[attr-defined]

    def record_login(self, origin: str = ORIGIN_REQUEST) -> None:
        """Stamp a fresh authentication: created, last authentication, absolute expiry,
        and how the session began (``origin``).

        Called at login (``user_logged_in``); saved with the session's next save.
        """
        self._ensure_loaded()
        now = now_epoch()
        meta = replace(self.meta) if self.meta is not None else self._new_meta(now)
        meta.created = now_precise()
        meta.origin = origin
        meta.user_id = None if (uid := self.get(USER_ID_KEY)) is None else str(uid)
        self._stamp_authentication(meta, now)
        self.meta = meta
        self.modified = True

    def record_reauth(self) -> None:
        """Stamp a confirmed re-authentication (the absolute timeout still counts from
        the login). Saved with the session's next save."""
        self._ensure_loaded()
        if self.meta is not None:
            self.meta = replace(self.meta, last_auth=now_epoch())
            self.modified = True

    @property
    def is_bound(self) -> bool:
        """Whether the session is bound to a client (it is from its first request on)."""
        return self.meta is not None and self.meta.ua_digest != ""

    def bind_client(self, ip: str | None, user_agent: str) -> None:
        """Bind the session to this client's address and user agent.

        ``ip`` is None when the address could not be parsed: the session is then bound
        to no address, which no request matches (fail closed).
        """
        self._ensure_loaded()
        meta = replace(self.meta) if self.meta is not None else self._new_meta(now_epoch())
        summary = summarize_user_agent(user_agent)
        meta.ip = ip or ""
        meta.ua_digest = user_agent_digest(user_agent)
        meta.user_agent = user_agent[:USER_AGENT_MAX_LENGTH]
        meta.browser, meta.os, meta.device = summary.browser, summary.os, summary.device
        self.meta = meta
        self.modified = True

    def touch(self) -> None:
        """Persist only the last activity and slide the expiry; the data is untouched.

        For a request that changed nothing but must record activity: it never
        overwrites data saved meanwhile by a concurrent request, and raises
        ``UpdateError`` (like ``save``) if the session was deleted meanwhile.
        """
        self._store(self._prepare_touch(self._uncapped_age()), must_create=False)

    async def atouch(self) -> None:
        await self._astore(self._prepare_touch(await self._auncapped_age()), must_create=False)

    def _prepare_touch(self, age: int) -> PendingWrite:
        key, meta = self.session_key, self.meta
        if key is None or meta is None:
            raise ValueError("touch() needs a loaded session")
        now = now_epoch()
        touched = replace(meta, last_activity=now)
        touched.expires = self._expires(touched, now, age)
        return PendingWrite(
            session_id_for_key(key), False, touched, False, self._stored_payload or "", age <= 0
        )

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
        # The request is known to the middleware only (imported here: it imports this
        # module); it is passed when this is that request's session.
        from ..middleware import current_request

        request = current_request.get()
        signals.session_rotated.send(
            sender=type(self),
            request=request if getattr(request, "session", None) is self else None,
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
        self.meta = self._stored_meta = None
        self._stored_payload = None
        self._stored_version = ""

    def discard_ended(self) -> None:
        """Delete the record of a session that the load found ended (see ``ended``)."""
        if self.ended is not None:
            with self._writing():
                self._remove(self.ended.session_id)

    async def adiscard_ended(self) -> None:
        if self.ended is not None:
            with self._writing():
                await self._aremove(self.ended.session_id)

    def delete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if key is not None and is_valid_session_key(key):
            with self._writing():
                self._remove(session_id_for_key(key))

    async def adelete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if key is not None and is_valid_session_key(key):
            with self._writing():
                await self._aremove(session_id_for_key(key))

    # -- re-authentication attempts -----------------------------------------------------
    #
    # The count of attempts lives in the session's own record, beside (not in) its data,
    # and only the storage adds to it, in one atomic operation, before the attempt is
    # checked: parallel attempts can't overwrite each other's count (a count kept in the
    # data would be read, incremented and saved back by each of them, and a burst of
    # guesses would count as one), and a save never writes it back. Revoking the session
    # removes the count with it; a new record (a rotated key) starts at zero.

    def count_reauth_attempt(self) -> int | None:
        """Count one re-authentication attempt on this session, before it is checked.

        Returns the attempt's number (1 for the first since the session's key was last
        rotated), or None if the session is no longer stored or has ended (revoked,
        expired or locked out by a concurrent request).
        """
        key = self.session_key
        return None if key is None else self._count_attempt(session_id_for_key(key))

    def confirm_reauth(self, max_attempts: int) -> int | None:
        """Rotate the key of a session whose re-authentication was just confirmed,
        stamping it, unless attempts beyond ``max_attempts`` were counted on it meanwhile.

        The old record is taken (deleted, reading its count in the same atomic
        operation) before the new one is written: a concurrent attempt counted after
        this finds no session, and one counted before is seen here. Returns the count
        the old record had, or None if it was no longer stored. Above ``max_attempts``
        (a concurrent attempt locked the session out) or None, the session is ended
        here, and no new record is written.
        """
        previous = self.session_id
        if previous is None:
            return None
        self._ensure_loaded()
        attempts = self._take(previous)
        if attempts is None or attempts > max_attempts:
            self.abandon()
            return attempts
        self.record_reauth()  # stamped before create(), so its one write carries it
        self.create()  # the data and the meta carry over to the new key
        self._rotated(previous)
        return attempts

    def abandon(self) -> None:
        """Forget a session whose record storage no longer holds (removed by another
        request or by this one): no data, no key, so the response deletes its cookie."""
        self.clear()
        self._session_key = None
        self._forget()

    @classmethod
    def count_user_reauth_attempt(cls, user_id: str, window: int) -> tuple[int, int]:
        """Count one re-authentication attempt of a user, across all of their sessions,
        in a fixed window of ``window`` seconds that starts with the first attempt
        counted after the previous window ended. Atomic in storage. Returns the
        attempt's number in its window and the seconds left until the window ends."""
        raise NotImplementedError

    @classmethod
    def uncount_user_reauth_attempt(cls, user_id: str, window: int) -> None:
        """Take back one attempt counted by ``count_user_reauth_attempt`` (a confirmed
        re-authentication is not a failure); nothing if the window has ended."""
        raise NotImplementedError

    # -- storage primitives, implemented by each engine ----------------------------------

    def _read(self, session_id: str) -> StoredRecord | None:
        raise NotImplementedError

    async def _aread(self, session_id: str) -> StoredRecord | None:
        raise NotImplementedError

    def _write(self, pending: PendingWrite, must_create: bool) -> Version | None:
        """Write ``pending``: insert-if-absent (else ``CreateError``) when
        ``must_create``, otherwise update-if-present (else ``UpdateError``), so a
        session deleted meanwhile is never brought back. What didn't change is not
        written (see ``PendingWrite``). A change of the data (on Redis, of the meta too)
        is written only if the record is still the version this request loaded
        (``_stored_version``), in the same round trip; else ``WriteConflict``, with the
        record as stored now (one more round trip for the db engine, none for Redis).
        Returns the version of the record now stored (see ``StoredRecord``), or None if
        the engine left the write out."""
        raise NotImplementedError

    async def _awrite(self, pending: PendingWrite, must_create: bool) -> Version | None:
        raise NotImplementedError

    def _remove(self, session_id: str) -> None:
        """Delete one session and its entry in the per-user index."""
        raise NotImplementedError

    async def _aremove(self, session_id: str) -> None:
        raise NotImplementedError

    def _count_attempt(self, session_id: str) -> int | None:
        """Add one to the attempt count of a live (unexpired) session and return it, in
        one atomic operation; None if there is no such session."""
        raise NotImplementedError

    def _take(self, session_id: str) -> int | None:
        """Delete a session (and its index entry) and return its attempt count, in one
        atomic operation; None if it was not stored or had expired."""
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

    # -- listing, for the admin ------------------------------------------------------------

    @classmethod
    def sessions_by_id(cls, session_ids: list[str]) -> list[SessionInfo]:
        """The live sessions among these ids."""
        raise NotImplementedError

    @classmethod
    def page_sessions(cls, cursor: int, count: int) -> tuple[int, list[SessionInfo]]:
        """About ``count`` live sessions from ``cursor`` on, and the cursor of the next
        page (0 at the end). Costs a page, whatever the number of sessions."""
        raise NotImplementedError

    @classmethod
    def count_signed_in(cls) -> int:
        """How many live sessions have a user (what the admin's Sessions page lists on
        the Redis engine)."""
        raise NotImplementedError

    # -- maintenance, for the management commands ------------------------------------------

    @classmethod
    def clear_expired(cls) -> None:
        for _ in cls.expired_batches():
            pass

    @classmethod
    async def aclear_expired(cls) -> None:
        # The same batches, in a thread: each batch is a transaction (the async ORM
        # can't open one) with the connection settings the engine asks for, and a
        # maintenance job gains nothing from running on the event loop.
        await sync_to_async(cls.clear_expired)()

    @classmethod
    def expired_batches(
        cls, batch_size: int | None = None, *, dry_run: bool = False
    ) -> Iterator[int]:
        """Remove what has expired, ``batch_size`` entries (default:
        ``expired_batch_size``) at a time, yielding how many entries each batch removed
        (or, with ``dry_run``, would remove). Memory stays bounded."""
        raise NotImplementedError

    @classmethod
    def all_session_ids(cls, batch_size: int = 1000) -> Iterator[list[str]]:
        """The ids of every stored session, a batch at a time."""
        raise NotImplementedError

    @classmethod
    def remove_sessions(cls, session_ids: list[str]) -> list[tuple[str, str | None]]:
        """Delete these sessions; return (id, user id) of those that existed."""
        raise NotImplementedError

    @classmethod
    def import_session(
        cls, session_key: str, data: dict[str, Any], expires: int, *, dry_run: bool = False
    ) -> ImportedSession | None:
        """Store a session of another engine under its own key, so its cookie keeps
        working; None if the key is malformed (nothing is stored). With ``dry_run``, only
        tell what would be stored.

        What another engine doesn't record is filled in as of now: created and last
        authentication (so the timeouts count from the import), and the client binding
        is left to the session's first request (see the middleware). Raises
        ``SensitiveDataError`` or ``SessionTooLarge`` as assigning and saving ``data``
        would.
        """
        importing = cls._importing(session_key, data, expires)
        if importing is None:
            return None
        store, pending = importing
        if dry_run:
            return ImportedSession(pending.session_id, new=not store.exists(session_key))
        try:
            store._write(pending, must_create=True)
        except CreateError:
            return ImportedSession(pending.session_id, new=False)
        return ImportedSession(pending.session_id, new=True)

    @classmethod
    def _importing(
        cls, session_key: str, data: dict[str, Any], expires: int
    ) -> tuple[SecureSessionBase, PendingWrite] | None:
        """A store for a session of another engine under ``session_key``, and what
        importing it writes (None if the key is malformed); no I/O."""
        store = cls(session_key)
        if store.session_key is None:
            return None
        # The guards of assignment apply: a session holding a forbidden key is refused.
        store._checked(data)
        now = now_epoch()
        store.meta = replace(store._new_meta(now), origin=ORIGIN_IMPORTED)
        session_id = session_id_for_key(session_key)
        return store, store._prepare(session_id, data, True, max(expires - now, 1))
