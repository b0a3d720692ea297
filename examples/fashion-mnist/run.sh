#!/usr/bin/env bash
# Fashion-MNIST end to end: FP32 training, then joint QAT at 8/6/4/2 bits stored as one INT8 model, with the
# accuracy at every bit-width. The data is Debian's dataset-fashion-mnist (the gzip-compressed IDX files as
# shipped, read through zlib), installed by scripts/install-deps.sh.
#   examples/fashion-mnist/run.sh [BIN]     env: EPOCHS (8), QAT_EPOCHS (3), THREADS (2), OUT (out/fashion-mnist)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN=${1:-$root/.build/release/bitswitch}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-8}
QAT_EPOCHS=${QAT_EPOCHS:-3}
THREADS=${THREADS:-2}
OUT=${OUT:-out/fashion-mnist}
[ -x "$BIN" ] || { echo "build first: swift build -c release --product bitswitch (or make fashion-mnist)" >&2; exit 1; }
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || "$root/scripts/install-deps.sh"
mkdir -p "$OUT"
"$BIN" train "$root/examples/fashion-mnist/model.onnx" --data "$DATA" -o "$OUT/fp32.onnx" --epochs "$EPOCHS" \
    --threads "$THREADS"
"$BIN" train "$OUT/fp32.onnx" --data "$DATA" -o "$OUT/int8.onnx" --bits 8,6,4,2 --epochs "$QAT_EPOCHS" \
    --threads "$THREADS"
"$BIN" eval "$OUT/fp32.onnx" --data "$DATA"
"$BIN" eval "$OUT/int8.onnx" --data "$DATA" --bits all
"$BIN" eval "$OUT/int8.onnx" --data "$DATA" --bits all --backend c
