# Two entry points for a fresh machine: `make run` (the MNIST study) and `make test`.
# Both create .venv and install the pinned requirements once; the stamp is keyed on the
# hash of the requirement files, so a second run does not reinstall.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.stamp-$(REQ_HASH)

export TF_USE_LEGACY_KERAS := 1
export PYTHONHASHSEED := 0

DEVICE_VENV := .venv-device
DEVICE_HASH := $(shell sha256sum requirements-device.txt | cut -c1-16)
DEVICE_STAMP := $(DEVICE_VENV)/.stamp-$(DEVICE_HASH)

# Test devices beside .venv-device, built once under .devices/ (git-ignored):
#   .devices/x86    the loopback device with both runtimes (ai-edge-litert + tflite-runtime,
#                   numpy<2): what `--runtime=all` compares
#   .devices/arm64  an emulated arm64 board: Debian bookworm arm64 root + aarch64 wheels, run by
#                   qemu-user (tests/devices/build_arm64.sh); about 25 s and 300 MB once
DEVICES := .devices
DEVICE_X86 := $(DEVICES)/x86
DEVICE_X86_HASH := $(shell cat requirements-device.txt requirements-device-litert.txt | sha256sum | cut -c1-16)
DEVICE_ARM64 := $(DEVICES)/arm64

.PHONY: venv device-venv device-x86 device-arm64 test-deps run test test-fast lint format clean notebooks check-notebooks

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.stamp-* && touch $@

# The loopback "device" of the SSH tests: what a Coral/ARM board runs (numpy<2, tflite-runtime).
device-venv: $(DEVICE_STAMP)

$(DEVICE_STAMP): requirements-device.txt
	@test -x $(DEVICE_VENV)/bin/python || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install -q -r requirements-device.txt
	@rm -f $(DEVICE_VENV)/.stamp-* && touch $@

device-x86: $(DEVICE_X86)/.stamp-$(DEVICE_X86_HASH)

$(DEVICE_X86)/.stamp-$(DEVICE_X86_HASH): requirements-device.txt requirements-device-litert.txt
	@test -x $(DEVICE_X86)/bin/python || $(PYTHON) -m venv $(DEVICE_X86)
	$(DEVICE_X86)/bin/python -m pip install -q -r requirements-device-litert.txt
	@rm -f $(DEVICE_X86)/.stamp-* && touch $@

# CI runs as root on a fresh Debian: qemu-user-static and debootstrap come from apt when missing.
device-arm64: $(DEVICE_ARM64)/.stamp-$(DEVICE_HASH)

$(DEVICE_ARM64)/.stamp-$(DEVICE_HASH): requirements-device.txt tests/devices/build_arm64.sh | venv
	@command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq qemu-user-static debootstrap >/dev/null; }
	PIP_PYTHON=$(PY) tests/devices/build_arm64.sh $(DEVICE_ARM64) requirements-device.txt
	@rm -f $(DEVICE_ARM64)/.stamp-* && touch $@

# A real OpenSSH server for the SSH harness tests (Debian's openssh-server; we run as root), and
# Debian's dataset-fashion-mnist (70,000 real images, offline) for tests/test_datasets.py.
test-deps:
	@command -v /usr/sbin/sshd >/dev/null || { apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null; }
	@test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }

run: venv
	$(PY) tools/pipeline.py --config=configs/mnist.py --workdir=runs/mnist

test: venv device-venv device-x86 device-arm64 test-deps
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

lint: venv check-notebooks
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m ruff check --target-version=py37 edgequant/bench/device_runner.py
	$(PY) -m ruff format --check --target-version=py37 edgequant/bench/device_runner.py

# Execute every notebook top to bottom, small and offline (tests/test_notebooks.py does the same).
notebooks: venv
	$(PY) dev/run_notebooks.py

# The notebooks' sources are notebooks/src/*.py (jupytext percent format); after editing one, run
# `$(PY) dev/make_notebooks.py`. This check fails when a committed .ipynb has outputs or is not
# exactly what make_notebooks writes from its source.
check-notebooks: venv
	$(PY) dev/check_notebooks.py

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) $(DEVICE_VENV) $(DEVICES) runs .pytest_cache .ruff_cache
