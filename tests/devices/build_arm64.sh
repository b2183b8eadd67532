#!/usr/bin/env bash
# Builds an emulated arm64 "board" for the SSH tests: a Debian bookworm arm64 root (Python 3.11),
# the aarch64 wheels of the device stack unpacked into it, and a two-line `python` wrapper that
# runs the aarch64 interpreter under qemu-user. No binfmt_misc, no chroot, no second stage:
# `debootstrap --foreign` only downloads and extracts, and `dpkg -x` unpacks the rest.
#
#   tests/devices/build_arm64.sh DIR REQUIREMENTS...
#
# DIR/rootfs        the arm64 root (about 230 MB)
# DIR/site          the device stack (numpy<2, tflite-runtime, ai-edge-litert: aarch64 wheels)
# DIR/bin/python    the device python: qemu-aarch64-static -L DIR/rootfs .../python3.11
# Idempotent: the root is built once; the stack is re-unpacked when the requirements change.
# PIP_PYTHON: a Python with pip (default python3) that downloads the aarch64 wheels.
set -euo pipefail
dir=$(realpath -m "$1"); shift
mkdir -p "$dir"
root=$dir/rootfs
if [ ! -x "$root/usr/bin/python3.11" ]; then
  rm -rf "$root"
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3-minimal,python3 \
    bookworm "$root" http://deb.debian.org/debian >"$dir/debootstrap.log" 2>&1 \
    || { tail -5 "$dir/debootstrap.log"; exit 1; }
  # The first stage extracts only the essential set; the included packages (python3.11 and its
  # libraries) are downloaded but not unpacked: unpack every .deb (no maintainer scripts needed).
  for deb in "$root"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$root"; done
  rm -f "$root"/var/cache/apt/archives/*.deb
fi
req_hash=$(cat "$@" | sha256sum | cut -c1-16)
if [ "$(cat "$dir/site/.complete" 2>/dev/null)" != "$req_hash" ]; then
  rm -rf "$dir/site" "$dir/wheels"
  # manylinux_2_34: tflite-runtime 2.14's aarch64 wheel; bookworm's glibc is 2.36.
  platforms=()
  for glibc in 17 27 28 31 34 36; do platforms+=(--platform "manylinux_2_${glibc}_aarch64"); done
  "${PIP_PYTHON:-python3}" -m pip download -q --only-binary=:all: "${platforms[@]}" --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp -d "$dir/wheels" "${@/#/-r}"
  mkdir -p "$dir/site"
  for whl in "$dir"/wheels/*.whl; do "${PIP_PYTHON:-python3}" -m zipfile -e "$whl" "$dir/site"; done
  rm -rf "$dir/wheels"
  echo "$req_hash" >"$dir/site/.complete"
fi
mkdir -p "$dir/bin"
printf '#!/bin/sh\nPYTHONPATH=%s exec qemu-aarch64-static -L %s %s/usr/bin/python3.11 "$@"\n' \
  "$dir/site" "$root" "$root" >"$dir/bin/python"
chmod +x "$dir/bin/python"
"$dir/bin/python" -c 'import platform, numpy, tflite_runtime; print(platform.machine(), numpy.__version__)'
