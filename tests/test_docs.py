"""The documentation names everything a project can use.

Each test fails when the code has a signal, a management command, a URL name or an exception
that no page of docs/ mentions. Settings and system check IDs are held to their reference
pages by tests/test_checks.py.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from importlib.metadata import metadata
from pathlib import Path

from django.core.management import find_commands
from django.dispatch import Signal
from django.urls import URLPattern

from django_secure_sessions import exceptions, signals, urls

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
COMMANDS = Path(signals.__file__).parent / "management"


@cache
def docs_text() -> str:
    """Every page of docs/ (not the build output), as written."""
    pages = [
        path
        for pattern in ("*.rst", "*.md")
        for path in DOCS.rglob(pattern)
        if "_build" not in path.relative_to(DOCS).parts
    ]
    assert pages, f"no pages found under {DOCS}"
    return "\n".join(path.read_text(encoding="utf-8") for path in pages)


def undocumented(names: set[str], spelling: str = "{}") -> set[str]:
    """Those of ``names`` that docs/ never mentions, as a word, spelt ``spelling``."""
    text = docs_text()
    return {
        name
        for name in names
        if not re.search(rf"(?<!\w){re.escape(spelling.format(name))}(?!\w)", text)
    }


def test_every_signal_is_documented() -> None:
    names = {name for name, value in vars(signals).items() if isinstance(value, Signal)}
    assert "session_revoked" in names
    assert undocumented(names) == set()


def test_every_management_command_is_documented() -> None:
    names = set(find_commands(str(COMMANDS)))
    assert "revokesessions" in names
    assert undocumented(names) == set()


def test_every_url_name_is_documented() -> None:
    names = {
        pattern.name
        for pattern in urls.urlpatterns
        if isinstance(pattern, URLPattern) and pattern.name
    }
    assert "reauth" in names
    assert undocumented(names, f"{urls.app_name}:{{}}") == set()


def test_every_exception_is_documented() -> None:
    names = {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == exceptions.__name__
    }
    assert "SensitiveDataError" in names
    assert undocumented(names) == set()


def test_a_name_counts_only_as_a_whole_word() -> None:
    # What the tests above rely on: the start of a longer name is no mention.
    assert undocumented({"session_revoke", "session_revoked"}) == {"session_revoke"}
    assert undocumented({"revoke_other", "revoke_others"}, "secure_sessions:{}") == {"revoke_other"}


def project_urls() -> dict[str, str]:
    """``[project.urls]`` of pyproject.toml, as the installed package's metadata holds it."""
    entries = metadata("django-secure-sessions").get_all("Project-URL") or []
    return dict(entry.split(", ", 1) for entry in entries)


def test_the_package_index_page_links_to_the_source_docs_changelog_and_issues() -> None:
    urls = project_urls()
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert all(
        url.startswith(urls["Homepage"] + "/") for name, url in urls.items() if name != "Homepage"
    )


def test_every_readme_link_works_on_the_package_index_page() -> None:
    # The package index renders README.md without the repository around it: a relative link
    # there leads nowhere. Every link is absolute, and one into the repository names a file
    # that exists.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]+)\)", readme) + re.findall(r"<(https?://[^>]+)>", readme)
    assert links
    assert [link for link in links if not re.match(r"https?://", link)] == []
    in_repository = re.compile(re.escape(project_urls()["Homepage"]) + r"/(?:blob|tree)/main/(.+)")
    paths = [match[1] for link in links if (match := in_repository.match(link))]
    assert "CHANGELOG.md" in paths
    assert [path for path in paths if not (ROOT / path).exists()] == []
