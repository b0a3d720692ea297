#!/usr/bin/env bash
# Batch-1 latency, 1 and 2 threads: BitSwitch's generated C (emit --isa native: AVX2 kernels on AVX2 machines) at 8, 4 and 2 bits against
# onnxruntime fp32 and onnxruntime int8 QDQ (quantize_static, per-channel; U8S8 and S8S8, the faster reported) on
# the digits CNN, the MNIST-1D CNN, CIFAR ResNet-20, MobileNetV2 (224x224) and ResNet-18 (224x224), random weights,
# in one run; at each thread count ours (bs_init(ctx, arena, N)) against onnxruntime with intra_op_num_threads=N.
# Prints one table per thread count with the ratios, and a table of peak memory (resident set) of the driver running the
# bundle against onnxruntime's process (each onnxruntime variant timed in its own process), and writes
# bench/latency/RESULTS.md. THREADS="1 2" (the default) gives the 1- and 2-thread tables in one run.
#   bench/latency/run.sh [BIN]     env: MODELS (default "digits mnist1d resnet20 mobilenetv2 resnet18"),
#                                  BENCH_OUT (.cache/bench-latency), BUDGET (seconds per measured variant and round, 1),
#                                  ROUNDS (rounds of every measurement, ours and onnxruntime alternating, 5),
#                                  THREADS (thread counts, default "1 2"),
#                                  RESULTS_MD (the report's file, default bench/latency/RESULTS.md)
# The quantized models are cached in BENCH_OUT, keyed by the bitswitch binary and the model file, the bundles also by
# the runtime C files; a failing step of one model (e.g. an op the integer back end cannot lower) is recorded with
# its error message and the other models still run.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/bench/latency"
cd "$root"
BIN=${1:-.build/release/bitswitch}
MODELS=${MODELS:-"digits mnist1d resnet20 mobilenetv2 resnet18"}
OUT=${BENCH_OUT:-.cache/bench-latency}
BUDGET=${BUDGET:-1}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-"1 2"}
if [ -z "${1:-}" ]; then
    swift build -c release --product bitswitch >/dev/null || { echo "bench-latency: release build failed" >&2; exit 1; }
fi
[ -x "$BIN" ] || { echo "bench-latency: no binary at $BIN (swift build -c release --product bitswitch)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
PY="$(scripts/setup-venv.sh)/bin/python" || { echo "bench-latency: venv setup failed" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"${CC:-cc}" -std=c11 -O2 -Wall -Wextra -o "$OUT/latency_driver" "$here/latency_driver.c" -ldl -lm \
    || { echo "bench-latency: compiling latency_driver.c failed" >&2; exit 1; }

results="$OUT/results.jsonl"
: > "$results"
bin_hash=$(sha256sum "$BIN" | cut -c1-16)
# The runtime C files the binary copies into every bundle (its resource bundle, else the source tree): a new kernel
# re-emits the bundles without re-quantizing the models.
rt_dir="$(dirname "$BIN")/BitSwitch_BitSwitchCodegen.resources/Runtime/generic"
[ -d "$rt_dir" ] || rt_dir="$root/Sources/BitSwitchCodegen/Runtime/generic"
rt_hash=$(cat "$rt_dir"/* | sha256sum | cut -c1-16)

json_str() { "$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))'; }
fail() {  # model step logfile: record the step's failure (last lines of its output) and go on with the next model
    echo "  FAILED: $2 (see $3)" >&2
    tail -n 12 "$3" >&2
    printf '{"kind": "error", "model": "%s", "step": "%s", "message": %s}\n' "$1" "$2" \
        "$(tail -n 12 "$3" | json_str)" >> "$results"
}
rec() {  # model: append stdin's JSON lines with the model's name
    "$PY" -c 'import json,sys
for l in sys.stdin:
    if l.startswith("{"):
        d = json.loads(l); d["model"] = sys.argv[1]; print(json.dumps(d))' "$1" >> "$results"
}

for name in $MODELS; do
    d="$OUT/$name" built=0
    mkdir -p "$d"
    # name -> model file, data directory, calibration samples, timed runs at least, warm-up runs
    case $name in
        digits)  model=examples/digits/model.onnx;  data=examples/digits/data;  calib=64; minruns=20; warm=10 ;;
        mnist1d) model=examples/mnist1d/model.onnx; data=examples/mnist1d/data; calib=64; minruns=20; warm=10 ;;
        resnet20)
            model=$d/model.onnx; data=$d/data; calib=32; minruns=10; warm=3
            [ -f "$model" ] || "$PY" bench/train/make_resnet20.py "$model" >/dev/null ;;
        mobilenetv2)
            model=$d/model.onnx; data=$d/data; calib=16; minruns=5; warm=1
            [ -f "$model" ] || "$PY" "$here/make_mobilenetv2.py" "$model" --size 224 >/dev/null ;;
        resnet18)
            model=$d/model.onnx; data=$d/data; calib=8; minruns=5; warm=1
            [ -f "$model" ] || "$PY" -c 'import sys; sys.path.insert(0, "bench/ptq"); import make_resnet18, onnx
onnx.save(make_resnet18.build(224), sys.argv[1])' "$model" ;;
        *) echo "bench-latency: unknown model '$name' (digits mnist1d resnet20 mobilenetv2 resnet18)" >&2; exit 1 ;;
    esac
    [ -f "$data/x_train.npy" ] || "$PY" "$here/make_data.py" "$model" "$data" --train "$calib" --test 4
    echo "== $name" >&2
    macs=$("$BIN" import "$model" | awk '/^MACs:/ {print $2}')
    params=$("$BIN" import "$model" | awk '/^parameters:/ {print $2}')
    shape=$("$BIN" import "$model" | awk '/^inputs:/ {getline; print $2}')
    printf '{"kind": "info", "model": "%s", "macs": %s, "params": %s, "input": "%s"}\n' "$name" "${macs:-0}" \
        "${params:-0}" "$shape" >> "$results"

    # bitswitch: PTQ at 8/4/2 bits (first and last layer pinned at 8), emit all three profiles, build, measure.
    qkey="$bin_hash-$(sha256sum "$model" | cut -c1-16)" key="$qkey-$rt_hash"
    [ "$(cat "$d/stamp" 2>/dev/null)" = "$qkey" ] && echo "$qkey" > "$d/qstamp"   # a cache from before the runtime key
    if [ "$(cat "$d/stamp" 2>/dev/null)" != "$key" ]; then
        if [ "$(cat "$d/qstamp" 2>/dev/null)" != "$qkey" ]; then
            rm -f "$d/quantized.onnx" "$d/qstamp"
            echo "  bitswitch train --ptq --bits 8,4,2 ($calib samples)" >&2
            "$BIN" train "$model" --data "$data" -o "$d/quantized.onnx" --bits 8,4,2 --ptq \
                --calibration-samples "$calib" --threads 1 --quiet > "$d/ptq.log" 2>&1 && echo "$qkey" > "$d/qstamp"
        fi
        rm -rf "$d/bundle" "$d/stamp"
        if [ ! -f "$d/qstamp" ]; then
            fail "$name" "bitswitch train --ptq" "$d/ptq.log"
        elif ! "$BIN" emit "$d/quantized.onnx" -o "$d/bundle" --profiles 8,4,2 > "$d/emit.log" 2>&1; then
            fail "$name" "bitswitch emit" "$d/emit.log"
        else
            echo "$key" > "$d/stamp"
        fi
    fi
    if [ -f "$d/stamp" ]; then
        # the stored INT8 weights' size, from emit's summary ("... bytes of INT8 weights, arena ...")
        wbytes=$(sed -n 's/.* \([0-9][0-9]*\) bytes of INT8 weights.*/\1/p' "$d/emit.log" | head -1)
        [ -n "$wbytes" ] && printf '{"kind": "weights", "model": "%s", "bytes": %s}\n' "$name" "$wbytes" >> "$results"
        echo "  bitswitch build" >&2
        if ! "$BIN" build "$d/bundle" -o "$d/libbitswitch_model.so" > "$d/build.log" 2>&1; then
            fail "$name" "bitswitch build" "$d/build.log"
        else
            built=1
        fi
        # The switch cost with every profile's weights made at bs_init (emit --prepack): one timed run, 50 switches.
        echo "  bitswitch emit --prepack, build, switch timing" >&2
        if { [ -f "$d/prepack.so" ] && [ "$d/prepack.so" -nt "$d/stamp" ]; } || \
           { "$BIN" emit "$d/quantized.onnx" -o "$d/bundle-prepack" --profiles 8,4,2 --prepack > "$d/emit-prepack.log" 2>&1 && \
             "$BIN" build "$d/bundle-prepack" -o "$d/prepack.so" > "$d/build-prepack.log" 2>&1; }; then
            if "$OUT/latency_driver" "$d/prepack.so" --threads 1 --warmup 1 --budget 0.001 --min-runs 1 --max-runs 1 --switches 50 \
                    > "$d/driver-prepack.out" 2> "$d/driver-prepack.log"; then
                grep -E '"kind": "(switch|model)"' "$d/driver-prepack.out" | sed 's/"kind": "switch"/"kind": "switch_prepack"/; s/"kind": "model"/"kind": "model_prepack"/' | rec "$name"
            else
                fail "$name" "latency_driver (prepack)" "$d/driver-prepack.log"
            fi
        else
            fail "$name" "bitswitch emit/build --prepack" "$d/emit-prepack.log"
        fi
    fi

    # Ours and onnxruntime (fp32, U8S8 and S8S8 QDQ, made once and cached in $d) in ROUNDS rounds, alternating, so
    # that both see the machine's fast and slow spells; the report keeps each variant's fastest round.
    for r in $(seq 1 "$ROUNDS"); do
        for t in $THREADS; do
            if [ "$built" = 1 ]; then
                echo "  round $r: latency_driver --threads $t" >&2
                if ! "$OUT/latency_driver" "$d/libbitswitch_model.so" --threads "$t" --warmup "$warm" --budget "$BUDGET" \
                        --min-runs "$minruns" > "$d/driver-$t.out" 2> "$d/driver-$t.log"; then
                    fail "$name" "latency_driver --threads $t" "$d/driver-$t.log"
                else
                    rec "$name" < "$d/driver-$t.out"
                fi
            fi
            echo "  round $r: onnxruntime fp32, int8 QDQ U8S8 and S8S8, intra_op_num_threads=$t" >&2
            if "$PY" "$here/ort_latency.py" "$model" "$data" "$d" --calib "$calib" --warmup "$warm" --budget "$BUDGET" \
                    --min-runs "$minruns" --threads "$t" > "$d/ort-$t.out" 2> "$d/ort-$t.log"; then
                rec "$name" < "$d/ort-$t.out"
            else
                fail "$name" "onnxruntime --threads $t" "$d/ort-$t.log"
            fi
        done
    done
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | xargs)"
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|fma|avx512f|avx512_vnni|avx_vnni' | xargs)
"$PY" "$here/report.py" "$results" --cpu "$cpu" --flags "$flags" --rounds "$ROUNDS" --load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --cc "$("${CC:-cc}" --version | head -1)" --ort "$("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)')" \
    --out "${RESULTS_MD:-$here/RESULTS.md}"
