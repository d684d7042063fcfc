from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...backends.db import SessionStore as DbSessionStore
from ._common import (
    SessionCommand,
    configured_store,
    counted,
    positive_int,
    storage_errors_reported,
)


class Command(SessionCommand):
    help = (
        "Remove expired sessions (database engine) and expired entries of the per-user "
        "indexes (Redis engine, where Redis expires the sessions themselves), in batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be removed; change nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            help=(
                "Entries removed per batch (default: 50000 sessions on the db engine, "
                "10000 per-user indexes on the redis engine)."
            ),
        )

    def handle(self, *args: Any, dry_run: bool, batch_size: int | None, **options: Any) -> None:
        store = configured_store()
        if options["database"] is not None and not issubclass(store, DbSessionStore):
            raise CommandError(
                "--database names where the db engine keeps sessions; the Redis engine keeps "
                "them in the cache SESSION_CACHE_ALIAS names, and expires them by itself."
            )
        total = 0
        with storage_errors_reported(store):
            for count in store.expired_batches(batch_size, dry_run=dry_run):
                total += count
                if not dry_run and count:
                    removed = counted(count, "expired entry", "expired entries")
                    self.say(f"Removed {removed} ({total} so far).")
        verb = "Would remove" if dry_run else "Removed"
        if total:
            in_all = counted(total, "expired entry", "expired entries")
            self.say(self.style.SUCCESS(f"{verb} {in_all} in all."))
        else:
            self.say(self.style.SUCCESS(f"{verb} no expired sessions."))
