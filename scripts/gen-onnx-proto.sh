#!/usr/bin/env bash
# Regenerates the protobuf-c bindings for ONNX from the onnx wheel's proto2 schema.
# PYTHON may point at any interpreter that has the `onnx` package installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-/work/main/.venv/bin/python}"
onnx_dir="$("$PYTHON" -c 'import onnx,os;print(os.path.dirname(onnx.__file__))')"
cp "$onnx_dir/onnx.proto" "$root/scripts/onnx.proto"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root/scripts" && protoc-c --c_out="$tmp" onnx.proto)

mkdir -p "$root/Sources/CONNX/include"
cp "$tmp/onnx.pb-c.h" "$root/Sources/CONNX/include/onnx.pb-c.h"
# The header lives in include/ (SwiftPM's public header dir); point the .c at it by relative path so it
# compiles the same with or without SwiftPM's include flags.
sed 's|#include "onnx.pb-c.h"|#include "include/onnx.pb-c.h"|' "$tmp/onnx.pb-c.c" > "$root/Sources/CONNX/onnx.pb-c.c"
grep -q '#include "include/onnx.pb-c.h"' "$root/Sources/CONNX/onnx.pb-c.c"
echo "generated Sources/CONNX/onnx.pb-c.{c,h} from $onnx_dir/onnx.proto"
