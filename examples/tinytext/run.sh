#!/usr/bin/env bash
# examples/tinytext: a byte-level GPT-style decoder trained by `bitswitch train` on the King James Bible.
# 1. the text: Debian's bible-kjv, decoded by the package's own `bible` tool (one verse per line), verse references
#    stripped; 2. the untrained model: scripts/export-tinytext.py (PyTorch → ONNX); 3. training and the held-out
#    bits per byte (= per character: the text is ASCII). TORCH=1 also trains the same graph in PyTorch
#    (examples/tinytext/train_torch.py) with the same data, steps and recipe.
# Usage: examples/tinytext/run.sh   (env: STEPS=1000 BATCH=32 LR=1e-3 WARMUP=100 THREADS=2 SEED=0 TORCH=0 ORDER=bitswitch)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/.build/release/bitswitch}
PY=${PYTHON:-${BITSWITCH_VENV:-$ROOT/.venv}/bin/python}
OUT=${OUT:-$ROOT/.cache/tinytext}
STEPS=${STEPS:-1000}; BATCH=${BATCH:-32}; LR=${LR:-1e-3}; WARMUP=${WARMUP:-100}; THREADS=${THREADS:-2}; SEED=${SEED:-0}
mkdir -p "$OUT"
command -v bible >/dev/null || { echo "error: the 'bible' tool is missing: install the Debian package bible-kjv (scripts/install-deps.sh)" >&2; exit 1; }
if [ ! -s "$OUT/kjv.txt" ]; then
  # "Ge1:1 In the beginning ..." → "In the beginning ..."; 31,102 verses, 4,137,850 bytes of ASCII.
  bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$OUT/kjv.txt.tmp"
  mv "$OUT/kjv.txt.tmp" "$OUT/kjv.txt"
fi
[ -s "$OUT/model.onnx" ] || "$PY" "$ROOT/scripts/export-tinytext.py" "$OUT/model.onnx" 2>/dev/null
"$BIN" import "$OUT/model.onnx" | sed -n '/^inputs/,/^nodes/p'
OPENBLAS_NUM_THREADS=$THREADS "$BIN" train "$OUT/model.onnx" --data "$OUT/kjv.txt" -o "$OUT/trained.onnx" \
  --steps "$STEPS" --batch "$BATCH" --lr "$LR" --warmup-steps "$WARMUP" --threads "$THREADS" --seed "$SEED" \
  --log-every 50 | tee "$OUT/bitswitch.log"
if [ "${TORCH:-0}" = 1 ]; then
  OMP_NUM_THREADS=$THREADS "$PY" "$ROOT/examples/tinytext/train_torch.py" "$OUT/kjv.txt" --steps "$STEPS" \
    --batch "$BATCH" --lr "$LR" --warmup-steps "$WARMUP" --threads "$THREADS" --seed "$SEED" --order "${ORDER:-bitswitch}" | tee "$OUT/torch.log"
fi
