#!/usr/bin/env bash
# Installs the Debian packages BitSwitch builds against, if any is missing. Idempotent and quiet when all are there.
set -euo pipefail
# zlib1g-dev: gzip-compressed IDX files are read through zlib. dataset-fashion-mnist: examples/fashion-mnist's data
# (the IDX files as shipped, in /usr/share/datasets/fashion-mnist). gcc-aarch64-linux-gnu, qemu-user: the C back
# end's aarch64 cross-build test. bible-kjv: examples/tinytext's text (the King James Bible, decoded by its `bible` tool).
pkgs=(libprotobuf-c-dev protobuf-c-compiler libopenblas-dev libglpk-dev pkg-config python3-venv zlib1g-dev dataset-fashion-mnist
      gcc-aarch64-linux-gnu qemu-user bible-kjv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
  echo "error: the Swift toolchain (6.1 or newer) is not on PATH; install it from swift.org" >&2; exit 1
fi
