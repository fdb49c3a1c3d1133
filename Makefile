# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; later runs reuse it (re-installing only when setup.py changes,
# rebuilding vision_msgs only when msgs/ or the installed wheels change).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := ros,msgs-build,onnxruntime,quantize,openvino,bag,fleet,opencv,test

# vision_msgs is not on PyPI: msgs/build.sh builds our copy of its LabelInfo/VisionClass
# definitions into a venv with the ROS interface tool chain pip installed there.
MSGS_SOURCES := msgs/build.sh msgs/cmake/fix_wheel_includes.cmake msgs/vision_msgs/package.xml \
                msgs/vision_msgs/CMakeLists.txt $(wildcard msgs/vision_msgs/msg/*.msg)
MSGS_STAMP   := $(VENV)/.vision_msgs

# The ROS tests (the only ones that need rclpy): run again on Jazzy by `make test-jazzy`.
ROS_TESTS = $(sort $(wildcard test/test_node*.py test/test_msgs_*.py))

.PHONY: demo test test-floor test-jazzy lint pytest benchmark clean

$(STAMP): setup.py setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(MSGS_STAMP): $(STAMP) $(MSGS_SOURCES)
	msgs/build.sh $(VENV)
	touch $(MSGS_STAMP)

demo: $(MSGS_STAMP)
	$(BIN)/python -m segnet_ros.demo

test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .

pytest: $(MSGS_STAMP)
	$(BIN)/python -m pytest

# The ROS tests again on ROS 2 Jazzy: a second venv from the Jazzy-pinned wheels
# (.ci/jazzy-requirements.txt: rclpy 7.1.x, its message packages and its interface tool chain).
JAZZY_VENV  := .venv-jazzy
JAZZY_STAMP := $(JAZZY_VENV)/.installed
JAZZY_MSGS  := $(JAZZY_VENV)/.vision_msgs

$(JAZZY_STAMP): setup.py setup.cfg .ci/jazzy-requirements.txt
	test -x $(JAZZY_VENV)/bin/python || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(JAZZY_VENV)/bin/python -m pip install --quiet -r .ci/jazzy-requirements.txt -e ".[onnxruntime,opencv,test]"
	touch $(JAZZY_STAMP)

$(JAZZY_MSGS): $(JAZZY_STAMP) $(MSGS_SOURCES)
	msgs/build.sh $(JAZZY_VENV)
	touch $(JAZZY_MSGS)

test-jazzy: $(JAZZY_MSGS)
	$(JAZZY_VENV)/bin/python -m pytest -p no:cacheprovider $(ROS_TESTS)

# The ROS-free tests on the compatibility floor (.ci/floor-requirements.txt). The ROS tests need
# the rclpy wheels, which exist for newer Pythons only; Humble's rclpy is covered by using only its API.
FLOOR_PYTHON ?= $(firstword $(wildcard /usr/bin/python3.10 /usr/local/bin/python3.10 \
                  $(HOME)/.pyenv/versions/3.10*/bin/python3.10))
FLOOR_VENV   := .venv-floor
FLOOR_SKIP    = $(ROS_TESTS) test/test_demo.py test/test_benchmarks.py test/test_nav2_params.py test/test_launch_nav2.py \
                test/test_packaging.py test/test_tensorrt_gpu.py test/test_openvino_backend.py test/test_bag_ros.py

test-floor:
	@if [ -z "$(FLOOR_PYTHON)" ] || ! "$(FLOOR_PYTHON)" -c "" 2>/dev/null; then \
		echo "test-floor: no Python 3.10 on this machine (set FLOOR_PYTHON); the floor check did not run"; \
		exit 0; fi; \
	set -e; \
	test -x $(FLOOR_VENV)/bin/python || $(FLOOR_PYTHON) -m venv $(FLOOR_VENV); \
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r .ci/floor-requirements.txt; \
	PYTHONPATH=$(CURDIR) $(FLOOR_VENV)/bin/python -m pytest -p no:cacheprovider \
		$(addprefix --ignore=,$(FLOOR_SKIP))

benchmark: $(MSGS_STAMP)
	$(BIN)/python benchmarks/render_benchmark.py
	$(BIN)/python -m segnet_ros.cli.main benchmark
	$(BIN)/python benchmarks/node_benchmark.py --transport tuned
	$(BIN)/python benchmarks/multicamera_benchmark.py
	$(BIN)/python benchmarks/bag_benchmark.py
	$(BIN)/python benchmarks/evaluate_benchmark.py
	$(BIN)/python benchmarks/fleet_benchmark.py
	$(BIN)/python benchmarks/spin_benchmark.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) $(JAZZY_VENV) build install log demo_output .pytest_cache
