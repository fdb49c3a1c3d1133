# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; later runs reuse it (re-installing only when setup.py changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := ros,onnxruntime,opencv,test

.PHONY: demo test test-floor lint pytest benchmark clean

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

# The ROS-free tests on the compatibility floor (.ci/floor-requirements.txt). The ROS tests need
# the rclpy wheels, which exist for newer Pythons only; Humble's rclpy is covered by using only its API.
FLOOR_PYTHON ?= $(firstword $(wildcard /usr/bin/python3.10 /usr/local/bin/python3.10 \
                  $(HOME)/.pyenv/versions/3.10*/bin/python3.10))
FLOOR_VENV   := .venv-floor
FLOOR_SKIP   := test/test_node.py test/test_node_parts.py test/test_demo.py test/test_benchmarks.py \
                test/test_packaging.py test/test_tensorrt_gpu.py

test-floor:
	@if [ -z "$(FLOOR_PYTHON)" ] || ! "$(FLOOR_PYTHON)" -c "" 2>/dev/null; then \
		echo "test-floor: no Python 3.10 on this machine (set FLOOR_PYTHON); the floor check did not run"; \
		exit 0; fi; \
	set -e; \
	test -x $(FLOOR_VENV)/bin/python || $(FLOOR_PYTHON) -m venv $(FLOOR_VENV); \
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r .ci/floor-requirements.txt; \
	PYTHONPATH=$(CURDIR) $(FLOOR_VENV)/bin/python -m pytest -p no:cacheprovider \
		$(addprefix --ignore=,$(FLOOR_SKIP))

benchmark: $(STAMP)
	$(BIN)/python benchmarks/render_benchmark.py
	$(BIN)/python benchmarks/node_benchmark.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) build install log demo_output .pytest_cache
