# sleepstack: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup tools demo test test-fast lint format clean opensearch notebooks lambda-emulator

CHECKOV_VERSION ?= 3.3.30

setup: tools $(VENV)/.installed infra/local/node_modules/.installed serving/web/node_modules/.installed

tools:
	@command -v node >/dev/null || { echo "Node.js (20+) is required for the local Kinesis stream: apt-get install nodejs npm"; exit 1; }
	@command -v npm  >/dev/null || { echo "npm is required to install kinesalite: apt-get install npm"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17 is required by PySpark: apt-get install openjdk-17-jre-headless"; exit 1; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the editable install's notice about same-named folders is setuptools' note on every -e install, not ours
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# checkov pins its own boto3/packaging versions, so it lives in a venv of its own
.venv-checkov/.installed: Makefile
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q --upgrade pip
	.venv-checkov/bin/python -m pip install -q 'checkov==$(CHECKOV_VERSION)'
	touch $@

infra/local/node_modules/.installed: infra/local/package-lock.json
	npm ci --prefix infra/local --no-audit --no-fund --loglevel=error
	touch $@

# the dashboard's chart library, from the npm registry by its lockfile (never a CDN)
serving/web/node_modules/.installed: serving/web/package-lock.json
	npm ci --prefix serving/web --no-audit --no-fund --loglevel=error
	touch $@

# a real OpenSearch 2.19.6 node (Maven Central, SHA-256 pinned) for the integration suite
# and `stack up --live-store opensearch`; unpacked under build/opensearch/
opensearch: setup
	@command -v mvn >/dev/null || { echo "Maven is required to fetch OpenSearch: apt-get install maven"; exit 1; }
	$(BIN)/sleepstack opensearch install

# AWS's Lambda Runtime Interface Emulator (a Go module, built from the module proxy; the module
# asks for Go >= 1.26.6) and what the python3.11 runtime provides (awslambdaric, boto3), both
# under build/ once: tests/test_lambda_runtime.py and `sleepstack bench lambda` run the zip in them
lambda-emulator: setup
	@command -v go >/dev/null || { echo "Go (1.26.6 or newer) is required to build the Lambda Runtime Interface Emulator"; exit 1; }
	$(BIN)/python -c 'from pathlib import Path; from sleepstack.emulator import build_emulator, runtime_dir; print(build_emulator(Path("build")), runtime_dir(Path("build")))'

demo: setup
	$(BIN)/sleepstack demo --keep-running

# the whole suite: the infra tests' checkov and the integration suite's OpenSearch node are fetched first
test: setup .venv-checkov/.installed opensearch lambda-emulator
	$(BIN)/pytest -n 2 --dist loadfile

# JupyterLab (the notebooks extra) on the notebooks, loopback only; it prints its address with a token
notebooks: setup
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(BIN)/python -m pip install -q -e '.[notebooks]'
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --notebook-dir=notebooks

test-fast: setup
	$(BIN)/pytest -m "not slow and not spark and not integration and not browser"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core dead_letters registry ingest speed_layer batch_layer serving local glue_jobs sleepstack simulator access

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-checkov infra/local/node_modules serving/web/node_modules .sleepstack build dist
