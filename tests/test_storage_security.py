"""What storage holds and what the engines accept from it and from clients.

No raw session key in storage; hostile keys refused before any round trip; corrupt,
tampered, replayed or pickled records treated as no session (logged, never raised,
never unpickled); SECRET_KEY rotation.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import hypothesis
import pytest
from django.contrib.auth.models import AbstractBaseUser, User
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.test import Client
from django.test.utils import override_settings
from hypothesis import strategies as st

from django_secure_sessions import list_user_sessions
from django_secure_sessions.backends import routing
from django_secure_sessions.backends.base import (
    SIGNATURE_LENGTH,
    USER_ID_KEY,
    SessionMeta,
    dumps,
    session_id_for_key,
    sign,
)
from django_secure_sessions.models import SecureSession
from tests.factories import PASSWORD
from tests.marks import async_test
from tests.sessions import (
    CHROME_ON_WINDOWS,
    UNKNOWN_KEY,
    Exploit,
    Storage,
    StoreClass,
    admin_login,
    loaded,
    saved,
    session_key_of,
    user_id,
)

SECURITY_LOGGER = "django.security.SuspiciousSession"
# Django's keys, and ours on a single server; on Redis Cluster ours start with a routing
# tag in capitals (backends/routing.py).
KEY_SHAPE = re.compile("(?:[a-z0-9]{4}|[A-P]{4})[a-z0-9]{28}")


# -- no raw key in storage ---------------------------------------------------------------

LOGINS: dict[str, Callable[[Client, Any], object]] = {
    "login-form": lambda client, user: admin_login(
        client, user, REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT=CHROME_ON_WINDOWS
    ),
    "client.login": lambda client, user: client.login(
        username=user.get_username(), password=PASSWORD
    ),
    "client.force_login": lambda client, user: client.force_login(user),
}


@pytest.mark.parametrize("login", LOGINS.values(), ids=LOGINS.keys())
def test_the_session_key_is_stored_nowhere(
    client: Client,
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
    login: Callable[[Client, Any], object],
) -> None:
    staff = make_user(is_staff=True)
    login(client, staff)
    key = session_key_of(client)
    # A request from the same client (the login form bound the session to it).
    response = client.get("/admin/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT=CHROME_ON_WINDOWS)
    assert response.status_code == 200

    assert loaded(store_class, key)[USER_ID_KEY] == user_id(staff)  # a live session
    assert key not in storage.everything()
    assert storage.session_ids() == {session_id_for_key(key)}


def test_the_public_session_id_is_not_the_key(
    client: Client, storage: Storage, make_user: Callable[..., AbstractBaseUser]
) -> None:
    staff: Any = make_user(is_staff=True)
    client.force_login(staff)
    key = session_key_of(client)

    [info] = list_user_sessions(staff)

    assert info.id == session_id_for_key(key)
    assert key not in info.id
    assert key not in repr(info)


# -- hostile keys ---------------------------------------------------------------------------

HOSTILE_KEYS = {
    "empty": "",
    "short": "abc",
    "31-chars": "a" * 31,
    "33-chars": "a" * 33,
    "10-kb": "a" * 10240,
    "nul": "a" * 15 + "\x00" + "a" * 16,
    "uppercase": "A" * 32,
    "path": "../../../../../../../etc/passwd",
    "path-32-chars": "../../../../../../../../etc/pass",
    "glob": "*" * 32,
    "glob-mixed": "a" * 29 + "*?[",
    "redis-pattern": "secure_sessions:s:" + "*" * 14,
    "non-ascii": "é" * 32,
    "cyrillic-lookalikes": "\u0430" * 32,
    "fullwidth-digits": "\uff11" * 32,
    "trailing-newline": "a" * 31 + "\n",
    "leading-space": " " + "a" * 31,
}


@pytest.mark.parametrize("key", HOSTILE_KEYS.values(), ids=HOSTILE_KEYS.keys())
def test_a_hostile_key_is_refused_without_a_round_trip(
    store_class: StoreClass, storage: Storage, key: str
) -> None:
    saved(store_class, {"warm": "up"})  # the connection is open: only requests count
    before = storage.session_ids()
    store = store_class(key)

    with storage.round_trips() as trips:
        data = dict(store.items())
        found = store.exists(key)
        store.delete(key)

    assert trips.total == 0
    assert (data, found, store.session_key) == ({}, False, None)
    store["cart"] = ["book"]
    store.save()
    assert store.session_key != key
    assert store.session_key is not None
    assert KEY_SHAPE.fullmatch(store.session_key)
    assert storage.session_ids() == before | {store.session_id}


def test_an_unknown_key_is_never_adopted(store_class: StoreClass, storage: Storage) -> None:
    saved(store_class, {"warm": "up"})
    loaded(store_class, UNKNOWN_KEY)  # on Cluster, its primary has the script cached now
    before = storage.session_ids()
    store = store_class(UNKNOWN_KEY)

    with storage.round_trips() as trips:
        data = dict(store.items())

    assert trips.total == 1  # one lookup, which finds nothing
    assert (data, store.session_key) == ({}, None)
    store["cart"] = ["book"]
    store.save()
    assert store.session_key not in {None, UNKNOWN_KEY}
    assert storage.session_ids() == before | {store.session_id}


@async_test
@pytest.mark.parametrize("key", [*HOSTILE_KEYS.values(), UNKNOWN_KEY])
async def test_async_a_hostile_or_unknown_key_is_never_adopted(
    store_class: StoreClass, key: str
) -> None:
    store = store_class(key)

    assert await store.aget("cart") is None
    assert store.session_key is None
    assert not await store.aexists(key)
    await store.aset("cart", ["book"])
    await store.asave()
    assert store.session_key not in {None, key}


not_a_key = st.one_of(
    st.text(),
    st.text(alphabet=VALID_KEY_CHARS + "AZ*?[]/.:\x00é- ", min_size=31, max_size=33),
).filter(lambda text: KEY_SHAPE.fullmatch(text) is None)

few_examples = hypothesis.settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)


@few_examples
@hypothesis.given(key=not_a_key)
def test_anything_but_32_lowercase_letters_and_digits_is_refused_without_a_round_trip(
    store_class: StoreClass, storage: Storage, key: str
) -> None:
    store = store_class(key)

    with storage.round_trips() as trips:
        data = dict(store.items())

    assert trips.total == 0
    assert (data, store.session_key) == ({}, None)


@few_examples
@hypothesis.given(key=st.text(alphabet=VALID_KEY_CHARS, min_size=32, max_size=32))
def test_any_key_of_the_right_shape_is_looked_up_once(
    store_class: StoreClass, storage: Storage, key: str
) -> None:
    if routing.enabled():  # ours on Redis Cluster start with a routing tag (in capitals)
        key = "ABCD" + key[routing.TAG_LENGTH :]
    assert store_class(key).session_key == key  # accepted as a key ...
    store = store_class(key)

    with storage.round_trips() as trips:
        data = dict(store.items())

    assert trips.total == 1  # ... looked up once, and not adopted
    assert (data, store.session_key) == ({}, None)


# -- corrupt, tampered, replayed and pickled records ------------------------------------------


@dataclass(frozen=True)
class Scene:
    """A victim's session about to be corrupted, and an administrator's beside it."""

    victim_key: str
    admin_key: str
    victim_id: str
    admin_id: str
    storage: Storage
    marker: Path

    def pickle(self, protocol: int) -> bytes:
        return pickle.dumps(Exploit(self.marker), protocol=protocol)

    def shaped(self, data_json: str) -> str:
        """What the engine signs for a record holding ``data_json``: the data alone
        (db), or the victim's own meta and the data (redis)."""
        if self.storage.redis_client is None:
            return data_json
        stored = self.storage.signed(self.victim_id)
        assert isinstance(stored, bytes)
        meta = json.dumps(json.loads(stored[SIGNATURE_LENGTH:])[0], separators=(",", ":"))
        return f"[{meta},{data_json}]"

    def signed(self, payload: str, *, part: str | None = None) -> str:
        """``payload`` signed for the victim's session, as the engine signs it."""
        return sign(self.victim_id, part or self.storage.signed_part, payload)


def other_secret(scene: Scene) -> str:
    with override_settings(SECRET_KEY="a-guess-at-the-secret-key"):
        return scene.signed(scene.shaped('{"cart":["stolen"]}'))


def other_part(scene: Scene) -> str:
    # Signed for the other engine's part name: a signature is bound to its part.
    part = "record" if scene.storage.signed_part == "data" else "data"
    return scene.signed(scene.shaped('{"cart":[]}'), part=part)


# Every engine: what an attacker with write access to storage, but not the secret, can
# write, and what only a bug of ours (or a stolen secret) would: correctly signed
# records that are still not ours.
CORRUPTIONS: dict[str, Callable[[Scene], str | bytes | None]] = {
    "garbage": lambda scene: "not a session record at all",
    "empty": lambda scene: "",
    "unsigned-json": lambda scene: scene.shaped('{"_auth_user_id":"1"}'),
    "forged-signature": lambda scene: (
        "A" * SIGNATURE_LENGTH + scene.shaped('{"_auth_user_id":"1"}')
    ),
    "signed-with-another-secret": other_secret,
    "signed-as-another-part": other_part,
    "pickle": lambda scene: scene.pickle(0).decode("ascii"),
    "correctly-signed-pickle": lambda scene: scene.signed(scene.pickle(0).decode("ascii")),
    "correctly-signed-data-not-an-object": lambda scene: scene.signed(scene.shaped("[1,2]")),
    "correctly-signed-trailing-garbage": lambda scene: scene.signed(
        scene.shaped('{"cart":[]}') + "x"
    ),
    "replayed-from-an-admin-session": lambda scene: scene.storage.signed(scene.admin_id),
}


def with_meta_field(storage: Storage, session_id: str, field: str, value: Any) -> str:
    """A session's Redis record, correctly signed, with one field of its meta replaced."""
    stored = storage.signed(session_id)
    assert isinstance(stored, bytes)
    meta, data = json.loads(stored[SIGNATURE_LENGTH:])
    meta[SessionMeta.FIELDS.index(field)] = value
    return sign(session_id, "record", dumps([meta, data]))


def meta_field_replaced(field: str, value: Any) -> Callable[[Scene], str]:
    return lambda scene: with_meta_field(scene.storage, scene.victim_id, field, value)


# A field of the meta of a type (or range) the engine never writes. Each used to be taken
# as it was: a TypeError (a 500) wherever the field is compared or shown.
WRONG_META_FIELDS: Final = {
    "user-id-a-list": ("user_id", []),
    "created-infinite": ("created", float("inf")),
    "last-activity-true": ("last_activity", True),
    "last-auth-a-list": ("last_auth", [1]),
    "absolute-expiry-text": ("absolute_expiry", "2030-01-07T09:00:00Z"),
    "expires-after-year-9999": ("expires", 10**13),
    "ip-a-number": ("ip", 1),
}

# Redis only: bytes that are no record, and the record, [meta, data], correctly signed but
# malformed. (What the db engine's data column can hold wrongly is in DB_CORRUPTIONS.)
REDIS_CORRUPTIONS: dict[str, Callable[[Scene], str | bytes | None]] = {
    **{
        f"correctly-signed-meta-{name}": meta_field_replaced(*wrong)
        for name, wrong in WRONG_META_FIELDS.items()
    },
    "binary-pickle": lambda scene: scene.pickle(5),
    "non-utf8": lambda scene: b"\xff\xfe\x80 not UTF-8",
    "correctly-signed-malformed-meta": lambda scene: scene.signed('[["x"],{"cart":[]}]'),
    "correctly-signed-without-meta": lambda scene: scene.signed('{"cart":[]}'),
    "correctly-signed-meta-alone": lambda scene: scene.signed(
        scene.shaped("{}").removesuffix(",{}]") + "]"
    ),
}


def victims_column(scene: Scene) -> bytes:
    """The victim's data column as the db engine stored it (compressed)."""
    stored = scene.storage.stored(scene.victim_id)
    assert stored is not None
    return stored


BOMB_BYTES: Final = 64 * 1024 * 1024

# db only: the data column, compressed signed JSON, broken in its compression (these
# values are written to the column as they are).
DB_CORRUPTIONS: dict[str, Callable[[Scene], str | bytes | None]] = {
    "not-compressed": lambda scene: scene.signed('{"cart":[]}').encode(),
    "compressed-non-utf8": lambda scene: zlib.compress(b"\xff\xfe\x80 not UTF-8"),
    "truncated-compression": lambda scene: victims_column(scene)[:-4],
    "bytes-after-the-compressed-stream": lambda scene: victims_column(scene) + b"x",
    "decompression-bomb": lambda scene: zlib.compress(b"0" * BOMB_BYTES),
}

ENGINE_CORRUPTIONS = (
    [
        pytest.param(engine, corrupt, id=f"{engine}-{name}")
        for engine in ("db", "redis")
        for name, corrupt in CORRUPTIONS.items()
    ]
    + [pytest.param("db", corrupt, id=f"db-{name}") for name, corrupt in DB_CORRUPTIONS.items()]
    + [
        pytest.param("redis", corrupt, id=f"redis-{name}")
        for name, corrupt in REDIS_CORRUPTIONS.items()
    ]
)


@pytest.fixture
def scene(
    store_class: StoreClass,
    storage: Storage,
    make_user: Callable[..., AbstractBaseUser],
    tmp_path: Path,
) -> Scene:
    admin = make_user(is_staff=True, is_superuser=True)
    admin_session = saved(store_class, {"admin_ui": True}, user=admin)
    victim = saved(store_class, {"cart": ["book"]}, user=make_user())
    assert victim.session_id is not None
    assert admin_session.session_id is not None
    assert victim.session_key is not None
    assert admin_session.session_key is not None
    return Scene(
        victim.session_key,
        admin_session.session_key,
        victim.session_id,
        admin_session.session_id,
        storage,
        tmp_path / "unpickled",
    )


@pytest.mark.parametrize(("engine", "corrupt"), ENGINE_CORRUPTIONS, indirect=["engine"])
def test_a_corrupt_record_is_no_session(
    store_class: StoreClass,
    scene: Scene,
    caplog: pytest.LogCaptureFixture,
    corrupt: Callable[[Scene], str | bytes | None],
) -> None:
    value = corrupt(scene)
    assert value is not None
    scene.storage.overwrite(scene.victim_id, value)

    with caplog.at_level(logging.WARNING, logger=SECURITY_LOGGER):
        store = loaded(store_class, scene.victim_key)

    assert dict(store.items()) == {}
    assert store.session_key is None
    assert SECURITY_LOGGER in {record.name for record in caplog.records}
    assert not scene.marker.exists()
    store["cart"] = []
    store.save()  # a fresh session, not the corrupt one
    assert store.session_key not in {None, scene.victim_key}
    assert loaded(store_class, scene.admin_key)["admin_ui"] is True


@pytest.mark.parametrize("engine", ["redis"], indirect=True)
@pytest.mark.parametrize("wrong", WRONG_META_FIELDS.values(), ids=WRONG_META_FIELDS.keys())
def test_a_session_whose_meta_has_the_wrong_types_is_left_out_of_its_users_sessions(
    client: Client,
    store_class: StoreClass,
    storage: Storage,
    user: User,
    wrong: tuple[str, Any],
) -> None:
    client.force_login(user)
    current = session_id_for_key(session_key_of(client))
    other = saved(store_class, {"cart": []}, user=user)
    assert other.session_id is not None
    storage.overwrite(other.session_id, with_meta_field(storage, other.session_id, *wrong))

    assert [info.id for info in list_user_sessions(user)] == [current]
    page = client.get("/account/sessions/")
    assert page.status_code == 200
    assert other.session_id not in page.content.decode()


@pytest.mark.parametrize("engine", ["db"], indirect=True)
def test_a_decompression_bomb_costs_no_more_memory_than_a_session_may_take(
    store_class: StoreClass, scene: Scene
) -> None:
    scene.storage.overwrite(scene.victim_id, zlib.compress(b"0" * BOMB_BYTES))

    tracemalloc.start()
    try:
        store = loaded(store_class, scene.victim_key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert store.session_key is None
    # It stops inflating at the bound (1 MiB by default), not at the bomb's 64 MiB.
    assert peak < 4 * 1024 * 1024


def test_the_pickle_payload_used_above_is_armed(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    pickle.loads(pickle.dumps(Exploit(marker), protocol=0))  # noqa: S301 - the point

    assert marker.is_dir()


# -- SECRET_KEY rotation -------------------------------------------------------------------


def test_data_signed_with_a_fallback_secret_key_loads_and_is_re_signed(
    store_class: StoreClass, user: AbstractBaseUser
) -> None:
    with override_settings(SECRET_KEY="the-old-secret-key"):
        key = saved(store_class, {"cart": ["book"]}, user=user).session_key

    with override_settings(
        SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=["the-old-secret-key"]
    ):
        store = loaded(store_class, key)
        assert store["cart"] == ["book"]
        store["cart"] = ["book", "pen"]
        store.save()

    # On Redis Cluster the save also moved the session to a key with the new secret's
    # routing tag (backends/routing.py); on a single server the key stays.
    assert (store.session_key == key) is not routing.enabled()
    with override_settings(SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=[]):
        assert loaded(store_class, store.session_key)["cart"] == ["book", "pen"]


def test_data_signed_with_a_retired_secret_key_does_not_load(
    store_class: StoreClass, user: AbstractBaseUser, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(SECRET_KEY="the-old-secret-key"):
        key = saved(store_class, {"cart": ["book"]}, user=user).session_key

    with (
        override_settings(SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=[]),
        caplog.at_level(logging.WARNING, logger=SECURITY_LOGGER),
    ):
        store = loaded(store_class, key)

    assert dict(store.items()) == {}
    assert store.session_key is None
    assert SECURITY_LOGGER in {record.name for record in caplog.records}


def test_a_record_whose_meta_and_data_name_different_users_is_no_session(
    client: Client, storage: Storage, user: User, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The timeouts, the binding and the index go by the meta's user; the data signs in.
    client.force_login(user)
    session_id = session_id_for_key(session_key_of(client))
    other = make_user()
    if storage.redis_client is None:
        SecureSession.objects.filter(pk=session_id).update(user_id=other.pk)
    else:
        storage.overwrite(session_id, with_meta_field(storage, session_id, "user_id", None))

    page = client.get("/whoami/")

    assert page.status_code == 302  # to log in: nobody is signed in
    assert SECURITY_LOGGER in {record.name for record in caplog.records}
