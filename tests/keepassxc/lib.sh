# Shared by the tests/keepassxc test scripts (sourced, POSIX sh): the fork's build tree, a private
# swtpm per script run, the tpm-hmac tool, and pass/fail reporting.
# Callers set VERSION before sourcing. swtpm is a test stand-in for a TPM; it gives no security.

KX_HERE=$(cd "$(dirname "$0")" && pwd)
KX_ROOT=$(cd "$KX_HERE/../.." && pwd)
KX_BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$KX_ROOT/build}
KX_TREE=$KX_BUILD/keepassxc-$VERSION
KX_BIN=$KX_TREE/build
KX_CLI=$KX_BIN/src/cli/keepassxc-cli
KX_MAKE_DB=$KX_BIN/src/keepassxc-tpm-make-db
KX_FAILURES=0

say() { echo "[$KX_TEST $VERSION] $*"; }
pass() { say "PASS: $*"; }
fail() {
    say "FAIL: $*" >&2
    KX_FAILURES=$((KX_FAILURES + 1))
}
finish() {
    if [ "$KX_FAILURES" -eq 0 ]; then
        say "all checks passed"
        exit 0
    fi
    say "$KX_FAILURES check(s) failed" >&2
    exit 1
}

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

# tpm-hmac, built with the same cargo target directory as the fork's bridge (shared dependencies).
kx_tpm_hmac_build() {
    if [ -n "${TPM_HMAC:-}" ]; then
        return 0
    fi
    CARGO=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
    CARGO_TARGET_DIR=$KX_BIN/cargo "$CARGO" build -q --release -p tpm-hmac --manifest-path "$KX_ROOT/Cargo.toml" ||
        { say "FAIL: building tpm-hmac failed" >&2; exit 1; }
    TPM_HMAC=$KX_BIN/cargo/release/tpm-hmac
}
tpm_hmac() { "$TPM_HMAC" "$@"; }

# Starts swtpm on two free loopback ports with its state in $1; exports TPM2TOOLS_TCTI.
kx_start_swtpm() {
    command -v swtpm >/dev/null 2>&1 || { say "FAIL: swtpm is not installed (apt-get install swtpm swtpm-tools)" >&2; exit 1; }
    mkdir -p "$1"
    port=$(python3 -c '
import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); continue
    a.close(); b.close(); print(p); break
')
    swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
        --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" --tpmstate "dir=$1" \
        --flags not-need-init,startup-clear >"$1/swtpm.log" 2>&1 &
    KX_SWTPM_PID=$!
    trap kx_stop_swtpm EXIT
    export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    say "FAIL: swtpm did not start (see $1/swtpm.log)" >&2
    exit 1
}

kx_stop_swtpm() {
    if [ -n "${KX_SWTPM_PID:-}" ]; then
        kill "$KX_SWTPM_PID" 2>/dev/null || true
        wait "$KX_SWTPM_PID" 2>/dev/null || true
        KX_SWTPM_PID=
    fi
}

# A TCTI where nothing listens, for "TPM unreachable" checks.
kx_dead_tcti() {
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "swtpm:host=127.0.0.1,port=$port"
}
