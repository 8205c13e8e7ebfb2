#!/usr/bin/env bash
# Runs issue 23's PC/SC tests (tests/pcsc): the APDU parser's fuzz target for 60 s (where cargo-fuzz
# and nightly Rust are installed), the driver in a private pcscd (test-private-pcscd.sh),
# yubikit through the driver (test-yubikit.sh), stock KeePassXC of this machine through the driver
# in a private pcscd (test-stock-keepassxc.sh bookworm), the package and stock KeePassXC in booted
# Debian 12, 13 and sid containers with Debian's own pcscd units and polkit (test-booted-pcscd.sh;
# the root file systems are made once and cached in build/chroots), Debian 12's stock GUI under Xvfb
# listing the key (test-stock-gui.sh, with bookworm), and a database going from the fork to stock
# KeePassXC through PC/SC and back (test-fork-roundtrip.sh; a skip when the fork is not built). tpm-hmac and the driver are built
# once first. Prints each test's output as it runs (also kept in build/pcsc/logs/), then a
# PASS/FAIL/SKIP summary with seconds.
#
# Usage: tests/pcsc/run-tests.sh [RELEASE...]       (default: bookworm trixie sid)
# Exit codes: 0 when nothing failed (skips are reported loudly, not failures), 1 when a test
# failed, 77 when every test skipped (e.g. not root).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}
LOGS=$BUILD/pcsc/logs
RELEASES=("$@")
[ ${#RELEASES[@]} -gt 0 ] || RELEASES=(bookworm trixie sid)
mkdir -p "$LOGS"

results=()
failed=0
ran=0
skipped=0
record() {
  local name=$1 rc=$2 secs=$3 word
  case "$rc" in
    0) word=PASS ;;
    77) word=SKIP; skipped=$((skipped + 1)) ;;
    *) word=FAIL; failed=$((failed + 1)) ;;
  esac
  ran=$((ran + 1))
  results+=("$(printf '%-4s %5s s  %s' "$word" "$secs" "$name")")
}
run() {
  local name=$1 log start rc
  shift
  log=$LOGS/$(tr ' /' '__' <<<"$name").log
  echo "===== $name"
  start=$SECONDS
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  record "$name" "$rc" $((SECONDS - start))
}

# The APDU parser's fuzz target for a bounded time (cargo-fuzz is installed from crates.io when
# missing; without a nightly toolchain a loud skip: the property tests run in any case).
fuzz() {
  if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIP: no nightly Rust toolchain here (rustup toolchain install nightly): cargo-fuzz needs it"
    return 77
  fi
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo install cargo-fuzz (crates.io)"
    cargo install --locked -q cargo-fuzz || { echo "FAIL: cargo install cargo-fuzz"; return 1; }
  fi
  (cd "$ROOT/rust/pcsc" && cargo +nightly fuzz run apdu -- -max_total_time="${KEEPASSXC_TPM_FUZZ_SECONDS:-60}")
}

echo "===== cargo build -p tpm-hmac -p keepassxc-tpm-pcsc, and the tpm-hmac package (for the chroots)"
start=$SECONDS
CARGO=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
if (cd "$ROOT" && "$CARGO" build --locked -q -p tpm-hmac -p keepassxc-tpm-pcsc) && "$ROOT/scripts/build-deb.sh"; then
  record "cargo build" 0 $((SECONDS - start))
  run "fuzz apdu" fuzz
  export KEEPASSXC_TPM_PCSC_NO_BUILD=1
  [ ! -x "$HERE/test-private-pcscd.sh" ] || run "test-private-pcscd" "$HERE/test-private-pcscd.sh"
  run "test-yubikit" "$HERE/test-yubikit.sh"
  for release in "${RELEASES[@]}"; do
    run "test-booted-pcscd $release" "$HERE/test-booted-pcscd.sh" "$release"
  done
  # Debian 12's stock KeePassXC only (the machine's own): through a private pcscd, its GUI under
  # Xvfb, and databases that go between the fork and stock KeePassXC through PC/SC.
  if [[ " ${RELEASES[*]} " == *" bookworm "* ]]; then
    run "test-stock-keepassxc bookworm" "$HERE/test-stock-keepassxc.sh" bookworm
    run "test-stock-gui" "$HERE/test-stock-gui.sh"
  fi
  run "test-fork-roundtrip" "$HERE/test-fork-roundtrip.sh"
else
  record "cargo build" 1 $((SECONDS - start))
fi

echo
echo "===== tests/pcsc summary (logs in $LOGS)"
printf '%s\n' "${results[@]}"
if [ "$failed" -gt 0 ]; then
  echo "$failed failed"
  exit 1
fi
if [ "$skipped" -gt 0 ]; then
  echo "######################################################################"
  echo "$skipped of $ran skipped (see SKIP above)"
  echo "######################################################################"
  [ "$skipped" -lt $((ran - 1)) ] || exit 77
fi
exit 0
