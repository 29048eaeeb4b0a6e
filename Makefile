# Every target sets itself up on a fresh machine: `make demo` and `make test` need nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of PyTorch. It is installed before the package so that pip never resolves
# the plain `torch` requirement to a multi-GB CUDA build. On these machines pip finds the
# wheel in /opt/wheels; elsewhere it comes from PyTorch's CPU index.
TORCH := torch==2.13.0
TORCH_FALLBACK_INDEX := https://download.pytorch.org/whl/cpu

# The zero-knowledge circuit (modeldeed.zk) runs on o1js from npm, pinned by a committed lockfile. npm ci
# installs exactly that into the package's js folder (no install scripts, no optional native binaries).
# Without Node.js the rest works and the zk tests skip; in CI (CI set) a missing npm is an error.
ZK_JS := src/modeldeed/zk/js
ZK_STAMP := $(ZK_JS)/node_modules/.modeldeed-installed

.PHONY: install test demo bench lint clean fuzz zk-toolchain

install: $(STAMP) zk-toolchain

zk-toolchain:
	@if [ -f $(ZK_STAMP) ] && [ $(ZK_STAMP) -nt $(ZK_JS)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix $(ZK_JS) --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error \
	  && touch $(ZK_STAMP); \
	elif [ -n "$$CI" ]; then echo "error: npm (Node.js >= 18.14) is required in CI for modeldeed.zk"; exit 1; \
	else echo "note: Node.js/npm not found: zero-knowledge verification (modeldeed.zk) and its tests are skipped"; fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) \
	  || $(BIN)/python -m pip install --quiet $(TORCH) --index-url $(TORCH_FALLBACK_INDEX)
	$(BIN)/python -m pip install --quiet -e '.[dev,report,registry]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/modeldeed demo   # a fresh demo/run-<UTC time> each time: an earlier run and its report stay as they were

bench: install
	$(BIN)/python benchmarks/run_all.py

# Long fuzzing runs (atheris/libFuzzer), FUZZ_SECONDS per target (default 600): `FUZZ_SECONDS=60 make fuzz`.
# Seed corpora are made from real files by fuzz/make_seeds.py; findings land in fuzz/crashes/.
FUZZ_SECONDS ?= 600
fuzz: install
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet atheris
	cd fuzz && ../$(BIN)/python make_seeds.py
	FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=../$(BIN)/python fuzz/run.sh

lint: install
	$(BIN)/ruff check src tests benchmarks fuzz

clean:
	rm -rf $(VENV) demo .pytest_cache fuzz/corpus fuzz/work fuzz/logs $(ZK_JS)/node_modules
