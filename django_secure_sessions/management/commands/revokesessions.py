from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db.models import Model

from ...api import _revoke_user_sessions, announce_revoked, list_user_sessions
from ...backends.base import SecureSessionBase
from ._common import (
    SessionCommand,
    configured_store,
    counted,
    positive_int,
    storage_errors_reported,
)

REASON = "command"


class Command(SessionCommand):
    help = (
        "Force logout: revoke every session of the given users, or of everybody. "
        "For incident response; each revoked session sends session_revoked (reason "
        '"command").'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument(
            "--user",
            dest="usernames",
            action="append",
            metavar="USERNAME",
            help=(
                "A user whose sessions to revoke, by the user model's USERNAME_FIELD (an "
                "e-mail address where that is how users sign in); repeat for several users."
            ),
        )
        who.add_argument(
            "--user-id",
            dest="user_ids",
            action="append",
            metavar="ID",
            help="A user whose sessions to revoke, by primary key; repeat for several users.",
        )
        who.add_argument("--all", action="store_true", help="Revoke every session of everybody.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be revoked; change nothing."
        )
        parser.add_argument(
            "--batch-size", type=positive_int, default=1000, help="Sessions per batch with --all."
        )

    def handle(
        self,
        *args: Any,
        usernames: list[str] | None,
        user_ids: list[str] | None,
        dry_run: bool,
        batch_size: int,
        **options: Any,
    ) -> None:
        store = configured_store()
        database = options["database"]
        with storage_errors_reported(store):
            if usernames:
                users = self._users(usernames, by_id=False, database=database)
                total = self._revoke_users(users, dry_run=dry_run)
            elif user_ids:
                users = self._users(user_ids, by_id=True, database=database)
                total = self._revoke_users(users, dry_run=dry_run)
            else:
                total = self._revoke_all(store, batch_size, dry_run=dry_run)
        verb = "Would revoke" if dry_run else "Revoked"
        in_all = counted(total, "session", "sessions")
        self.say(self.style.SUCCESS(f"{verb} {in_all} in all."))

    @staticmethod
    def _users(names: list[str], *, by_id: bool, database: str | None) -> list[Model]:
        """All the users named (by USERNAME_FIELD, or by primary key), or an error naming
        those that don't exist (and nothing is revoked: a typo in an incident must not go
        unnoticed)."""
        manager = get_user_model()._default_manager.db_manager(database)
        users: list[Model] = []
        unknown: list[str] = []
        for name in dict.fromkeys(names):
            try:
                users.append(manager.get(pk=name) if by_id else manager.get_by_natural_key(name))
            # A primary key of the wrong shape ("abc" for an integer) is no such user too.
            except (manager.model.DoesNotExist, ValueError, ValidationError):
                unknown.append(name)
        if unknown:
            what = "No user with id" if by_id else "No such user"
            raise CommandError(f"{what}: {', '.join(unknown)}. Nothing was revoked.")
        return users

    def _revoke_users(self, users: list[Model], *, dry_run: bool) -> int:
        total = 0
        verb = "would revoke" if dry_run else "revoked"
        for user in users:
            if dry_run:
                session_ids = [info.id for info in list_user_sessions(user)]
            else:
                session_ids = _revoke_user_sessions(user, reason=REASON)
            for session_id in session_ids:
                self.detail(f"  {verb} session {session_id}")
            total += len(session_ids)
            self.say(f"{user}: {verb} {counted(len(session_ids), 'session', 'sessions')}.")
        return total

    def _revoke_all(self, store: type[SecureSessionBase], batch_size: int, *, dry_run: bool) -> int:
        total = 0
        for batch in store.all_session_ids(batch_size):
            if dry_run:
                for session_id in batch:
                    self.detail(f"  would revoke session {session_id}")
                total += len(batch)
                continue
            for session_id, user_id in store.remove_sessions(batch):
                announce_revoked(None, user_id, session_id, REASON)
                self.detail(f"  revoked session {session_id} of user {user_id}")
                total += 1
            self.say(f"Revoked {counted(total, 'session', 'sessions')} so far.")
        return total
