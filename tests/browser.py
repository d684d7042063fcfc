"""pytest plugin: can the end-to-end tests (tests/e2e) drive a browser on this machine?

Loaded with ``-p tests.browser`` (``addopts`` in pyproject.toml), like ``tests.redis_server``.

The tests marked ``e2e`` need Playwright for Python (in the ``test`` extra) and Debian's
Chromium at ``/usr/bin/chromium`` (``apt-get install chromium``); Playwright's own browser
download (``playwright install``) is not used. When either is missing they are skipped,
and the report header says why.

Environment:

``REQUIRE_BROWSER``
    ``1`` turns a missing browser into an error that stops the run (CI sets it).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.redis_server import required

CHROMIUM = Path("/usr/bin/chromium")
MARKER = "e2e"

problem_key = pytest.StashKey[str | None]()


def playwright_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return 'Playwright for Python is not installed (pip install --editable ".[test]")'
    return None


def browser_problem() -> str | None:
    """``None`` if the end-to-end tests can run, else why not."""
    if (missing := playwright_missing()) is not None:
        return missing
    if not os.access(CHROMIUM, os.X_OK):
        return f"there is no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def skip_reason(problem: str) -> str:
    return f"BROWSER NOT AVAILABLE, END-TO-END TEST SKIPPED: {problem}"


def pytest_configure(config: pytest.Config) -> None:
    problem = browser_problem()
    if problem is not None and required("REQUIRE_BROWSER"):
        msg = f"REQUIRE_BROWSER=1 but the end-to-end tests can't run: {problem}."
        raise pytest.UsageError(msg)
    config.stash[problem_key] = problem


def pytest_report_header(config: pytest.Config) -> str:
    problem = config.stash[problem_key]
    if problem is None:
        return f"browser: {CHROMIUM}, headless, through Playwright"
    return (
        f"browser: !!! NOT AVAILABLE, THE END-TO-END TESTS (tests/e2e) ARE SKIPPED !!! {problem}. "
        "REQUIRE_BROWSER=1 makes this an error."
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config.stash[problem_key]
    if problem is None:
        return
    skip = pytest.mark.skip(reason=skip_reason(problem))
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            item.add_marker(skip)
