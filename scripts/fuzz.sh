#!/usr/bin/env bash
# libFuzzer targets (swiftc -sanitize=fuzzer,address): the ONNX importer (+ verifier + shape inference), the IR text
# parser (+ verifier + shape inference) and the NPY reader. Each target compiles the module sources it exercises
# together with its harness in Fuzz/, so the whole path is instrumented.
#   scripts/fuzz.sh [SECONDS]      (default 60 per target; FUZZ_TARGETS="onnx irtext npy" picks targets;
#                                   FUZZ_RUNS=N also stops each target after N executions)
# Seeds: the shipped examples, the test fixtures and (if generated) the ONNX node test models. A crash leaves its
# input in .build/fuzz/crashes/<target>/; commit it under Tests/ as a regression test.
set -euo pipefail
export SWIFT_BACKTRACE=enable=no  # let libFuzzer, not the Swift backtracer, report a trap
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-60}"
runs_limit=()
if [ -n "${FUZZ_RUNS:-}" ]; then runs_limit=(-runs="$FUZZ_RUNS"); fi
targets="${FUZZ_TARGETS:-onnx irtext npy}"
out="${FUZZ_OUT:-.build/fuzz}"
mkdir -p "$out"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g -suppress-warnings)

# Every Swift source of a module, subfolders included.
srcs() { find "Sources/$1" -name '*.swift' | sort; }

build() {
    local t=$1 bin="$out/fuzz-$1"
    case $t in
    npy)
        # BitSwitchData reads gzip through the CZlib shim: its module map and object, as SwiftPM builds them.
        mkdir -p "$out/czlib"
        printf 'module CZlib {\n    header "%s/Sources/CZlib/include/czlib.h"\n    export *\n}\n' "$root" \
            > "$out/czlib/module.modulemap"
        clang -O2 -g -fsanitize=fuzzer-no-link,address -I Sources/CZlib/include -c Sources/CZlib/gunzip.c \
            -o "$out/gunzip.o"
        swiftc "${flags[@]}" -module-name BitSwitchData -I "$out/czlib" $(srcs BitSwitchData) Fuzz/npy.swift \
            "$out/gunzip.o" -lz -o "$bin" ;;
    irtext) swiftc "${flags[@]}" -module-name BitSwitchIR $(srcs BitSwitchIR) Fuzz/irtext.swift -o "$bin" ;;
    onnx)
        mkdir -p "$out/connx"
        printf 'module CONNX {\n    header "%s/Sources/CONNX/include/onnx.pb-c.h"\n    export *\n}\n' "$root" \
            > "$out/connx/module.modulemap"
        clang -O2 -g -fsanitize=fuzzer-no-link,address -I Sources/CONNX/include -c Sources/CONNX/onnx.pb-c.c \
            -o "$out/onnx.pb-c.o"
        swiftc "${flags[@]}" -module-name BitSwitchIR -I "$out/connx" -I Sources/CProtobufC \
            $(srcs BitSwitchIR) $(srcs BitSwitchONNX) Fuzz/onnx.swift "$out/onnx.pb-c.o" \
            -lprotobuf-c -o "$bin" ;;
    *) echo "fuzz: unknown target $t" >&2; exit 1 ;;
    esac
}

seeds() {
    local t=$1 dir="$out/seeds/$1"
    rm -rf "$dir"; mkdir -p "$dir"
    case $t in
    npy) find examples Tests -name '*.npy' -size -1000k -exec cp -t "$dir" {} + 2>/dev/null || true ;;
    irtext) find Tests passes \( -name '*.bsir' -o -name '*.ir' \) -size -1000k | while read -r f; do cp "$f" "$dir/$(echo "$f" | tr / _)"; done ;;
    onnx)
        find examples Tests -name '*.onnx' -size -1000k | while read -r f; do cp "$f" "$dir/$(echo "$f" | tr / _)"; done
        if [ -d .cache/onnx-tests ]; then
            find .cache/onnx-tests -name model.onnx -size -64k | while read -r f; do
                cp "$f" "$dir/$(basename "$(dirname "$f")").onnx"; done
        fi ;;
    esac
}

status=0
for t in $targets; do
    echo "fuzz: building $t"
    build "$t" > "$out/$t.build.log" 2>&1 || { cat "$out/$t.build.log" >&2; exit 1; }
    seeds "$t"
    mkdir -p "$out/corpus/$t" "$out/crashes/$t"
    echo "fuzz: running $t for $seconds s ($(ls "$out/seeds/$t" | wc -l) seeds)"
    if ! "$out/fuzz-$t" "$out/corpus/$t" "$out/seeds/$t" -max_total_time="$seconds" -max_len=262144 -timeout=10 \
            -rss_limit_mb=2048 -artifact_prefix="$out/crashes/$t/" -print_final_stats=1 "${runs_limit[@]}" > "$out/$t.log" 2>&1; then
        echo "fuzz: $t FOUND A CRASH, see $out/$t.log and $out/crashes/$t/"; status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz: $t: $runs executions, $(ls "$out/crashes/$t" | wc -l) crash inputs"
done
exit $status
