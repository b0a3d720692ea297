#!/usr/bin/env bash
# Post-training calibration time: `bitswitch train --ptq` (one forward per bit-width, histogram percentiles) against
# onnxruntime's quantize_static (QDQ, per-channel, MinMax and Percentile calibrators) on ResNet-18 (random weights,
# BN kept) and the same 512 random calibration images, in one run. Writes bench/ptq/RESULTS.md.
#   bench/ptq/run.sh [BIN]        env: SIZE (input side, default 224), SAMPLES (512), THREADS (2), METHODS,
#                                 REUSE_BITSWITCH=1 (keep the bitswitch rows of an earlier run on the same model)
set -euo pipefail
BIN=${1:-.build/release/bitswitch}
SIZE=${SIZE:-224}
SAMPLES=${SAMPLES:-512}
THREADS=${THREADS:-2}
METHODS=${METHODS:-"minmax percentile"}
OUT=${BENCH_OUT:-.cache/bench-ptq}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x "$BIN" ] || { echo "build first: swift build -c release --product bitswitch" >&2; exit 1; }
PY="$(scripts/setup-venv.sh)/bin/python"
mkdir -p "$OUT"
stamp="$OUT/made-$SIZE-$SAMPLES"
if [ ! -f "$stamp" ]; then
    "$PY" "$here/make_resnet18.py" "$OUT" --size "$SIZE" --samples "$SAMPLES"
    touch "$stamp"
fi
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS

wall() {  # wall seconds, CPU seconds (user + system, all threads) and peak RSS (MB) of a command
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" "$@" >/dev/null
    awk '{printf "%s %.1f %.0f\n", $1, $2 + $3, $4 / 1024}' "$OUT/time.txt"
}
rows=""
for bits in 8 8,6,4,2; do
    tag=${bits//,/}
    if [ "${REUSE_BITSWITCH:-0}" = 1 ] && [ -f "$OUT/row-$tag.txt" ]; then  # keep this model's earlier bitswitch rows
        read -r cpu line < "$OUT/row-$tag.txt"
        echo "$line"; rows+="$line"$'\n'
        eval "bs_$tag=$cpu"
        continue
    fi
    read -r w cpu rss < <(wall "$BIN" train "$OUT/resnet18.onnx" --data "$OUT/data" -o "$OUT/bitswitch-$tag.onnx" \
        --bits "$bits" --ptq --calibration-samples "$SAMPLES" --threads "$THREADS" --quiet --metrics "$OUT/bitswitch-$tag.json")
    cal=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["seconds"])' "$OUT/bitswitch-$tag.json")
    line="| bitswitch \`--ptq --bits $bits\` | $cpu | $cal | $w | $rss |"
    echo "$cpu $line" > "$OUT/row-$tag.txt"
    echo "$line"; rows+="$line"$'\n'
    eval "bs_$tag=$cpu"
done
for m in $METHODS; do
    read -r w cpu rss < <(wall bash -c '"$@" > "$0"' "$OUT/ort-$m.log" "$PY" "$here/ort_calibrate.py" "$OUT/resnet18.onnx" \
        "$OUT/data" "$OUT/ort-$m.onnx" --method "$m" --samples "$SAMPLES")
    cal=$("$PY" -c 'import json,sys; print("%.1f" % json.loads(open(sys.argv[1]).read().splitlines()[-1])["seconds"])' "$OUT/ort-$m.log")
    line="| onnxruntime quantize_static ($m) | $cpu | $cal | $w | $rss |"
    echo "$line"; rows+="$line"$'\n'
    eval "ort_$m=$cpu"
done

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
{
    echo "# Post-training calibration: bitswitch --ptq vs onnxruntime quantize_static"
    echo
    echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC, \`bench/ptq/run.sh\`, ResNet-18 at ${SIZE}×${SIZE}, $SAMPLES samples,"
    echo "$THREADS threads, load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
    echo
    echo "Same model file (\`make_resnet18.py\`: torchvision ResNet-18 topology, random He-normal weights, BN as nodes) and"
    echo "the same $SAMPLES calibration images (random N(0, 1)) for both. bitswitch: \`train --ptq\` inserts the quantizers"
    echo "(per-channel weights, the 8-bit pinned first/last layer) and calibrates every activation scale at every trained"
    echo "bit-width with the 0.1/99.9-percentile rule, one forward per bit-width; *calibration s* is its own timing"
    echo "(\`--metrics\` seconds), *whole command* adds import, insert-fake-quant, writing the model and evaluating the"
    echo "8-image test split at every bit-width. onnxruntime: \`quantize_static\` (QDQ, per-channel int8 weights, batches"
    echo "of 32; MinMax flushing its collected outputs every few batches, Percentile at 99.9), timed in-process around the call (*whole command*"
    echo "is the Python process including imports). The ratio compares CPU seconds (user + system over all threads, from"
    echo "\`/usr/bin/time\`, like the peak RSS): on a shared machine wall time mostly measures the other jobs."
    echo
    echo "| what | CPU s, whole process | calibration s (wall) | whole command s (wall) | peak RSS MB |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s' "$rows"
    echo
    for m in $METHODS; do
        o=$(eval echo "\$ort_$m")
        echo "- CPU-time ratio bitswitch ÷ onnxruntime $m (whole processes): 8 bits $(ratio "$bs_8" "$o")×," \
             "all four bit-widths {8,6,4,2} $(ratio "$bs_8642" "$o")× (below 1: bitswitch is faster)."
    done
} > "$here/RESULTS.md"
cat "$here/RESULTS.md"
