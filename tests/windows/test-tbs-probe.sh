#!/usr/bin/env bash
# Issue 32, first part: the probe for real Windows (rust/tbs-probe, `tpm-hmac-tbs-probe.exe`), cross-
# built here for x86_64-pc-windows-gnu and run under wine against swtpm through a test double of
# Windows' tbs.dll (tests/windows/tbs-double.c, built with mingw: one swtpm connection per TBS
# context, blocked commands answered with TPM_E_COMMAND_BLOCKED as TBS does, what a context left
# flushed at close). wine 8.0 lacks ProcessPrng, which Rust's std imports: prng-shim.c provides it.
# Checks: with EvictControl and NV_DefineSpace blocked (as Windows documents for standard users) the
# probe names exactly those two BLOCKED and the other commands "passed", exit 0; a blocked Create is
# named; without a TPM behind TBS it says so in one line, exit 1.
# Not tested here: anything on a real Windows machine (that is what the probe is for).
#
# Usage: tests/windows/test-tbs-probe.sh
# Exit codes: 0 pass, 1 fail, 77 skip (mingw, wine64 or the Rust Windows target missing).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}/windows
HARNESS_LABEL=windows-probe
# shellcheck source=../lib/harness.sh
. "$ROOT/tests/lib/harness.sh"
# shellcheck source=../../scripts/swtpm.sh
. "$ROOT/scripts/swtpm.sh"

WINE=/usr/lib/wine/wine64
command -v x86_64-w64-mingw32-gcc >/dev/null || skip "x86_64-w64-mingw32-gcc is missing (scripts/install-deps.sh: gcc-mingw-w64-x86-64)"
[ -x "$WINE" ] || skip "$WINE is missing (scripts/install-deps.sh: wine64)"
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu ||
  skip "the Rust target x86_64-pc-windows-gnu is missing (rustup target add x86_64-pc-windows-gnu)"

mkdir -p "$OUT"
trap 'stop_swtpm' EXIT
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -o "$OUT/tbs.dll" "$HERE/tbs-double.c" -lws2_32 ||
  die "the tbs.dll double does not build"
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -o "$OUT/bcryptprimitives.dll" "$HERE/prng-shim.c" -ladvapi32 ||
  die "the ProcessPrng shim does not build"
(cd "$ROOT" && cargo build --locked -q --target x86_64-pc-windows-gnu -p keepassxc-tpm-tbs-probe) ||
  die "cargo build --target x86_64-pc-windows-gnu -p keepassxc-tpm-tbs-probe failed"
cp "${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-pc-windows-gnu/debug/tpm-hmac-tbs-probe.exe" "$OUT/"
pass "cross-built tpm-hmac-tbs-probe.exe, the tbs.dll double and the ProcessPrng shim"

start_swtpm "$OUT/swtpm" || die "swtpm did not start"
PORT=${SWTPM_TCTI##*port=}
# probe BLOCKED_LIST [PORT]: the probe's output (stdout must be a pipe under wine 8.0), then "rc=N".
probe() {
  local rc=0 out
  out=$(cd "$OUT" && WINEPREFIX="$OUT/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="tbs=n;bcryptprimitives=n" \
    KEEPASSXC_TPM_TBS_BLOCK="$1" KEEPASSXC_TPM_TBS_PORT="${2-$PORT}" timeout 300 "$WINE" ./tpm-hmac-tbs-probe.exe 2>&1 | cat;
    exit "${PIPESTATUS[0]}") || rc=$?
  printf '%s\nrc=%s\n' "$out" "$rc"
}

out=$(probe 0x120,0x12A)
blocked=$(grep -c '^BLOCKED' <<<"$out" || true)
passed=$(grep -c '^passed' <<<"$out" || true)
if grep -q '^rc=0$' <<<"$out" && [ "$blocked" = 2 ] && [ "$passed" = 11 ] &&
  grep -q '^BLOCKED  0x00000120 EvictControl' <<<"$out" && grep -q '^BLOCKED  0x0000012A NV_DefineSpace' <<<"$out" &&
  grep -q '^passed   0x00000155 HMAC: reached the TPM' <<<"$out"; then
  pass "under wine through the double: EvictControl and NV_DefineSpace BLOCKED, the 11 others passed to swtpm"
else
  fail "the probe's report: $(tr '\n' '|' <<<"$out")"
fi
out=$(probe 0x153)
if grep -q '^BLOCKED  0x00000153 Create: Windows blocks it for this user (0x80280400)' <<<"$out" &&
  grep -q '^1 of 13 commands blocked' <<<"$out"; then
  pass "a blocked Create is named: $(grep '^BLOCKED' <<<"$out")"
else
  fail "a blocked Create is not reported: $(tr '\n' '|' <<<"$out")"
fi
out=$(probe "" "")
if grep -q '^rc=1$' <<<"$out" && grep -q 'no TPM 2.0 reachable through TBS (0x8028400F)' <<<"$out" &&
  [ "$(grep -vc '^rc=' <<<"$out")" = 1 ]; then
  pass "without a TPM behind TBS: one line, exit 1 ($(grep -v '^rc=' <<<"$out"))"
else
  fail "without a TPM: $(tr '\n' '|' <<<"$out")"
fi
harness_finish
