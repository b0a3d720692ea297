#!/usr/bin/env bash
# A/B of two revisions of the C runtime on one emitted model, in one process (bench/latency/ab_bundles.c): the bundle
# that bench/latency/run.sh emitted for MODEL (.cache/bench-latency/MODEL/bundle) is built twice, with the runtime
# files (Sources/BitSwitchCodegen/Runtime/generic) of OLD and of NEW (a revision, or "work" for the working tree),
# and the two libraries' runs alternate, so that the machine's speed swings hit both alike.
#   bench/latency/ab.sh MODEL OLD [NEW] [THREADS] [RUNS] [LAYERS]      e.g. bench/latency/ab.sh resnet20 HEAD~1 work 2 1500
# The generated model code is the cached one: both revisions' runtimes must take it (the same kernel API; the one
# line that sets the tiling's thread hint is dropped for runtimes from before it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model=${1:?model (digits, mnist1d, resnet20, mobilenetv2, resnet18)}; old=${2:?old revision}; new=${3:-work}
threads=${4:-1}; runs=${5:-500}; layers=${6:-0}
out=${BENCH_OUT:-$root/.cache/bench-latency}
[ -d "$out/$model/bundle" ] || { echo "ab.sh: no bundle at $out/$model/bundle (run bench/latency/run.sh first)" >&2; exit 1; }
rt=Sources/BitSwitchCodegen/Runtime/generic
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in A B; do
    rev=$old; [ $side = B ] && rev=$new
    cp -r "$out/$model/bundle" "$work/$side"
    for f in $(ls "$root/$rt"); do
        if [ "$rev" = work ]; then cp "$root/$rt/$f" "$work/$side/$f"
        else git -C "$root" show "$rev:$rt/$f" > "$work/$side/$f"; fi
    done
    # runtimes before the tiling's thread hint (bs_avx2_job.threads) take the generated code without that line
    grep -q 'int32_t threads;' "$work/$side/bs_kernels_avx2.h" || sed -i '/j->threads = bs_pool_threads(pool);/d' "$work/$side/bitswitch_model.c"
    (cd "$work/$side" && ${CC:-cc} -std=c11 -ffp-contract=off -fno-fast-math -O3 -march=native -pthread -fPIC -w -shared \
        -o lib.so bitswitch_model.c bs_kernels*.c bs_threads.c -lm)
done
${CC:-cc} -O2 -Wall -o "$work/ab_bundles" "$root/bench/latency/ab_bundles.c" -ldl
echo "A = runtime at $old, B = runtime at $new; $model, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$work/ab_bundles" "$work/A/lib.so" "$work/B/lib.so" "$threads" "$runs" "$layers"
