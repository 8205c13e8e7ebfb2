#!/bin/sh
# The benchmark of issue 5 in one command: builds tpm-hmac and keepassxc-tpm-bench (release),
# makes the tpm2-pytss venv under build/bench/venv when it is missing, then starts ONE private
# swtpm and measures every path (ours, tpm2-tools, tpm2-pytss, the raw TPM2_HMAC floor, and a
# keepassxc-cli unlock when a fork build exists under build/keepassxc-*/).
# The table goes to stdout and to build/bench/results.md. Nothing here asserts a time.
#
# Usage: tests/bench/run.sh [--quick] [keepassxc-tpm-bench options, see --help]
# Environment: PYTHON (for the venv, default python3), CARGO_TARGET_DIR, BENCH_OUT (default build/bench).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${BENCH_OUT:-$ROOT/build/bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$OUT/venv
mkdir -p "$OUT"

if ! "$VENV/bin/python" -c 'import tpm2_pytss' 2>/dev/null; then
    echo "making the tpm2-pytss venv in $VENV (pip install tpm2-pytss; it builds against libtss2-dev) ..." >&2
    if "${PYTHON:-python3}" -m venv "$VENV" >"$OUT/venv.log" 2>&1 &&
        "$VENV/bin/pip" install tpm2-pytss >>"$OUT/venv.log" 2>&1; then
        :
    else
        echo "*** tpm2-pytss could not be installed (log: $OUT/venv.log): the tpm2-pytss peer will be SKIPPED ***" >&2
    fi
fi

command -v tpm2_hmac >/dev/null 2>&1 || echo "*** tpm2-tools is not installed: its rows will be SKIPPED ***" >&2
command -v swtpm >/dev/null 2>&1 || { echo "swtpm is not installed (apt-get install swtpm swtpm-tools)" >&2; exit 1; }

# The bridge (KeePassXC's path) loads the TPM backend at run time from next to the executable
# (issue 7): build it too when the workspace has it.
PACKAGES="-p tpm-hmac -p keepassxc-tpm-bench"
[ -f "$ROOT/rust/backend/Cargo.toml" ] && PACKAGES="$PACKAGES -p keepassxc-tpm-backend"
# shellcheck disable=SC2086
cargo build --release --manifest-path "$ROOT/Cargo.toml" $PACKAGES
exec "$TARGET/release/keepassxc-tpm-bench" --python "$VENV/bin/python" --tpm-hmac "$TARGET/release/tpm-hmac" \
    --out "$OUT" "$@"
