#!/usr/bin/env bash
# Issue 14: the fork builds with the network cut off (unshare -n, as root) from vendored crates
# (scripts/vendor-crates.sh) and an empty CARGO_HOME, in a build directory of its own; no absolute
# build path (the checkout, the vendored crates, cargo's home, the build tree) is in the binaries it
# installs; the offline build opens a TPM-protected database.
#
# Usage: tests/keepassxc/test-offline-build.sh VERSION     (needs root for unshare -n)
# Exit codes: 0 pass, 1 fail, 77 skip (no network namespace here, or no source).
set -euo pipefail
KX_TEST=offline
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"

kx_build_fork   # fetches the source (online) and builds the usual fork, which the tests compare with
kx_tpm_hmac_build
if ! unshare -n true 2>/dev/null; then
    say "SKIP: no network namespace here (unshare -n needs root or CAP_SYS_ADMIN)" >&2
    exit 77
fi
OFFLINE=$KX_BUILD/offline
VENDOR=$OFFLINE/vendor
rm -rf "$OFFLINE"
mkdir -p "$OFFLINE/keepassxc-$VERSION" "$OFFLINE/cargo-home"
"$KX_ROOT/scripts/vendor-crates.sh" "$VENDOR"
# The source as fetched and patched (the offline build must not download anything)
cp -a "$KX_TREE/src" "$KX_TREE/.fetched" "$KX_TREE/applied.patch" "$OFFLINE/keepassxc-$VERSION/"
if unshare -n env KEEPASSXC_TPM_BUILD_DIR="$OFFLINE" KEEPASSXC_TPM_CARGO_VENDOR="$VENDOR" CARGO_HOME="$OFFLINE/cargo-home" \
    RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" PATH="$(dirname "$(command -v cargo)"):$PATH" \
    "$KX_HERE/build-fork.sh" "$VERSION" keepassxc keepassxc-cli keepassxc-tpm-make-db >"$OFFLINE/build.log" 2>&1; then
    pass "the fork builds without network from vendored crates ($(du -sh "$VENDOR" | cut -f1), empty CARGO_HOME)"
else
    tail -20 "$OFFLINE/build.log" >&2
    fail "the offline build failed (see $OFFLINE/build.log)"
    finish
fi
BIN=$OFFLINE/keepassxc-$VERSION/build
BACKEND=$BIN/cargo/release/libkeepassxc_tpm_backend.so
for file in "$BIN/src/keepassxc" "$BIN/src/cli/keepassxc-cli" "$BACKEND"; do
    found=""
    # Into a file first: with pipefail, "strings | grep -q" fails when grep stops reading early
    strings "$file" >"$OFFLINE/strings.txt"
    for path in "$KX_ROOT" "$VENDOR" "$OFFLINE/cargo-home" "$HOME/.cargo" "$BIN"; do
        if grep -qF "$path" "$OFFLINE/strings.txt"; then found="$found $path"; fi
    done
    if [ -z "$found" ]; then
        pass "no build path in $(basename "$file") (strings: no checkout, vendor, cargo home or build tree)"
    else
        fail "$(basename "$file") holds build paths:$found"
    fi
done

WORK=$OFFLINE/work
mkdir -p "$WORK"
kx_start_swtpm "$WORK/swtpm"
tpm_hmac create --handle 0x81000100 >"$WORK/create.log" 2>&1 || { cat "$WORK/create.log" >&2; fail "tpm-hmac create"; finish; }
export KEEPASSXC_TPM_BACKEND=$BACKEND
printf 'pw\n' | "$BIN/src/keepassxc-tpm-make-db" "$WORK/tpm.kdbx" "1:$((0x81000100))" "Offline entry" >"$WORK/make.log" 2>&1 ||
    { cat "$WORK/make.log" >&2; fail "keepassxc-tpm-make-db"; finish; }
if printf 'pw\n' | "$BIN/src/cli/keepassxc-cli" ls --yubikey "1:$((0x81000100))" "$WORK/tpm.kdbx" 2>&1 | grep -q 'Offline entry'; then
    pass "the offline build opens a TPM-protected database"
else
    fail "the offline build does not open the TPM-protected database"
fi
finish
