#!/bin/sh
# Training-step throughput, bitswitch vs PyTorch on the CPU, same graph, same batch, 1 and 2 threads.
# One step = forward, cross-entropy, backward, Adam update, on random data; median of timed repeats.
# Usage: bench/train/run.sh [--quick]      (needs the venv with torch: scripts/setup-venv.sh --with-torch)
# ROUNDS=N (default 3): each configuration is measured N times, bitswitch and PyTorch back to back in every round, and
# the table shows each side's median and the ratio of the medians: a machine whose speed swings between runs then
# distorts both sides alike (a single round compared one side's fast moment with the other's slow one).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${BENCH_OUT:-$ROOT/.build/bench-train}
BIN=$ROOT/.build/release/bitswitch
mkdir -p "$OUT"
(cd "$ROOT" && swift build -c release --product bitswitch >/dev/null)
[ -f "$OUT/resnet20.onnx" ] || "$PY" "$ROOT/bench/train/make_resnet20.py" "$OUT/resnet20.onnx" >/dev/null

if [ "${1:-}" = "--quick" ]; then DIG="--steps 10 --repeats 3"; RES="--steps 1 --repeats 2 --warmup 1"
else DIG="--steps 40 --repeats 5"; RES="--steps 3 --repeats 3 --warmup 1"; fi

: > "$OUT/results.jsonl"
# The machine's environment sets OPENBLAS_CORETYPE=Haswell (AVX2 sgemm kernels); unset, OpenBLAS picks its AVX-512
# kernels. Both sides run both ways; bitswitch's own conv kernels do not use OpenBLAS, its Gemm and odd convs do.
for blas in env unset; do
  if [ "$blas" = unset ]; then E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"; else E="env"; fi
  label=${OPENBLAS_CORETYPE:-unset}; [ "$blas" = unset ] && label=unset
  for spec in "digits|$ROOT/examples/digits/model.onnx|$DIG" "resnet20|$OUT/resnet20.onnx|$RES"; do
    name=${spec%%|*}; rest=${spec#*|}; model=${rest%%|*}; args=${rest#*|}
    for t in 1 2; do
      for round in $(seq 1 "${ROUNDS:-3}"); do
        # OPENBLAS_NUM_THREADS keeps OpenBLAS from starting (and spinning) more threads than the run uses.
        b=$($E OPENBLAS_NUM_THREADS=$t "$BIN" bench-train "$model" --batch 128 --threads "$t" $args --json)
        p=$($E OMP_NUM_THREADS=$t "$PY" "$ROOT/bench/train/torch_bench.py" "$model" --batch 128 --threads "$t" $args)
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "{\"name\": \"$name\", \"threads\": $t, \"coretype\": \"$label\", \"round\": $round, \"load\": $load, \"bitswitch\": $b, \"torch\": $p}" >> "$OUT/results.jsonl"
      done
    done
  done
  [ "$label" = unset ] && [ "$blas" = env ] && break   # nothing set: one pass is both
done

"$PY" - "$OUT/results.jsonl" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault((r["coretype"], r["name"], r["threads"]), []).append(r)
# Wall-clock samples/s decide; samples per CPU-second are shown too because a busy machine distorts them less.
# Medians over the rounds of each side; load is the range the rounds saw.
print(f"{'OPENBLAS_CORETYPE':17} {'load':>9} {'model':10} {'threads':>7} {'rounds':>6} {'bitswitch samples/s':>20} {'torch samples/s':>16} {'ratio':>6}"
      f"   {'per CPU-s: bitswitch':>21} {'torch':>7} {'ratio':>6}")
for (coretype, name, threads), rs in groups.items():
    med = lambda f: statistics.median(f(r) for r in rs)
    b = med(lambda r: r["bitswitch"]["samples_per_second"]); t = med(lambda r: r["torch"]["samples_per_second"])
    bc = med(lambda r: r["bitswitch"]["batch"] / r["bitswitch"]["cpu_seconds"])
    tc = med(lambda r: r["torch"]["batch"] / r["torch"]["cpu_seconds"])
    loads = [r["load"] for r in rs]
    load = f"{min(loads):.2f}-{max(loads):.2f}"
    print(f"{coretype:17} {load:>9} {name:10} {threads:>7} {len(rs):>6} {b:>20.0f} {t:>16.0f} {b / t:>6.2f}   {bc:>21.0f} {tc:>7.0f} {bc / tc:>6.2f}")
PYEOF
