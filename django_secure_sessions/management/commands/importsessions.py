from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.cache import KEY_PREFIX as CACHE_KEY_PREFIX
from django.contrib.sessions.backends.db import SessionStore as DjangoDbStore
from django.core.cache import caches
from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from ...backends.base import SecureSessionBase, now_epoch, session_id_for_key
from ...exceptions import SensitiveDataError, SessionTooLarge
from ._common import SessionCommand, configured_store, counted, storage_errors_reported

# (session key, data, expiry in epoch seconds)
Found = tuple[str, dict[str, Any], int]
# What -v 2 says became of each session, by its public id (never its key).
DETAIL = {"imported": "imported", "already": "already imported", "refused": "refused"}


class Command(SessionCommand):
    help = (
        "Copy the live sessions of Django's own engines into the configured "
        "django-secure-sessions engine, keeping their keys, so that switching "
        "SESSION_ENGINE logs nobody out. Safe to run more than once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="source",
            choices=["db", "cache"],
            default="db",
            help=(
                "db: django.contrib.sessions' table (the db and cached_db engines); "
                "cache: Django's cache engine on SESSION_CACHE_ALIAS (django-redis). "
                "Default: db."
            ),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be imported; change nothing."
        )

    def handle(self, *args: Any, source: str, dry_run: bool, **options: Any) -> None:
        store = configured_store()
        found = self._from_db(options["database"]) if source == "db" else self._from_cache()
        outcomes: Counter[str] = Counter()
        with storage_errors_reported(store):
            for key, data, expires in found:
                outcome, session_id = self._import(store, key, data, expires, dry_run=dry_run)
                outcomes[outcome] += 1
                what = DETAIL[outcome] if not dry_run else f"would be {DETAIL[outcome]}"
                self.detail(f"  session {session_id or '(under a new key)'}: {what}")
        verb = "Would import" if dry_run else "Imported"
        imported = counted(outcomes["imported"], "session", "sessions")
        summary = [f"{verb} {imported} from Django's {source} engine"]
        if outcomes["already"]:
            summary.append(f"{outcomes['already']} already imported")
        if outcomes["refused"]:
            summary.append(f"{outcomes['refused']} refused (see above)")
        self.say(self.style.SUCCESS("; ".join(summary) + "."))

    def _import(
        self,
        store: type[SecureSessionBase],
        key: str,
        data: dict[str, Any],
        expires: int,
        *,
        dry_run: bool,
    ) -> tuple[str, str]:
        """What became (or, with ``dry_run``, would become) of one session: "imported",
        "already" (imported) or "refused"; and its public id here ("" if it goes under
        a key not chosen yet: see the Redis engine on Cluster)."""
        try:
            imported = store.import_session(key, data, expires, dry_run=dry_run)
        except (SessionTooLarge, SensitiveDataError) as exc:
            # Its browser is signed out by the switch of engine; what it held is not
            # stored where this app's guards would have refused it.
            self.stderr.write(f"Refused a session: {exc}")
            return "refused", session_id_for_key(key)
        if imported is None:
            self.stderr.write("Refused a session: its key is not one that Django's engines make.")
            return "refused", ""
        return ("imported" if imported.new else "already"), imported.session_id

    @staticmethod
    def _from_db(database: str | None) -> Iterator[Found]:
        decoder = DjangoDbStore()
        sessions = decoder.model.objects.using(database).filter(expire_date__gt=timezone.now())
        try:
            rows = sessions.values_list("session_key", "session_data", "expire_date").iterator(
                chunk_size=1000
            )
            for key, encoded, expire_date in rows:
                # decode() checks Django's signature and returns {} for bad data.
                if data := decoder.decode(encoded):
                    yield key, data, int(expire_date.timestamp())
        except DatabaseError as exc:
            raise CommandError(
                f"Could not read Django's session table ({exc}). Is django.contrib.sessions "
                "installed and migrated?"
            ) from exc

    @staticmethod
    def _from_cache() -> Iterator[Found]:
        cache: Any = caches[settings.SESSION_CACHE_ALIAS]
        if not hasattr(cache, "iter_keys"):
            raise CommandError(
                "--from cache needs SESSION_CACHE_ALIAS to be a django-redis cache, which can "
                "list its keys."
            )
        now = now_epoch()
        for cache_key in cache.iter_keys(CACHE_KEY_PREFIX + "*"):
            data, ttl = cache.get(cache_key), cache.ttl(cache_key)
            if isinstance(data, dict) and data and ttl:
                yield cache_key[len(CACHE_KEY_PREFIX) :], data, now + int(ttl)
