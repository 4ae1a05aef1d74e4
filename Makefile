# `make run` and `make test` work on a fresh clone: each creates .venv if missing, installs the
# project, compiles the translation catalogs, then runs the bot / the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYBABEL := $(VENV)/bin/pybabel
STAMP := $(VENV)/.installed-stamp
LANGS := hi bn mr te ta gu kn ml pa

.PHONY: run test install catalogs extract bench lint fonts

# Posters and charts carry text in Indian scripts; Debian's Noto fonts cover all of them.
NOTO := /usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf
fonts:
	@if [ ! -f $(NOTO) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing fonts-noto-core (Indian-script fonts for posters and charts)"; \
	    (apt-get install -y -qq --no-install-recommends fonts-noto-core >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends fonts-noto-core >/dev/null 2>&1)) || \
	     echo "WARNING: could not install fonts-noto-core; Indian-script text in pictures will not render."; \
	  else \
	    echo "WARNING: install Debian's fonts-noto-core (sudo apt-get install fonts-noto-core) so posters and charts render Indian scripts."; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Compiled .mo files are build output, never committed or hand-edited.
catalogs: $(STAMP)
	$(PYBABEL) compile --statistics -d locales -D messages 2>&1 | grep -v '^compiling' || true
	@for lang in $(LANGS); do test -f locales/$$lang/LC_MESSAGES/messages.mo || { echo "catalog $$lang did not compile"; exit 1; }; done

run: fonts catalogs
	$(PY) -m bot run

test: fonts catalogs
	$(PY) -m pytest -q

# After changing user-facing strings: refresh the template and every language's catalog.
extract: $(STAMP)
	$(PYBABEL) extract -F babel.cfg -k N_ -k t -k ngettext:1,2 --sort-by-file --project cluster-bot -o locales/messages.pot .
	$(PYBABEL) update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Benchmarks run against the local Bot API stand-in (tests/botapi.py); each prints its figures.
bench: fonts catalogs
	$(PY) -m bench.survey_answers
	$(PY) -m bench.broadcast
	$(PY) -m bench.broadcast --kill
	$(PY) -m bench.reporting
