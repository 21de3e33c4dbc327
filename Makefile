# pcsms developer commands. On a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   # .venv, install, migrate the SQLite default, seed, run web server + worker
#   make test   # .venv with dev extras, then the whole test suite
# Extra pytest arguments: make test PYTEST_ARGS="-k isolation -x"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=

# The stamps record which install last ran; pip runs again only when pyproject.toml is newer,
# so restarting the demo or the tests stays quick.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

# settings.py requires SECRET_KEY unless DEBUG is on; the demo and the checks run with DEBUG on.
DEV_ENV := DEBUG=true

.PHONY: demo test lint check clean venv

venv: $(BIN)/pip

# pip is created last by venv (through ensurepip), so its presence means a complete venv.
$(BIN)/pip:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "pcsms needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)." >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create $(VENV). On Debian/Ubuntu: sudo apt-get install python3-venv" >&2; \
		exit 1; }

$(STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

# The dev install includes the base install, so it refreshes both stamps.
$(DEV_STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(STAMP)

demo: $(STAMP)
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	$(DEV_ENV) PORT=$(PORT) $(BIN)/python scripts/demo.py

test: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check: $(STAMP)
	$(DEV_ENV) $(BIN)/python manage.py check
	$(DEV_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

# Keeps db.sqlite3 and media/ (your demo data); delete them by hand to start the demo afresh.
clean:
	rm -rf $(VENV) staticfiles .test-media .pytest_cache .ruff_cache *.egg-info bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
