#!/bin/sh
# Dynamic aarch64 instruction counts of one QConv+Requant (32->32 channels, 3x3 pad 1, 14x14, u8 in/out), one depthwise
# QConv+Requant (64 channels, 3x3 pad 1, 14x14) and one batch-1 QGemm+Requant (512 -> 256, trans_b) through the
# generic and the NEON kernels (sdot and plain ARMv8.0 builds), counted under qemu-aarch64 -singlestep -d exec,nochain
# (one logged translation block per executed instruction) as count(2 calls) - count(1 call). Speed on real Arm cores
# is not measured by this: it counts instructions, not cycles. Needs aarch64-linux-gnu-gcc and qemu-aarch64.
# Usage: bench/neon/icount.sh  (from the repository root; about 5 minutes, mostly the generic conv)
set -eu
g=Sources/BitSwitchCodegen/Runtime/generic
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for v in "dot -march=armv8.2-a+dotprod" "plain -march=armv8-a"; do
  set -- $v
  aarch64-linux-gnu-gcc -std=c11 -O3 "$2" -ffp-contract=off -static -I"$g" -o "$out/ic_$1" bench/neon/icount.c \
    "$g/bs_kernels.c" "$g/bs_kernels_avx2.c" "$g/bs_kernels_neon.c"
done
cnt() { qemu-aarch64 -singlestep -d exec,nochain -D /dev/stdout "$@" | grep -c "^Trace"; }
printf '%-5s %-22s %12s  %s\n' op kernels instructions checksum
for op in conv dw gemm; do
  for b in "dot generic" "dot neon" "plain neon"; do
    set -- $b
    c1=$(cnt "$out/ic_$1" "$2" $op 1); c2=$(cnt "$out/ic_$1" "$2" $op 2)
    name=$2; [ "$2" = neon ] && name="neon ($([ "$1" = dot ] && echo sdot || echo armv8.0))"
    printf '%-5s %-22s %12d  %s\n' $op "$name" $((c2 - c1)) "$(qemu-aarch64 "$out/ic_$1" "$2" $op 1)"
  done
done
