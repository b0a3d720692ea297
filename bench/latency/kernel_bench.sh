#!/usr/bin/env bash
# Micro-benchmark of the AVX-512 VNNI int8 kernels against the core's vpdpbusd peak (bare inner loop), on ResNet-18's
# conv shapes, and of the whole-model weight pack a profile switch runs (before / after vectorizing). On an AVX2-only
# CPU: the AVX2 GEMM tables of gemm_peak.c (w8a8 .. w2a2, batch-1 gemms), the AVX2 pack and depthwise columns.
#   bench/latency/kernel_bench.sh            (one core; prints markdown tables)
#   bench/latency/kernel_bench.sh --pack     (only the pack timing, quicker)
#   bench/latency/kernel_bench.sh --dw       (only MobileNetV2's depthwise convs through the direct depthwise kernels; with VBMI
#                                            the VNNI vpermb kernel, then the int16 row kernels it replaced)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
grep -qw avx2 /proc/cpuinfo || { echo "kernel_bench: this CPU has no avx2 (/proc/cpuinfo flags)" >&2; exit 1; }
# Without avx512_vnni the VNNI columns are left out (--dw, --pack: AVX2 only; the AVX2 GEMM tables: gemm_peak.c).
g="$root/Sources/BitSwitchCodegen/Runtime/generic"
out="${TMPDIR:-/tmp}/bitswitch-kernel-bench.$$"
trap 'rm -f "$out" "$out.rows"' EXIT
"${CC:-cc}" -std=c11 -O3 -march=native -Wall -Wextra -I "$g" -o "$out" "$root/bench/latency/kernel_bench.c" \
    "$g/bs_kernels.c" "$g/bs_kernels_avx2.c" "$g/bs_kernels_avx512vnni.c"
if ! grep -qw avx512_vnni /proc/cpuinfo && [ $# -eq 0 ]; then
    echo "(no avx512_vnni: the AVX2 GEMM tables follow, from gemm_peak.c)"
    "${CC:-cc}" -std=c11 -O3 -march=native -Wall -Wextra -I "$g" -o "$out.gp" "$root/bench/latency/gemm_peak.c" \
        "$g/bs_kernels.c" "$g/bs_kernels_avx2.c" && "$out.gp"; rm -f "$out.gp"
fi
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(${CC:-cc} --version | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$out" "$@"
# With VBMI the VNNI depthwise convs take the vpermb kernel; the int16 row kernels it replaced, for comparison.
if [ "${1:-}" = "--dw" ] && grep -qw avx512vbmi /proc/cpuinfo && grep -qw avx512_vnni /proc/cpuinfo; then
    "${CC:-cc}" -std=c11 -O3 -march=native -DBS_NO_VDW -Wall -Wextra -I "$g" -o "$out.rows" "$root/bench/latency/kernel_bench.c" \
        "$g/bs_kernels.c" "$g/bs_kernels_avx2.c" "$g/bs_kernels_avx512vnni.c"
    echo; "$out.rows" --dw
fi
