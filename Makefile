# Two commands do everything on a fresh machine:
#   make demo   set up (first time) and run the pipeline on the embedded default scenario
#   make test   set up (first time) and run the whole test suite
# Set-up is a venv in .venv/ from pinned requirements, plus a cmake build of msg/ and the
# package into that venv (the same CMakeLists.txt colcon uses on a robot). Re-runs are quick.
SHELL := /bin/bash
VENV := .venv
PY := $(abspath $(VENV))/bin/python
BUILD := build/dev

# Every ROS process started from here stays on loopback, in its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 61
export PYTHONDONTWRITEBYTECODE := 1

PKG_SOURCES := CMakeLists.txt package.xml $(wildcard msg/*.msg) \
  $(shell find aecf_ros launch config scripts -type f -not -path '*__pycache__*' 2>/dev/null)

.PHONY: setup demo test bench-ml bench-runtime soak clean help
help:
	@echo "make demo | make test | make test-repeat | make bench | make bench-gpu | make bench-ml | make bench-report | make bench-runtime | make soak | make faults | make clean"

$(VENV)/.deps-stamp: requirements.txt tools/fix_wheel_cmake.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) tools/fix_wheel_cmake.py
	touch $@

$(VENV)/.install-stamp: $(VENV)/.deps-stamp $(PKG_SOURCES)
	mkdir -p build
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	  -DCMAKE_PREFIX_PATH=$(abspath $(VENV)) -DPython3_EXECUTABLE=$(PY) \
	  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > $(BUILD).configure.log 2>&1 \
	  || (mkdir -p build; cat $(BUILD).configure.log; exit 1)
	cmake --build $(BUILD) -j2 > $(BUILD).build.log 2>&1 || (cat $(BUILD).build.log; exit 1)
	cmake --install $(BUILD) > $(BUILD).install.log 2>&1 || (cat $(BUILD).install.log; exit 1)
	touch $@

setup: $(VENV)/.install-stamp

test: setup
	$(PY) -m pytest test

demo: setup
	$(PY) -m aecf_ros.cli demo

# issue 21: the DDS-heavy test files N times in a row, one pytest at a time, with a flake count per
# test id (exit 1 if any test failed once). FILES= picks files (default: tools/test_repeat.py's list);
# TEST_DOMAIN_ID= the ROS domain of every repeat. Reports: build/test-repeat/run*.xml|log
N ?= 10
FILES ?=
TEST_DOMAIN_ID ?= $(ROS_DOMAIN_ID)
.PHONY: test-repeat
test-repeat: setup
	$(PY) tools/test_repeat.py -n $(N) --domain-id $(TEST_DOMAIN_ID) $(FILES)

# The two regimes run as two 1-thread processes (small models: ~2x the throughput of one
# 2-thread process on 2 cores), then the summary is rebuilt from both.
bench-ml: setup
	$(PY) -m aecf_ros.cli benchmark --regimes standard --threads 1 --no-progress --out docs/results & s=$$!; \
	$(PY) -m aecf_ros.cli benchmark --regimes dominant --threads 1 --no-progress --out docs/results & d=$$!; \
	wait $$s && wait $$d && $(PY) -m aecf_ros.cli benchmark --summary-only --out docs/results

# issue 19: regenerate every results.md / sweep.md from the results.json / sweep.json already in
# docs/results (no training): the verdicts are recomputed from the per-seed figures
.PHONY: bench-report
bench-report: setup
	$(PY) -m aecf_ros.cli benchmark --report-only --out docs/results
	for regime in standard dominant; do \
	  $(PY) -m aecf_ros.cli sweep --report-only --out docs/results/sweep/$$regime || exit 1; \
	done

.PHONY: bench-sweep
bench-sweep: setup
	for regime in standard dominant; do \
	  $(PY) -m aecf_ros.cli sweep --regime $$regime --out docs/results/sweep/$$regime --no-progress || exit 1; \
	done

bench-runtime: setup
	$(PY) -m aecf_ros.cli bench-runtime

# issue 10: every performance row in one run (< 10 min): docs/PERFORMANCE.md + docs/performance.json
.PHONY: bench bench-gpu
bench: setup
	$(PY) tools/bench.py --out docs

# the CUDA tests + GPU rows on a GPU machine's own python3 + torch (no venv, no ROS, no make setup)
bench-gpu:
	PYTHONPATH=. python3 tools/bench_gpu.py --out docs

# 10-minute soak of the full graph (not in CI): RSS, CPU, rates, loss counters -> docs/results/soak.*
soak: setup
	$(PY) tools/soak.py --duration 600 --out docs/results

# fault runs (kill -9 an encoder, restart fusion, flapping, 10x rate, starved fusion; ~2 min)
.PHONY: faults
faults: setup
	$(PY) tools/fault_runs.py --out docs/results/fault_runs.json

# issue 18: which image / cloud sizes reach the real encoders, per QoS and transport (~6 min;
# defaults vs config/fastdds_large_frames.xml) -> docs/big_messages.json, docs/RELIABILITY.md "Big messages"
.PHONY: bench-big
bench-big: setup
	$(PY) tools/bench_big_messages.py --out docs/big_messages.json

clean:
	rm -rf build $(VENV)
