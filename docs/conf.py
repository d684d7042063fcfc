"""Sphinx configuration: https://www.sphinx-doc.org/en/master/usage/configuration.html"""

from importlib.metadata import version as installed_version

project = "django-secure-sessions"
author = "The django-secure-sessions authors"
copyright = f"2026, {author}"
# pyproject.toml holds the version; this reads it from the installed distribution.
release = installed_version("django-secure-sessions")
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = f"{project} {release}"
html_static_path = ["_static"]
# Tables that fit the page on a desktop and on a phone (the settings summary).
html_css_files = ["tables.css"]
