#!/usr/bin/env bash
# Issue 32: the Windows build, cross-built here for x86_64-pc-windows-gnu and run under wine 8.0
# against swtpm through a test double of Windows' tbs.dll (tbs-double.c, built with mingw: one swtpm
# connection per TBS context, what a context left flushed at close, the commands in
# KEEPASSXC_TPM_TBS_BLOCK answered with TPM_E_COMMAND_BLOCKED as TBS does). wine 8.0 lacks
# ProcessPrng, which Rust's std imports: prng-shim.c provides it. wine-run.sh runs each program.
# Checks:
#   1. the probe (tpm-hmac-tbs-probe.exe): EvictControl and NV_DefineSpace BLOCKED, the rest passed;
#      a blocked Create named; no TPM behind TBS: one line, exit 1;
#   2. the core's unit tests and tests/tbs.rs under wine (`cargo test --target x86_64-pc-windows-gnu`);
#   3. tpm-hmac.exe: imports the YubiKey reference secret into a key file and answers the reference
#      vectors byte for byte (against openssl's HMAC-SHA1 and against the Linux build's tpm-hmac on
#      the same swtpm); a key file the Linux build made answers the same under the Windows build and
#      the other way round (the same record file); a blocked Create is one line naming it, exit 1,
#      no panic; doctor and doctor --probe-commands; no TPM: one line, exit 1;
#   4. the Windows wheel (scripts/build-windows-wheel.sh) in wine's embeddable CPython:
#      TpmHmac(key_file=…) opens a kdbxtool database made on Linux with the same key.
# Not tested here: anything on a real Windows machine (that is what the probe is for).
#
# Usage: tests/windows/test-windows.sh
# Exit codes: 0 pass, 1 fail, 77 skip (mingw, wine64 or the Rust Windows target missing).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}/windows
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HARNESS_LABEL=windows
# shellcheck source=../lib/harness.sh
. "$ROOT/tests/lib/harness.sh"
# shellcheck source=../../scripts/swtpm.sh
. "$ROOT/scripts/swtpm.sh"

command -v x86_64-w64-mingw32-gcc >/dev/null || skip "x86_64-w64-mingw32-gcc is missing (scripts/install-deps.sh: gcc-mingw-w64-x86-64)"
[ -x /usr/lib/wine/wine64 ] || skip "/usr/lib/wine/wine64 is missing (scripts/install-deps.sh: wine64)"
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu ||
  skip "the Rust target x86_64-pc-windows-gnu is missing (rustup target add x86_64-pc-windows-gnu)"

mkdir -p "$OUT/bin"
trap 'stop_swtpm' EXIT
export KEEPASSXC_TPM_WINDOWS_DLLS=$OUT
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -o "$OUT/tbs.dll" "$HERE/tbs-double.c" -lws2_32 ||
  die "the tbs.dll double does not build"
x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -o "$OUT/bcryptprimitives.dll" "$HERE/prng-shim.c" -ladvapi32 ||
  die "the ProcessPrng shim does not build"
(cd "$ROOT" && cargo build --locked -q --target x86_64-pc-windows-gnu -p keepassxc-tpm-tbs-probe -p tpm-hmac &&
  cargo build --locked -q -p tpm-hmac) || die "cargo build (x86_64-pc-windows-gnu and native) failed"
cp "$TARGET_DIR/x86_64-pc-windows-gnu/debug/tpm-hmac-tbs-probe.exe" "$TARGET_DIR/x86_64-pc-windows-gnu/debug/tpm-hmac.exe" "$OUT/bin/"
LINUX_CLI=$TARGET_DIR/debug/tpm-hmac
pass "cross-built tpm-hmac.exe, tpm-hmac-tbs-probe.exe, the tbs.dll double and the ProcessPrng shim"

start_swtpm "$OUT/swtpm" || die "swtpm did not start"
PORT=${SWTPM_TCTI##*port=}
export KEEPASSXC_TPM_TBS_PORT=$PORT
# win PROGRAM ARGS...: a Windows program's output (both streams), then "rc=N". PROGRAM is one of
# $OUT/bin, or a path.
win() {
  local rc=0 out program=$1
  [[ $program == */* ]] || program=$OUT/bin/$program
  # Windows programs may end lines with CR LF.
  out=$(timeout 300 "$HERE/wine-run.sh" "$program" "${@:2}" 2>&1 | tr -d '\r') || rc=$?
  printf '%s\nrc=%s\n' "$out" "$rc"
}
# winpath PATH: PATH as wine's Z: drive shows it.
winpath() { printf 'Z:%s' "${1//\//\\}"; }

# 1. The probe.
out=$(KEEPASSXC_TPM_TBS_BLOCK=0x120,0x12A win tpm-hmac-tbs-probe.exe)
blocked=$(grep -c '^BLOCKED' <<<"$out" || true)
passed=$(grep -c '^passed' <<<"$out" || true)
if grep -q '^rc=0$' <<<"$out" && [ "$blocked" = 2 ] && [ "$passed" = 11 ] &&
  grep -q '^BLOCKED  0x00000120 EvictControl' <<<"$out" && grep -q '^BLOCKED  0x0000012A NV_DefineSpace' <<<"$out" &&
  grep -q '^passed   0x00000155 HMAC: reached the TPM' <<<"$out"; then
  pass "probe: EvictControl and NV_DefineSpace BLOCKED, the 11 others passed to swtpm"
else
  fail "the probe's report: $(tr '\n' '|' <<<"$out")"
fi
out=$(KEEPASSXC_TPM_TBS_BLOCK=0x153 win tpm-hmac-tbs-probe.exe)
if grep -q '^BLOCKED  0x00000153 Create: Windows blocks it for this user (0x80280400)' <<<"$out" &&
  grep -q '^1 of 13 commands blocked' <<<"$out"; then
  pass "probe: a blocked Create is named: $(grep '^BLOCKED' <<<"$out")"
else
  fail "probe: a blocked Create is not reported: $(tr '\n' '|' <<<"$out")"
fi
out=$(KEEPASSXC_TPM_TBS_PORT="" win tpm-hmac-tbs-probe.exe)
if grep -q '^rc=1$' <<<"$out" && grep -q 'no TPM 2.0 reachable through TBS (0x8028400F)' <<<"$out" &&
  [ "$(grep -vc '^rc=' <<<"$out")" = 1 ]; then
  pass "probe without a TPM behind TBS: one line, exit 1"
else
  fail "probe without a TPM: $(tr '\n' '|' <<<"$out")"
fi

# 2. The core's tests under wine.
if out=$(cd "$ROOT" && CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$HERE/wine-run.sh" \
  cargo test --locked -q --target x86_64-pc-windows-gnu -p keepassxc-tpm --lib --test tbs 2>&1); then
  pass "the core's unit tests and tests/tbs.rs under wine: $(grep 'test result' <<<"$out" | sed 's/;.*//' | tr '\n' ' ')"
else
  fail "cargo test --target x86_64-pc-windows-gnu under wine: $(tail -30 <<<"$out" | tr '\n' '|')"
fi

# 3. tpm-hmac.exe.
WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK"
RECORDS=$WORK/keys.json
export KEEPASSXC_TPM_METADATA
KEEPASSXC_TPM_METADATA=$(winpath "$RECORDS")
SECRET=303132333435363738393a3b3c3d3e3f40414243
echo "$SECRET" >"$WORK/secret.hex"
out=$(win tpm-hmac.exe import --key-file "$(winpath "$WORK/twin.tss")" --secret-file "$(winpath "$WORK/secret.hex")")
if grep -q '^rc=0$' <<<"$out" && grep -q '^0x82' <<<"$out" && head -1 "$WORK/twin.tss" | grep -q 'BEGIN TSS2 PRIVATE KEY'; then
  pass "tpm-hmac.exe import --key-file: $(head -1 <<<"$out"), a TSS2 PRIVATE KEY file"
else
  fail "tpm-hmac.exe import: $(tr '\n' '|' <<<"$out")"
fi
# The same secret in a key file made by the Linux build, recorded in the same record file.
KEEPASSXC_TPM_METADATA=$RECORDS TPM2TOOLS_TCTI=$SWTPM_TCTI "$LINUX_CLI" import --key-file "$WORK/linux.tss" \
  --secret-file "$WORK/secret.hex" >/dev/null 2>&1 || fail "the Linux build's import failed"
mismatches=0
for challenge in "" 78 "$(printf '20%.0s' {1..63})" 6566676869 "$(seq 101 132 | xargs printf '%02x')"; do
  # None ends in KeePassXC's padding byte (64 minus its length), so a slot hashes each as it is.
  # shellcheck disable=SC2059 # the format is the challenge's bytes as \xNN escapes
  expected=$(printf "$(sed 's/../\\x&/g' <<<"$challenge")" | openssl dgst -sha1 -mac HMAC -macopt "hexkey:$SECRET" -r | cut -d' ' -f1)
  for file in twin linux; do
    got=$(win tpm-hmac.exe challenge --key-file "$(winpath "$WORK/$file.tss")" --hex "$challenge" | sed -n 1p)
    linux=$(KEEPASSXC_TPM_METADATA=$RECORDS TPM2TOOLS_TCTI=$SWTPM_TCTI "$LINUX_CLI" challenge --key-file "$WORK/$file.tss" --hex "$challenge")
    if [ "$got" != "$expected" ] || [ "$linux" != "$expected" ]; then
      mismatches=$((mismatches + 1))
      echo "  challenge '$challenge' $file: windows $got linux $linux expected $expected" >&2
    fi
  done
done
if [ "$mismatches" = 0 ]; then
  pass "reference vectors: the Windows and the Linux build answer openssl's HMAC-SHA1, byte for byte, for a key file each made (5 challenges x 2 files x 2 builds)"
else
  fail "$mismatches answers differ from the reference vectors"
fi
out=$(win tpm-hmac.exe list)
if grep -q '^rc=0$' <<<"$out" && [ "$(grep -c '^0x82' <<<"$out")" = 2 ]; then
  pass "tpm-hmac.exe list: both key files"
else
  fail "tpm-hmac.exe list: $(tr '\n' '|' <<<"$out")"
fi
out=$(KEEPASSXC_TPM_TBS_BLOCK=0x153 win tpm-hmac.exe create --key-file "$(winpath "$WORK/blocked.tss")")
if grep -q '^rc=1$' <<<"$out" && [ "$(grep -vc '^rc=' <<<"$out")" = 1 ] &&
  grep -q '^tpm-hmac: Windows blocks the TPM command TPM2_Create for this user' <<<"$out" &&
  ! grep -q panicked <<<"$out" && [ ! -e "$WORK/blocked.tss" ]; then
  pass "a blocked Create: one line, exit 1, no file: $(head -1 <<<"$out" | cut -c1-110)…"
else
  fail "a blocked Create: $(tr '\n' '|' <<<"$out")"
fi
out=$(win tpm-hmac.exe doctor --probe-commands)
if grep -q '^rc=0$' <<<"$out" && grep -q '^ok       TBS sees a TPM 2.0' <<<"$out" &&
  grep -q 'holds 2 key file' <<<"$out" && grep -q '^0 of 13 commands blocked' <<<"$out"; then
  pass "tpm-hmac.exe doctor --probe-commands: TPM 2.0, 2 key files, nothing blocked"
else
  fail "tpm-hmac.exe doctor: $(tr '\n' '|' <<<"$out")"
fi
out=$(KEEPASSXC_TPM_TBS_PORT="" win tpm-hmac.exe challenge --key-file "$(winpath "$WORK/twin.tss")" --hex 00)
if grep -q '^rc=1$' <<<"$out" && [ "$(grep -vc '^rc=' <<<"$out")" = 1 ] && grep -q '^tpm-hmac: no TPM reachable through TBS' <<<"$out"; then
  pass "no TPM behind TBS: $(head -1 <<<"$out" | cut -c1-120)"
else
  fail "no TPM: $(tr '\n' '|' <<<"$out")"
fi
out=$(KEEPASSXC_TPM_TBS_PORT="" win tpm-hmac.exe doctor)
if grep -q '^rc=1$' <<<"$out" && grep -q '^problem  no TPM found by TBS' <<<"$out"; then
  pass "doctor without a TPM: $(grep '^problem' <<<"$out" | head -1 | cut -c1-100)"
else
  fail "doctor without a TPM: $(tr '\n' '|' <<<"$out")"
fi
# 4. The Windows wheel in wine's embeddable CPython, with kdbxtool.
if ! WHEEL=$("$ROOT/scripts/build-windows-wheel.sh" 2>"$WORK/wheel.log"); then
  fail "scripts/build-windows-wheel.sh: $(tail -3 "$WORK/wheel.log" | tr '\n' '|')"
elif ! EMBED=$("$HERE/embed-python.sh" "$OUT/python" "$WHEEL" 2>"$WORK/embed.log"); then
  rc=$(grep -q SKIP "$WORK/embed.log" && echo skip || echo fail)
  [ "$rc" = skip ] && echo "[windows] SKIP: the wheel under wine: $(tail -1 "$WORK/embed.log")" >&2 ||
    fail "embed-python.sh: $(tail -3 "$WORK/embed.log" | tr '\n' '|')"
else
  pass "the Windows wheel $(basename "$WHEEL") under wine: $(tail -1 "$WORK/embed.log")"
  # The database is made on Linux by kdbxtool with a software twin of the slot holding SECRET.
  LINUX_PY=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}/windows/maturin-venv/bin/python
  KDBXTOOL_WHEEL=${KDBXTOOL_WHEEL:-$(find "$ROOT/../shared/vendor/kdbxtool" -name 'kdbxtool-*.whl' 2>/dev/null | head -1)}
  made=""
  if ! "$LINUX_PY" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    echo "[windows] SKIP: no Python >= 3.12 on Linux here (kdbxtool needs it): no database made on Linux to open" >&2
  elif ! "$LINUX_PY" -m pip install -q --disable-pip-version-check "$KDBXTOOL_WHEEL" >/dev/null 2>&1; then
    fail "kdbxtool does not install into $LINUX_PY"
  elif ! "$LINUX_PY" "$HERE/twin_database.py" "$WORK/linux.kdbx" "$SECRET"; then
    fail "kdbxtool on Linux did not make the database"
  else
    made=yes
  fi
  # pyopen KEY_FILE: open_database.py under wine on the database made on Linux.
  pyopen() {
    (WINEPREFIX=$OUT/python/wineprefix win "$EMBED" "$(winpath "$HERE/open_database.py")" \
      "$(winpath "$WORK/linux.kdbx")" "$(winpath "$1")")
  }
  if [ -n "$made" ]; then
    for file in twin linux; do
      out=$(pyopen "$WORK/$file.tss")
      if grep -q '^rc=0$' <<<"$out" && grep -q '^opened: s3cret$' <<<"$out"; then
        pass "TpmHmac(key_file=$file.tss) under wine opens the kdbxtool database made on Linux"
      else
        fail "TpmHmac(key_file=$file.tss) under wine: $(tr '\n' '|' <<<"$out")"
      fi
    done
    KEEPASSXC_TPM_METADATA=$RECORDS TPM2TOOLS_TCTI=$SWTPM_TCTI "$LINUX_CLI" create --key-file "$WORK/other.tss" >/dev/null 2>&1
    out=$(pyopen "$WORK/other.tss")
    if grep -q '^rc=1$' <<<"$out" && grep -q '^refused: AuthenticationError' <<<"$out"; then
      pass "another key file does not open it: $(grep '^refused' <<<"$out" | cut -c1-100)"
    else
      fail "another key file: $(tr '\n' '|' <<<"$out")"
    fi
    out=$(KEEPASSXC_TPM_TBS_PORT="" pyopen "$WORK/twin.tss")
    if grep -q '^rc=1$' <<<"$out" && grep -q '^refused: NoTpm: no TPM reachable through TBS' <<<"$out"; then
      pass "without a TPM: $(grep '^refused' <<<"$out" | cut -c1-100)"
    else
      fail "without a TPM: $(tr '\n' '|' <<<"$out")"
    fi
  fi
fi
out=$(win tpm-hmac.exe delete --key-file "$(winpath "$WORK/twin.tss")")
if grep -q '^rc=0$' <<<"$out" && [ ! -e "$WORK/twin.tss" ]; then
  pass "tpm-hmac.exe delete removes the key file and its record"
else
  fail "tpm-hmac.exe delete: $(tr '\n' '|' <<<"$out")"
fi
harness_finish
