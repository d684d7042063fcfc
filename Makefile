# Development tasks. Needs only make and Python 3.10+: the first target run creates .venv.
# `make` alone lists the targets.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Extra arguments for pytest or the benchmark script: make test ARGS="-k engine"
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo demo-redis test screenshots lint format bench docs messages package clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
		echo "error: django-secure-sessions needs Python 3.10 or newer to create $(VENV)," \
			"but '$(PYTHON)' is $$($(PYTHON) --version 2>/dev/null || echo "not found")." >&2; \
		echo "       Run make again with PYTHON=/path/to/python3.x (3.10+)." >&2; \
		exit 1; }
	$(PYTHON) -m venv --upgrade-deps $(VENV)

# One stamp per set of extras ("core" is none): pip runs again only when pyproject.toml
# changes.
$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --editable ".$(if $(filter core,$*),,[$*])"
	@touch $@

# The example project, on the session engine that DEMO_SESSION_ENGINE names (its settings
# read it): the database of the demo, or Redis.
define run_demo
	$(PY) example_project/manage.py migrate
	$(PY) example_project/manage.py demo_account
	$(PY) example_project/manage.py runserver 127.0.0.1:8000
endef

demo: export DEMO_SESSION_ENGINE = db
demo: $(VENV)/.installed-core ## Run the example project at http://127.0.0.1:8000/
	$(run_demo)

demo-redis: export DEMO_SESSION_ENGINE = redis
demo-redis: $(VENV)/.installed-redis ## The same, with sessions in Redis (REDIS_URL)
	$(run_demo)

# The end-to-end tests (tests/e2e) need Debian's Chromium; without it pytest skips them.
CHROMIUM := /usr/bin/chromium

test: $(VENV)/.installed-test ## Run the tests (REDIS_URL, REQUIRE_REDIS, REDIS_CLUSTER, REQUIRE_REDIS_CLUSTER, REQUIRE_BROWSER, REQUIRE_GETTEXT, REQUIRE_BENCH, DATABASE_URL, ARGS)
	@[ -x $(CHROMIUM) ] || echo "note: no Chromium at $(CHROMIUM), so the end-to-end browser" \
		"tests (tests/e2e) are SKIPPED. To run them: apt-get install chromium" >&2
	$(PY) -m pytest $(ARGS)

screenshots: $(VENV)/.installed-test ## Take the docs' screenshots again (docs/_static/screenshots)
	SCREENSHOTS=1 REQUIRE_BROWSER=1 $(PY) -m pytest tests/e2e -k db $(ARGS)

lint: $(VENV)/.installed-lint ## Check style, format and types
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(VENV)/.installed-lint ## Fix what ruff can fix and format the code
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The load benchmark writes its table into benchmarks/README.md after a full run.
bench: $(VENV)/.installed-bench ## Run the benchmarks (ARGS, e.g. ARGS=--quick)
	$(PY) benchmarks/run.py $(ARGS)
	$(PY) benchmarks/cleanup.py $(ARGS)
	$(PY) benchmarks/load.py --readme benchmarks/README.md $(ARGS)

docs: $(VENV)/.installed-docs ## Build the HTML docs into docs/_build/html
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

# The sdist must hold the whole tree (MANIFEST.in), so that its tests run once unpacked: in a
# clone, every file git tracks must be in it; then the tests run from the unpacked sdist, in a
# virtualenv of its own that installs it (not this checkout).
SDIST := dist/sdist

package: $(VENV)/.installed-package ## Build the sdist and wheel into dist/, check them, run the tests from the sdist (ARGS)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*.tar.gz dist/*.whl
	mkdir -p $(SDIST)
	tar -xzf dist/*.tar.gz -C $(SDIST) --strip-components 1
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		missing=$$(git ls-files | while read -r f; do [ -e "$(SDIST)/$$f" ] || echo "  $$f"; done); \
		if [ -n "$$missing" ]; then echo "error: the sdist lacks tracked files:"; echo "$$missing"; exit 1; fi; \
		echo "The sdist holds every tracked file."; \
	fi
	cd $(SDIST) && $(PYTHON) -m venv .venv && .venv/bin/python -m pip install --quiet ".[test]"
	cd $(SDIST) && .venv/bin/python -m pytest $(ARGS)

# The languages whose catalogues ship in django_secure_sessions/locale (tests/test_translations.py
# checks each). makemessages and compilemessages need GNU gettext: apt-get install gettext.
LANGUAGES := de es fr pt_BR ru zh_Hans

messages: $(VENV)/.installed-core ## Update the translation catalogues from the code and compile them
	cd django_secure_sessions && $(CURDIR)/$(PY) -m django makemessages --no-obsolete \
		--add-location file $(addprefix --locale ,$(LANGUAGES))
	cd django_secure_sessions && $(CURDIR)/$(PY) -m django compilemessages

clean: ## Remove build output and caches (keeps .venv and the demo database)
	rm -rf build dist docs/_build .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage htmlcov
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -prune \
		-exec rm -rf {} +
