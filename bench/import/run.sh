#!/usr/bin/env bash
# Import benchmark: bitswitch import against Python's onnx.load on the same files.
#   bench/import/run.sh [CACHE_DIR]
# Env: BITSWITCH (default .build/release/bitswitch), PYTHON (default: the venv's),
#      REPEATS (default 5).
# Python: median of REPEATS in-process onnx.load calls. bitswitch: median of
# REPEATS runs of `bitswitch import MODEL --timing`, reading its
# `timing: import <seconds> s` line. Peak RSS of each from /usr/bin/time -v
# (Python's includes the interpreter and the onnx module).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
cache="${1:-$root/.cache/bench}"
repeats="${REPEATS:-5}"
bitswitch="${BITSWITCH:-.build/release/bitswitch}"

die() { echo "bench/import: error: $*" >&2; exit 1; }

[ -x "$bitswitch" ] || die "no bitswitch binary at '$bitswitch' (build it with 'swift build -c release', or set BITSWITCH)"
if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null || die "apt-get install time failed"
    else
        die "/usr/bin/time is missing (Debian: apt-get install time)"
    fi
fi
if [ -z "${PYTHON:-}" ]; then
    venv="$(scripts/setup-venv.sh)" || die "scripts/setup-venv.sh failed"
    PYTHON="$venv/bin/python"
fi

"$PYTHON" bench/import/gen_models.py "$cache"

tmp="$(mktemp -d -t bitswitch-bench-import.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# Peak RSS in MB from a /usr/bin/time -v report.
rss_mb() { awk -F: '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"; }

rows=()
for name in gemm_100mb resnet50; do
    model="$cache/$name.onnx"
    size_mb="$(awk -v b="$(stat -c %s "$model")" 'BEGIN { printf "%.1f", b / 1e6 }')"

    /usr/bin/time -v -o "$tmp/py.time" "$PYTHON" bench/import/onnx_load.py "$model" --repeats "$repeats" >"$tmp/py.json"
    py_s="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["median_s"])' "$tmp/py.json")"
    py_rss="$(rss_mb "$tmp/py.time")"

    # One untimed run so both sides read the file from the page cache.
    "$bitswitch" import "$model" --timing >/dev/null
    : >"$tmp/bs.times"
    bs_rss=0
    for _ in $(seq "$repeats"); do
        if ! /usr/bin/time -v -o "$tmp/bs.time" "$bitswitch" import "$model" --timing >"$tmp/bs.out" 2>&1; then
            cat "$tmp/bs.out" >&2
            die "'$bitswitch import $model --timing' failed"
        fi
        t="$(sed -n 's/^timing: import \([0-9.eE+-]*\) s$/\1/p' "$tmp/bs.out" | head -n 1)"
        [ -n "$t" ] || die "no 'timing: import <seconds> s' line in the output of '$bitswitch import $model --timing'"
        echo "$t" >>"$tmp/bs.times"
        r="$(rss_mb "$tmp/bs.time")"
        [ "$r" -gt "$bs_rss" ] && bs_rss="$r"
    done
    bs_s="$(sort -g "$tmp/bs.times" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"

    rows+=("$(awk -v n="$name" -v sz="$size_mb" -v p="$py_s" -v b="$bs_s" -v pr="$py_rss" -v br="$bs_rss" \
        'BEGIN { printf "| %s | %s | %.1f | %.1f | %.2f | %d | %d |", n, sz, p * 1e3, b * 1e3, b / p, pr, br }')")
done

onnx_version="$("$PYTHON" -c 'import onnx; print(onnx.__version__)')"
echo
echo "Import, median of $repeats (onnx $onnx_version; $(nproc) cores; ratio < 1: bitswitch faster)"
echo
echo "| model | file MB | onnx.load ms | bitswitch import ms | ratio bitswitch/onnx | onnx.load peak RSS MB | bitswitch peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
