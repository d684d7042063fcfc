"""What the management commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from ...api import session_store_class
from ...backends.base import SecureSessionBase
from ...backends.db import using_database


def counted(count: int, singular: str, plural: str) -> str:
    """``count`` and the noun that agrees with it: "1 session", "2 sessions"."""
    return f"{count} {singular if count == 1 else plural}"


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value!r}")
    return number


def configured_store() -> type[SecureSessionBase]:
    try:
        return session_store_class()
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc


@contextmanager
def storage_errors_reported(store: type[SecureSessionBase]) -> Iterator[None]:
    """Turn a storage failure into a clear message and a non-zero exit."""
    try:
        yield
    except store.storage_errors as exc:
        raise CommandError(
            f"The session storage failed ({type(exc).__name__}: {exc}). "
            "Nothing after this point was done; it is safe to run the command again."
        ) from exc


Writer = Callable[[str], None]


class SessionCommand(BaseCommand):
    """A command that reports what it did unless run with ``-v 0``, and what it did to
    each session (by public id, never a key) with ``-v 2``; errors and refusals (on
    stderr) are always shown. ``--database`` names the database it works on."""

    verbosity = 1
    # What --database means for the command, in its help.
    database_help = "The database of the sessions (db engine) and of the users"

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--database",
            choices=tuple(connections),
            help=f"{self.database_help} (default: where the database routers say).",
        )
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.verbosity = options.get("verbosity", 1)
        # The db engine's queries go to --database for the whole command.
        with using_database(options.get("database")):
            return super().execute(*args, **options)

    def say(self, text: str) -> None:
        if self.verbosity > 0:
            self.stdout.write(text)

    def detail(self, text: str) -> None:
        if self.verbosity > 1:
            self.stdout.write(text)
