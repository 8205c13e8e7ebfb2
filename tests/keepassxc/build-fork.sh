#!/bin/sh
# Builds a KeePassXC fork with TPM keys as hardware keys: fetches KeePassXC's source (fetch-source.sh),
# copies the driver (cpp-shim/src) and the CMake module (cmake/) into the tree, applies the
# registration patch for that version, configures with WITH_XC_YUBIKEY=ON WITH_XC_TPM=ON and builds
# keepassxc, keepassxc-cli, the hardware-key tests and keepassxc-tpm-make-db (tests/keepassxc/helper)
# with ninja (ccache when present).
#
# Usage: tests/keepassxc/build-fork.sh VERSION [ninja targets...]     (VERSION 2.7.4 or 2.7.10)
# Environment: JOBS (default 2), CMAKE_BUILD_TYPE (default Release), KEEPASSXC_TPM_SOURCE_DIR (the
# keepassxc-tpm checkout whose Rust crates are built; default: this one), KEEPASSXC_TPM_CARGO_VENDOR
# (vendored crates, scripts/vendor-crates.sh: cargo then builds offline).
# Result: build/keepassxc-VERSION/build/src/keepassxc, .../src/cli/keepassxc-cli, .../tests/testcli, ...
# Exit codes: 0 built, 1 error, 2 usage, 77 the source cannot be downloaded (a skip, not a failure).
# Re-running is incremental: files are copied only when they changed, the patch is applied once.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 VERSION [ninja targets...]" >&2; exit 2; }
VERSION=$1
shift
TARGETS=${*:-keepassxc keepassxc-cli testykchallengeresponsekey testcli keepassxc-tpm-make-db}
JOBS=${JOBS:-2}
BUILD_TYPE=${CMAKE_BUILD_TYPE:-Release}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}
TREE=$BUILD/keepassxc-$VERSION
SRC=$TREE/src
BIN=$TREE/build
PATCH=$ROOT/cpp-shim/patches/$VERSION/0001-Register-the-TPM-hardware-key-driver.patch
TPM_SOURCE=${KEEPASSXC_TPM_SOURCE_DIR:-$ROOT}

die() { echo "build-fork: $*" >&2; exit 1; }

missing=""
for tool in cmake ninja patch pkg-config c++; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] || missing="$missing cargo"
pkg-config --exists tss2-esys tss2-tctildr tss2-mu tss2-sys libcrypto Qt5Core botan-2 libargon2 2>/dev/null ||
    missing="$missing libtss2-dev/libssl-dev/qtbase5-dev/libbotan-2-dev/libargon2-dev"
[ -z "$missing" ] || die "missing:$missing (the package list is in .ci/run)"
[ -f "$PATCH" ] || die "no registration patch for KeePassXC $VERSION ($PATCH)"

rc=0
"$HERE/fetch-source.sh" "$VERSION" || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"

# Copy a file only when its content changed, so that ninja does not rebuild needlessly.
install_file() {
    mkdir -p "$(dirname "$2")"
    cmp -s "$1" "$2" || cp "$1" "$2"
}
# The driver and the PIN prompts: cpp-shim/src mirrors KeePassXC's src/
(cd "$ROOT/cpp-shim/src" && find . -type f) | while read -r file; do
    install_file "$ROOT/cpp-shim/src/$file" "$SRC/src/$file"
done
install_file "$ROOT/cmake/KeePassXCTPM.cmake" "$SRC/cmake/KeePassXCTPM.cmake"

# The registration patch; when it changed since it was applied, the old one is reverted first.
APPLIED=$TREE/applied.patch
if [ -f "$APPLIED" ] && ! cmp -s "$APPLIED" "$PATCH"; then
    echo "build-fork: the registration patch changed; reverting the old one"
    (cd "$SRC" && patch -p1 -R -s <"$APPLIED") || die "reverting $APPLIED failed"
    rm -f "$APPLIED"
fi
if [ ! -f "$APPLIED" ]; then
    echo "build-fork: applying $(basename "$PATCH")"
    (cd "$SRC" && patch -p1 -N -s <"$PATCH") || die "$PATCH does not apply to $SRC"
    cp "$PATCH" "$APPLIED"
fi

LAUNCHER=""
if command -v ccache >/dev/null 2>&1; then
    LAUNCHER="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
fi

mkdir -p "$BIN"
echo "build-fork: configuring KeePassXC $VERSION in $BIN"
# shellcheck disable=SC2086 # LAUNCHER is a list of options
cmake -S "$SRC" -B "$BIN" -G Ninja $LAUNCHER \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DWITH_XC_YUBIKEY=ON -DWITH_XC_TPM=ON -DKEEPASSXC_TPM_SOURCE_DIR="$TPM_SOURCE" \
    -DKEEPASSXC_TPM_CARGO_VENDOR="${KEEPASSXC_TPM_CARGO_VENDOR:-}" \
    -DWITH_TESTS=ON -DWITH_GUI_TESTS=OFF \
    -DWITH_XC_BROWSER=OFF -DWITH_XC_NETWORKING=OFF -DWITH_XC_UPDATECHECK=OFF -DWITH_XC_KEESHARE=OFF \
    -DWITH_XC_FDOSECRETS=OFF -DWITH_XC_SSHAGENT=OFF -DWITH_XC_AUTOTYPE=OFF -DWITH_XC_DOCS=OFF \
    >"$TREE/configure.log" 2>&1 || { tail -30 "$TREE/configure.log" >&2; die "cmake failed (see $TREE/configure.log)"; }
grep -q '^ \* TPM' "$TREE/configure.log" || die "configure did not enable TPM (see $TREE/configure.log)"

echo "build-fork: ninja -j$JOBS $TARGETS (log: $TREE/ninja.log)"
start=$(date +%s)
# shellcheck disable=SC2086 # TARGETS is a list
if ! ninja -C "$BIN" -j"$JOBS" $TARGETS >"$TREE/ninja.log" 2>&1; then
    grep -E -A12 'error|FAILED' "$TREE/ninja.log" | head -60 >&2
    die "build failed after $(($(date +%s) - start)) s (see $TREE/ninja.log)"
fi
echo "build-fork: KeePassXC $VERSION fork built in $(($(date +%s) - start)) s: $BIN"
