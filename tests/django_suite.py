"""pytest plugin: bring Django's own session tests, before Django reads the settings.

Django's ``tests/sessions_tests`` (``SessionTestsMixin``, ``SessionMiddlewareTests``) is the
contract of a session engine; tests/test_django_suite.py runs it against ours. Django ships
its tests in its source distribution only, so this plugin downloads the one of the installed
Django version with pip, once, and keeps ``sessions_tests`` in the virtual environment
(``<sys.prefix>/django-suite/<version>``).

Environment:

``REQUIRE_DJANGO_SUITE``
    ``1`` turns a failed download into an error that stops the run (CI sets it); otherwise
    Django's tests are skipped, and the report header says why.

The folder is published in ``TEST_DJANGO_SUITE_DIR``, which tests/settings.py reads to put it
on ``sys.path`` and install the ``sessions_tests`` app (its custom session model).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import django
import pytest

from tests.redis_server import required

PUBLISHED_VARIABLE = "TEST_DJANGO_SUITE_DIR"
PACKAGE = "sessions_tests"
DOWNLOAD_SECONDS = 300


@dataclass
class DjangoSuite:
    """Where Django's session tests are, or why they aren't (``unavailable``)."""

    directory: Path
    unavailable: str | None = None


suite_key = pytest.StashKey[DjangoSuite]()


def suite_directory() -> Path:
    return Path(sys.prefix) / "django-suite" / django.__version__


def download_sdist(into: Path) -> Path:
    """The source distribution of the installed Django, downloaded with pip into ``into``."""
    command = [
        *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
        *("--no-binary", ":all:", f"django=={django.__version__}", "--dest", str(into)),
    ]
    # The command is ours: this interpreter's pip and the installed version's number.
    subprocess.run(command, check=True, capture_output=True, timeout=DOWNLOAD_SECONDS)  # noqa: S603
    (archive,) = into.glob("*.tar.gz")
    return archive


def extract_sessions_tests(archive: Path, directory: Path) -> None:
    """Copy the files of ``tests/sessions_tests`` (no subfolders) to ``directory``."""
    target = directory / PACKAGE
    target.mkdir(parents=True)
    with tarfile.open(archive) as sdist:
        for member in sdist.getmembers():
            path = PurePosixPath(member.name)
            # django-<version>/tests/sessions_tests/<file>: only its regular files, written
            # under their base names, so no name in the archive picks where a file goes.
            if member.isfile() and path.parts[1:3] == ("tests", PACKAGE) and len(path.parts) == 4:
                source = sdist.extractfile(member)
                assert source is not None
                (target / path.name).write_bytes(source.read())


def find_suite() -> DjangoSuite:
    directory = suite_directory()
    if (directory / PACKAGE / "tests.py").is_file():
        return DjangoSuite(directory)
    with tempfile.TemporaryDirectory() as download:
        try:
            archive = download_sdist(Path(download))
        except (subprocess.SubprocessError, OSError, ValueError) as error:
            stderr: bytes = getattr(error, "stderr", None) or b""
            detail = stderr.decode(errors="replace").strip()[-300:]
            why = f"pip could not download Django {django.__version__}'s source ({error}) {detail}"
            return DjangoSuite(directory, unavailable=why.strip())
        partial = directory.with_name(directory.name + ".partial")
        if partial.exists():
            for leftover in sorted(partial.rglob("*"), reverse=True):
                leftover.unlink() if leftover.is_file() else leftover.rmdir()
        extract_sessions_tests(archive, partial)
        partial.rename(directory)
    return DjangoSuite(directory)


# A wrapper, as in tests.redis_server: it runs before pytest-django reads the settings.
@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    must_have = required("REQUIRE_DJANGO_SUITE")
    suite = find_suite()
    if suite.unavailable is not None and must_have:
        msg = "REQUIRE_DJANGO_SUITE=1 but Django's session tests are not available: "
        raise pytest.UsageError(msg + suite.unavailable)
    early_config.stash[suite_key] = suite
    if suite.unavailable is None:
        os.environ[PUBLISHED_VARIABLE] = str(suite.directory)
    return (yield)


def pytest_report_header(config: pytest.Config) -> str:
    suite = config.stash[suite_key]
    if suite.unavailable is None:
        return f"django's session tests: {suite.directory / PACKAGE}"
    return (
        "django's session tests: !!! NOT AVAILABLE, SKIPPED !!! "
        f"{suite.unavailable}. REQUIRE_DJANGO_SUITE=1 makes this an error."
    )
