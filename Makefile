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

.PHONY: install test demo bench lint clean fuzz

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) \
	  || $(BIN)/python -m pip install --quiet $(TORCH) --index-url $(TORCH_FALLBACK_INDEX)
	$(BIN)/python -m pip install --quiet -e '.[dev,report,registry,ray]'
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
	rm -rf $(VENV) demo .pytest_cache fuzz/corpus fuzz/work fuzz/logs
