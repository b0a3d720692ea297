#!/usr/bin/env bash
# The whole chain as far as it is built, on the shipped digits example.
set -euo pipefail
BIN=${1:-.build/release/bitswitch}
EX=examples/digits
OUT=${DEMO_OUT:-.cache/demo}
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Import the example model and summarise it"
"$BIN" import "$EX/model.onnx"

step "2. Canonicalize, fold constants, infer shapes (the IR after the pipeline, constants elided)"
"$BIN" opt "$EX/model.onnx" --pipeline passes/canonical.yaml -o "$OUT/canonical.onnx"
"$BIN" print-ir "$OUT/canonical.onnx" | head -n 30

step "3. Run it on shipped inputs and check against the expected output (computed by ONNX Runtime)"
"$BIN" run "$EX/model.onnx" --input "$EX/sample/input.npy" --output-dir "$OUT" --check "$EX/sample/expected_logits.npy"
