#!/usr/bin/env bash
# Multi-precision demo on the shipped digits example: float model -> insert fake-quant -> short joint training of
# {8,6,4,2} -> accuracy at every bit-width from the stored INT8 file -> its size next to the FP32 file.
#   scripts/demo-qat.sh [BIN [FLOAT_MODEL]]   (called by scripts/demo.sh with the float model it trained;
#   about half a minute on one core)
set -euo pipefail
BIN=${1:-.build/release/bitswitch}
EX=examples/digits
OUT=${DEMO_OUT:-.cache/demo}
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -n "${2:-}" ]; then
  [ "$2" = "$OUT/digits-fp32.onnx" ] || cp "$2" "$OUT/digits-fp32.onnx"
else
  step "Q1. Import the digits model (shipped untrained) and train it in float: the starting point"
  "$BIN" import "$EX/model.onnx"
  "$BIN" train "$EX/model.onnx" --data "$EX/data" -o "$OUT/digits-fp32.onnx" --epochs 20 --threads 1 --quiet
fi

step "Q2+Q3. Insert fake-quant ({8,6,4,2}, first/last layer pinned at 8 bits) and train every bit-width jointly"
"$BIN" train "$OUT/digits-fp32.onnx" --data "$EX/data" -o "$OUT/digits-int8.onnx" --bits 8,6,4,2 --epochs 8 \
    --threads 1

step "Q4. The stored model reloaded: accuracy at every bit-width (lower widths are rounding shifts of the INT8 weights)"
"$BIN" eval "$OUT/digits-int8.onnx" --data "$EX/data" --bits all
echo "(float model: $("$BIN" eval "$OUT/digits-fp32.onnx" --data "$EX/data"))"

step "Q5. Its quantizers in the IR, and the stored INT8 file next to the FP32 one"
"$BIN" print-ir "$OUT/digits-int8.onnx" | grep -E 'FakeQuant|SwitchableBatchNorm|: i8\[' | head -n 8
fp=$(stat -c %s "$OUT/digits-fp32.onnx") q=$(stat -c %s "$OUT/digits-int8.onnx")
printf '%-28s %8d bytes\n%-28s %8d bytes (%d %% of FP32)\n' "$OUT/digits-fp32.onnx" "$fp" "$OUT/digits-int8.onnx" "$q" \
    $((100 * q / fp))
