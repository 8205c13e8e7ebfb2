# shellcheck shell=bash
# shellcheck disable=SC2034 # the KX_* paths are for the scripts that source this file
# Shared by the tests/keepassxc test scripts (sourced by bash): the fork's build tree, a private
# swtpm per script run, the tpm-hmac tool, and pass/fail reporting.
# The prologue of every test script: set -euo pipefail; KX_TEST=name; . "$(dirname "$0")/lib.sh" "$@"
# (its one argument, the KeePassXC version, becomes VERSION). swtpm is a test stand-in for a TPM; it
# gives no security.

[ $# -eq 1 ] || { echo "usage: $0 VERSION   (2.7.4 or 2.7.10)" >&2; exit 2; }
VERSION=$1

KX_HERE=$(cd "$(dirname "$0")" && pwd)
KX_ROOT=$(cd "$KX_HERE/../.." && pwd)
KX_BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$KX_ROOT/build}
KX_TREE=$KX_BUILD/keepassxc-$VERSION
KX_BIN=$KX_TREE/build
KX_CLI=$KX_BIN/src/cli/keepassxc-cli
KX_MAKE_DB=$KX_BIN/src/keepassxc-tpm-make-db
# The fork searches only its install directory and paths beside its executable for the backend,
# never its build tree: a build run from the tree names it, as a user would set LD_PRELOAD.
KX_BACKEND=$KX_BIN/cargo/release/libkeepassxc_tpm_backend.so
export KEEPASSXC_TPM_BACKEND=$KX_BACKEND
HARNESS_LABEL="$KX_TEST $VERSION"
# shellcheck source=../lib/harness.sh
. "$KX_HERE/../lib/harness.sh"
finish() { harness_finish; }

# Builds (incrementally) the fork; a source that cannot be downloaded is a loud skip (77).
kx_build_fork() {
    rc=0
    "$KX_HERE/build-fork.sh" "$VERSION" || rc=$?
    if [ "$rc" -eq 77 ]; then
        say "SKIP: KeePassXC $VERSION source not available" >&2
        exit 77
    fi
    [ "$rc" -eq 0 ] || { say "FAIL: building the fork failed" >&2; exit 1; }
}

# WORK: an empty directory for this test's files, build/keepassxc-VERSION/test-NAME.
kx_fresh_workdir() {
    WORK=$KX_TREE/test-$KX_TEST
    rm -rf "$WORK"
    mkdir -p "$WORK"
}

# tpm-hmac, built with the same cargo target directory as the fork's bridge (shared dependencies).
kx_tpm_hmac_build() {
    if [ -n "${TPM_HMAC:-}" ]; then
        return 0
    fi
    CARGO=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
    CARGO_TARGET_DIR=$KX_BIN/cargo "$CARGO" build -q --release --locked -p tpm-hmac --manifest-path "${KEEPASSXC_TPM_SOURCE_DIR:-$KX_ROOT}/Cargo.toml" ||
        { say "FAIL: building tpm-hmac failed" >&2; exit 1; }
    TPM_HMAC=$KX_BIN/cargo/release/tpm-hmac
}
tpm_hmac() { "$TPM_HMAC" "$@"; }

# Starts swtpm (scripts/swtpm.sh) with its state in $1, stops it on exit; exports TPM2TOOLS_TCTI.
# shellcheck source=../../scripts/swtpm.sh
. "$KX_ROOT/scripts/swtpm.sh"
kx_start_swtpm() {
    command -v swtpm >/dev/null 2>&1 || { say "FAIL: swtpm is not installed (apt-get install swtpm swtpm-tools)" >&2; exit 1; }
    start_swtpm "$1" || { say "FAIL: swtpm did not start" >&2; exit 1; }
    trap stop_swtpm EXIT
    export TPM2TOOLS_TCTI=$SWTPM_TCTI
    # The records of this simulator's keys, apart from the user's own
    export KEEPASSXC_TPM_METADATA=$1/keepassxc-tpm-keys.json
}

# What most test scripts start with: the fork and tpm-hmac built, a fresh $WORK, a swtpm of its own.
kx_setup() {
    kx_build_fork
    kx_tpm_hmac_build
    kx_fresh_workdir
    kx_start_swtpm "$WORK/swtpm"
}

# A TCTI where nothing listens (port 1 is tcpmux, never served here), for "TPM unreachable" checks.
kx_dead_tcti() {
    echo "swtpm:host=127.0.0.1,port=1"
}
