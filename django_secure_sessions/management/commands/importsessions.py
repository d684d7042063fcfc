from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.cache import KEY_PREFIX as CACHE_KEY_PREFIX
from django.contrib.sessions.backends.db import SessionStore as DjangoDbStore
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from ...backends.base import SecureSessionBase, now_epoch
from ...exceptions import SessionTooLarge
from ._common import configured_store, storage_errors_reported

# (session key, data, expiry in epoch seconds)
Found = tuple[str, dict[str, Any], int]


class Command(BaseCommand):
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
        found = self._from_db() if source == "db" else self._from_cache()
        imported = skipped = 0
        with storage_errors_reported(store):
            for key, data, expires in found:
                if dry_run or self._import(store, key, data, expires):
                    imported += 1
                else:
                    skipped += 1
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {imported} sessions from Django's {source} engine"
                + (f"; skipped {skipped} (already imported, or too large)." if skipped else ".")
            )
        )

    def _import(
        self, store: type[SecureSessionBase], key: str, data: dict[str, Any], expires: int
    ) -> bool:
        try:
            return store.import_session(key, data, expires)
        except SessionTooLarge as exc:
            self.stderr.write(f"Skipped a session: {exc}")
            return False

    @staticmethod
    def _from_db() -> Iterator[Found]:
        decoder = DjangoDbStore()
        sessions = decoder.model.objects.filter(expire_date__gt=timezone.now())
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
