# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; later runs reuse it (re-installing only when setup.py changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := ros,onnxruntime,opencv,test

.PHONY: demo test lint pytest colcon-check benchmark clean

$(STAMP): setup.py setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m segnet_ros.demo

test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .

pytest: $(STAMP)
	$(BIN)/python -m pytest

benchmark: $(STAMP)
	$(BIN)/python benchmarks/render_benchmark.py
	$(BIN)/python benchmarks/node_benchmark.py

clean:
	rm -rf $(VENV) build install log demo_output .pytest_cache
