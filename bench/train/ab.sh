#!/bin/sh
# Interleaved A/B of two bitswitch binaries (and optionally PyTorch) on one training-step benchmark: rounds of
# old, new[, torch] back to back, so load from other jobs hits all sides alike; prints the medians of samples/s and of
# samples per CPU-second, and the 1-minute load average seen by the runs.
# Usage: bench/train/ab.sh OLD_BIN NEW_BIN ROUNDS THREADS MODEL [bench-train args, e.g. --steps 3 --repeats 3 --warmup 1]
#        TORCH=1 adds bench/train/torch_bench.py with the same arguments (PYTHON: the venv with torch).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
OLD=$1; NEW=$2; R=$3; T=$4; M=$5; shift 5
LOG=$(mktemp)
for i in $(seq 1 "$R"); do
  for side in old new; do
    if [ $side = old ]; then B=$OLD; else B=$NEW; fi
    r=$(OPENBLAS_NUM_THREADS=$T "$B" bench-train "$M" --batch 128 --threads "$T" "$@" --json)
    echo "$side $(cut -d' ' -f1 /proc/loadavg) $r" >> "$LOG"
  done
  if [ -n "${TORCH:-}" ]; then
    r=$(OMP_NUM_THREADS=$T "$PY" "$ROOT/bench/train/torch_bench.py" "$M" --batch 128 --threads "$T" "$@")
    echo "torch $(cut -d' ' -f1 /proc/loadavg) $r" >> "$LOG"
  fi
done
python3 - "$LOG" <<'PYEOF'
import json, statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    side, load, js = line.split(" ", 2)
    d = json.loads(js)
    rows.setdefault(side, []).append((d["samples_per_second"], d["batch"] / d["cpu_seconds"], float(load)))
for side, v in rows.items():
    print(f"{side:6} runs {len(v)}  samples/s median {st.median(x[0] for x in v):8.1f}  per CPU-s median "
          f"{st.median(x[1] for x in v):8.1f}  load {min(x[2] for x in v):.2f}-{max(x[2] for x in v):.2f}")
PYEOF
rm -f "$LOG"
