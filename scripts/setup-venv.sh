#!/usr/bin/env bash
# Creates the Python venv used for test data, example data and peer benchmarks.
# Usage: scripts/setup-venv.sh [--with-torch]
# The venv goes to $BITSWITCH_VENV, or .venv in the repo root. A stamp file
# records what was installed, so a second run with the same requirements returns
# at once. Prints the venv path on success.
set -euo pipefail

die() { echo "setup-venv: error: $*" >&2; exit 1; }

with_torch=0
for arg in "$@"; do
    case "$arg" in
        --with-torch) with_torch=1 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (expected --with-torch)" ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BITSWITCH_VENV:-$root/.venv}"
req="$root/scripts/requirements.txt"
req_data="$root/scripts/requirements-data.txt"
torch_req="torch==2.13.0+cpu"
stamp="$venv/.bitswitch-stamp"

[ -f "$req" ] || die "missing $req"
[ -f "$req_data" ] || die "missing $req_data"

# The stamp holds the hash of the requirements and whether torch is in; a venv
# stamped with torch also satisfies a request without it.
req_hash="$(cat "$req" "$req_data" | sha256sum | cut -d' ' -f1)"
want="req=$req_hash"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then
    have="$(cat "$stamp")"
    if grep -qx "$want" <<<"$have" && { [ $with_torch = 0 ] || grep -qx "torch=$torch_req" <<<"$have"; }; then
        echo "$venv"
        exit 0
    fi
fi

command -v python3 >/dev/null || die "python3 not found; install it (Debian: apt-get install -y python3 python3-venv)"

# Debian splits venv/ensurepip into python3-venv; without it `python3 -m venv` fails.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        echo "setup-venv: installing python3-venv with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || die "apt-get update failed"
        apt-get install -y -qq python3-venv "python$pyver-venv" >/dev/null 2>&1 \
            || apt-get install -y -qq python3-venv >/dev/null \
            || die "apt-get install python3-venv failed"
    else
        die "python3 lacks the venv module; run: sudo apt-get install -y python3-venv"
    fi
fi

log="$(mktemp -t bitswitch-setup-venv.XXXXXX)"
trap 'rm -f "$log"' EXIT
run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "setup-venv: error: command failed: $*" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
}

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-venv: creating $venv" >&2
    run python3 -m venv "$venv"
fi
rm -f "$stamp"

echo "setup-venv: installing scripts/requirements.txt" >&2
run "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
run "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$req_data"

stamp_text="$want"
if [ $with_torch = 1 ]; then
    echo "setup-venv: installing $torch_req" >&2
    run "$venv/bin/python" -m pip install -q --disable-pip-version-check "$torch_req"
    stamp_text="$stamp_text
torch=$torch_req"
elif "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    # Keep a torch that an earlier --with-torch run installed counted in the stamp.
    tv="$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
    [ "torch==$tv" = "$torch_req" ] && stamp_text="$stamp_text
torch=$torch_req"
fi

run "$venv/bin/python" -c 'import numpy, onnx, onnxruntime, sklearn, mnist1d, yaml, tokenizers'
printf '%s\n' "$stamp_text" >"$stamp"
echo "$venv"
