#!/usr/bin/env bash
# The whole chain as far as it is built, on the shipped digits example (examples/digits).
set -euo pipefail
BIN=${1:-.build/release/bitswitch}
EX=examples/digits
OUT=${DEMO_OUT:-.cache/demo}
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Import the example model (an untrained CNN, BatchNormalization after every conv) and summarise it"
"$BIN" import "$EX/model.onnx"

step "2. Run the float cleanup pipeline (passes/cleanup.yaml) and print the IR (constants elided)"
"$BIN" opt "$EX/model.onnx" --pipeline passes/cleanup.yaml -o "$OUT/cleanup.onnx"
"$BIN" print-ir "$OUT/cleanup.onnx" | head -n 24

step "3. Run it on shipped inputs; check against the expected output (from ONNX Runtime)"
"$BIN" run "$EX/model.onnx" --input "$EX/sample/input.npy" --output-dir "$OUT" --check "$EX/sample/expected_logits.npy"

step "4. Train the float model on the digits data (20 epochs, Adam, cosine) and evaluate it"
"$BIN" train "$EX/model.onnx" --data "$EX" -o "$OUT/digits-fp32.onnx" --epochs 20 --threads 1
"$BIN" eval "$OUT/digits-fp32.onnx" --data "$EX"

if [ -x scripts/demo-qat.sh ]; then
  step "5. Multi-precision quantization: insert fake-quant, train {8,6,4,2} jointly, store one INT8 model"
  DEMO_OUT=$OUT scripts/demo-qat.sh "$BIN" "$OUT/digits-fp32.onnx"
fi

if [ -f "$OUT/digits-int8.onnx" ]; then
  step "6. Compile to integers: lower every profile (fold scales, BN, ReLU into requantization), emit C, build it"
  "$BIN" print-ir "$OUT/digits-int8.onnx" >/dev/null
  "$BIN" opt "$OUT/digits-int8.onnx" --pipeline 'fold-scales{bits=4},lower-int' -o "$OUT/digits-int4.bsir"
  echo "integer IR at 4 bits ($OUT/digits-int4.bsir):"
  grep -E 'Quantize|QConv|Requant|QGemm|QMaxPool|QGlobal|Dequantize' "$OUT/digits-int4.bsir" | cut -c1-150 | head -n 9
  "$BIN" emit "$OUT/digits-int8.onnx" -o "$OUT/digits-c" --profiles 8,6,4,2
  "$BIN" build "$OUT/digits-c" -o "$OUT/digits-c/libdigits.so"

  step "7. Run the integer C model on the digits test set, switching bit-width at run time inside one loaded library"
  "$BIN" eval "$OUT/digits-int8.onnx" --data "$EX/data" --bits all --backend c
  echo "(fake-quant, for comparison:)"
  "$BIN" eval "$OUT/digits-int8.onnx" --data "$EX/data" --bits all
  printf 'bundle: %s bytes in %s (INT8 weights once; per profile only requantization tables and shifts)\n' \
      "$(du -sb "$OUT/digits-c" | cut -f1)" "$OUT/digits-c"
  if [ -x .venv/bin/python ]; then
    echo "onnxruntime on the same float model, batch 1, one thread (quantize_static int8 QDQ; bench/latency/ort_latency.py):"
    OMP_NUM_THREADS=1 .venv/bin/python bench/latency/ort_latency.py "$OUT/digits-fp32.onnx" "$EX/data" "$OUT/ort" \
        --budget 1 --variants fp32,u8s8,s8s8 2>/dev/null \
      | .venv/bin/python -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    if "median_ms" in r: print("  onnxruntime %-5s %8.1f µs/sample" % (r["variant"], 1000 * r["median_ms"]))' || true
    echo "  (the integer C above runs the kernels emit chose for this CPU: AVX-512 VNNI or AVX2 where the CPU has it, else the portable"
    echo "   ones; its µs/sample include eval's per-sample call from Swift. Batch-1 tables of five models: bench/README.md)"
  fi
fi
