# shellcheck shell=bash
# shellcheck disable=SC2034 # the PC_* settings are for the scripts that source this file
# Shared by the tests/pcsc scripts of issue 23 (sourced by bash): the build of tpm-hmac and the
# reader driver, a private swtpm with a key of a KNOWN secret (so that an independent software HMAC
# can make and check things), the key enabled for the driver in a private root-owned config file, a
# private reader.conf.d, a private pcscd (private-pcscd.sh: its own mount namespace, the machine's
# /run/pcscd untouched), the Python venv (kdbxtool's provider branch; yubikey-manager), timings,
# and pass/fail/skip reporting. Everything started is stopped, by PID, on every exit path.
# swtpm is a test stand-in for a TPM; it gives no security.
#
# Prologue of a test script:   set -euo pipefail; PC_TEST=name; . "$(dirname "$0")/lib.sh"
# Environment: KEEPASSXC_TPM_BUILD_DIR (default build/), CARGO_TARGET_DIR (default target/),
# KEEPASSXC_TPM_PCSC_NO_BUILD=1 (use target/debug's tpm-hmac and driver as they are).
# Exit codes of the scripts: 0 pass, 1 fail, 77 skip (with a loud reason).

PC_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PC_ROOT=$(cd "$PC_HERE/../.." && pwd)
PC_BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$PC_ROOT/build}
PC_TARGET=${CARGO_TARGET_DIR:-$PC_ROOT/target}
PC_LABEL=${PC_TEST:-pcsc}${PC_RELEASE:+ $PC_RELEASE}
# The key every test imports: a known secret (20 bytes), an owner handle that is not the SRK's.
PC_SECRET=303132333435363738393a3b3c3d3e3f40414243
PC_HANDLE=0x81000100
PC_SERIAL=$((PC_HANDLE))
PC_PASSWORD="correct horse battery staple"
# The reader's name as pcscd shows it (FRIENDLYNAME + " 00 00"; packaging/pcsc/keepassxc-tpm).
PC_READER="KeePassXC TPM 00 00"
export TSS2_LOG=all+none
# These scripts act as root itself, on private config files outside /etc/keepassxc-tpm: under sudo
# `tpm-hmac pcsc` would (rightly) refuse such a file as the user who ran sudo.
unset SUDO_USER SUDO_UID SUDO_GID

HARNESS_LABEL=$PC_LABEL
# shellcheck source=../lib/harness.sh
. "$PC_HERE/../lib/harness.sh"
# The machine's own /run/pcscd, to show it untouched at the end.
pc_host_pcscd() { if [ -e /run/pcscd ]; then ls -1A /run/pcscd 2>&1 | tr '\n' ' '; else echo absent; fi; }
PC_HOST_PCSCD_BEFORE=$(pc_host_pcscd)
finish() {
  local after
  after=$(pc_host_pcscd)
  if [ "$after" = "$PC_HOST_PCSCD_BEFORE" ]; then
    pass "the machine's /run/pcscd is as it was (${after:-empty})"
  else
    fail "the machine's /run/pcscd changed: before \"$PC_HOST_PCSCD_BEFORE\", after \"$after\""
  fi
  pc_times
  harness_finish
}

# ---- timings: pc_timed LABEL COMMAND... runs COMMAND and notes its seconds -----------------------
PC_TIMES=()
pc_now() { date +%s.%N; }
pc_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
pc_note_time() { PC_TIMES+=("$1: $2 s"); }
pc_timed() {
  local label=$1 t0 rc=0
  shift
  t0=$(pc_now)
  "$@" || rc=$?
  pc_note_time "$label" "$(pc_secs "$t0" "$(pc_now)")"
  return "$rc"
}
pc_times() {
  [ ${#PC_TIMES[@]} -gt 0 ] || return 0
  say "times: $(printf '%s; ' "${PC_TIMES[@]}" | sed 's/; $//')"
}

# ---- cleanup: pc_on_exit COMMAND... registers a step of the EXIT trap (run last-registered first)
PC_CLEANUPS=()
pc_on_exit() { PC_CLEANUPS+=("$(printf '%q ' "$@")"); }
# Stops the process (one we started) whose PID is in the variable named $1, if any, and clears it.
pc_stop() {
  local pid=${!1:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf -v "$1" '%s' ""
}
# shellcheck disable=SC2317 # run by the EXIT trap
pc_cleanup() {
  local i
  # A private pcscd run still going (the trap came during it): its own trap stops pcscd and unmounts.
  pc_stop PC_CHILD
  for ((i = ${#PC_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${PC_CLEANUPS[$i]}" || true
  done
  PC_CLEANUPS=()
}
trap pc_cleanup EXIT
trap 'exit 143' TERM INT HUP

pc_need_root() {
  [ "$(id -u)" -eq 0 ] || skip "a private pcscd needs root (a mount namespace over /run/pcscd)"
}
pc_need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (scripts/install-deps.sh)"
  done
}

# WORK: an empty directory of this test, build/pcsc/NAME, root's and not writable by others (the
# driver refuses a config file in a directory others may write).
pc_fresh_workdir() {
  WORK=$PC_BUILD/pcsc/$1
  rm -rf "$WORK"
  mkdir -p "$WORK"
  chmod 0755 "$WORK" "$PC_BUILD/pcsc"
}

# TPM_HMAC and PC_DRIVER: tpm-hmac and the reader driver, built (debug, incrementally), unless
# KEEPASSXC_TPM_PCSC_NO_BUILD=1 says they are built already (run-tests.sh builds once for all).
pc_build() {
  local cargo
  TPM_HMAC=$PC_TARGET/debug/tpm-hmac
  PC_DRIVER=$PC_TARGET/debug/libkeepassxc_tpm_pcsc.so
  if [ "${KEEPASSXC_TPM_PCSC_NO_BUILD:-}" != 1 ]; then
    cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
    (cd "$PC_ROOT" && "$cargo" build --locked -q -p tpm-hmac -p keepassxc-tpm-pcsc) ||
      die "cargo build of tpm-hmac and the driver failed"
  fi
  [ -x "$TPM_HMAC" ] && [ -f "$PC_DRIVER" ] || die "no tpm-hmac or driver in $PC_TARGET/debug"
}
tpm_hmac() { "$TPM_HMAC" --tcti "$SWTPM_TCTI" "$@"; }

# A swtpm of this test's own (state in $WORK/swtpm, free loopback ports), stopped on exit; the key
# records in $WORK, apart from the user's own.
# shellcheck source=../../scripts/swtpm.sh
. "$PC_ROOT/scripts/swtpm.sh"
pc_start_swtpm() {
  pc_need_tools swtpm
  start_swtpm "$WORK/swtpm" || die "swtpm did not start"
  pc_on_exit stop_swtpm
  export KEEPASSXC_TPM_METADATA=$WORK/keys.json
}

# Imports PC_SECRET at PC_HANDLE ($WORK/secret.hex keeps it for the software side).
pc_import_key() {
  echo "$PC_SECRET" >"$WORK/secret.hex"
  tpm_hmac import --secret-file "$WORK/secret.hex" --handle "$PC_HANDLE" >"$WORK/import.out" 2>&1 ||
    die "tpm-hmac import: $(cat "$WORK/import.out")"
}

# PC_CONFIG: the driver's file of served keys, written by `tpm-hmac pcsc enable`, in $WORK/etc;
# checked to be a regular root-owned file nobody else can write.
pc_enable_key() {
  PC_CONFIG=$WORK/etc/pcsc.json
  mkdir -p "$WORK/etc"
  chmod 0755 "$WORK/etc"
  tpm_hmac pcsc enable --handle "$PC_HANDLE" --config "$PC_CONFIG" >"$WORK/enable.out" 2>&1 ||
    die "tpm-hmac pcsc enable: $(cat "$WORK/enable.out")"
  local owner mode
  owner=$(stat -c %U "$PC_CONFIG")
  mode=$(stat -c %a "$PC_CONFIG")
  if [ -f "$PC_CONFIG" ] && [ ! -L "$PC_CONFIG" ] && [ "$owner" = root ] && [ $((8#$mode & 8#022)) -eq 0 ]; then
    pass "tpm-hmac pcsc enable wrote $PC_CONFIG (root, mode $mode)"
  else
    fail "the config file is $owner, mode $mode: not a root-owned file only root can write"
  fi
}

# Everything above: build, work dir, swtpm, the key, enabled.
pc_setup_key() {
  pc_timed "cargo build" pc_build
  pc_fresh_workdir "$1"
  local t0
  t0=$(pc_now)
  pc_start_swtpm
  pc_import_key
  pc_enable_key
  pc_note_time "swtpm + import + enable" "$(pc_secs "$t0" "$(pc_now)")"
}

# pc_reader_conf FILE CONFIG DRIVER: the package's reader.conf.d entry with DEVICENAME and LIBPATH
# pointing at CONFIG and DRIVER.
pc_reader_conf() {
  local file=$1 config=$2 driver=$3
  mkdir -p "$(dirname "$file")"
  sed -e "s|^DEVICENAME .*|DEVICENAME   $config|" -e "s|^LIBPATH .*|LIBPATH      $driver|" \
    "$PC_ROOT/packaging/pcsc/keepassxc-tpm" >"$file"
  grep -q "^DEVICENAME   $config\$" "$file" && grep -q "^LIBPATH      $driver\$" "$file" ||
    die "packaging/pcsc/keepassxc-tpm has no DEVICENAME/LIBPATH lines to point at the test's files"
}

# pc_private_pcscd [--log FILE] [--apdu] CONFDIR COMMAND...: COMMAND beside a
# private pcscd (tests/pcsc/private-pcscd.sh).
# Run in the background and waited for, so that a signal to this script is handled at once.
PC_CHILD=""
pc_private_pcscd() {
  local rc=0
  "$PC_HERE/private-pcscd.sh" "$@" <&0 &
  PC_CHILD=$!
  wait "$PC_CHILD" || rc=$?
  PC_CHILD=""
  return "$rc"
}

# ---- Python: PC_PY, a venv in build/pcsc/venv with kdbxtool's provider branch (Python >= 3.12) --
# pc_venv [PIP_PACKAGE...]: the venv with the kdbxtool wheel and the packages given (installed once).
pc_venv() {
  local python wheel venv=$PC_BUILD/pcsc/venv
  python=$("$PC_ROOT/tests/python/find-python.sh") || skip "no Python >= 3.12 here (kdbxtool needs it; pyenv install 3.12)"
  wheel=${KDBXTOOL_WHEEL:-$(ls "$PC_ROOT"/../shared/vendor/kdbxtool/kdbxtool-*.whl 2>/dev/null | head -1 || true)}
  [ -f "$wheel" ] || skip "the kdbxtool wheel of its provider branch is not there (../shared/vendor/kdbxtool, or set KDBXTOOL_WHEEL)"
  if [ ! -x "$venv/bin/python" ] || ! cmp -s <("$venv/bin/python" -c 'import sys; print(sys.version)') <("$python" -c 'import sys; print(sys.version)'); then
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "cannot make a venv with $python"
  fi
  PC_PY=$venv/bin/python
  if ! "$PC_PY" -c 'import kdbxtool.security.challenge_response' 2>/dev/null; then
    "$PC_PY" -m pip install -q --disable-pip-version-check "$wheel" >"$WORK/pip.out" 2>&1 || die "pip install kdbxtool: $(tail -3 "$WORK/pip.out")"
  fi
  local p
  for p in "$@"; do
    "$PC_PY" -m pip show -q "$p" >/dev/null 2>&1 && continue
    "$PC_PY" -m pip install -q --disable-pip-version-check "$p" >"$WORK/pip.out" 2>&1 || die "pip install $p: $(tail -3 "$WORK/pip.out")"
  done
}

# pc_make_db OUT: the held-out database (make-db.py: password + software challenge-response).
pc_make_db() {
  printf '%s\n' "$PC_PASSWORD" >"$WORK/password"
  "$PC_PY" "$PC_HERE/make-db.py" "$WORK/secret.hex" "$WORK/password" "$1" >"$WORK/make-db.out" 2>&1 ||
    die "make-db.py: $(cat "$WORK/make-db.out")"
}

# The HMAC-SHA1 of PC_SECRET over the hex message $1, in software (the independent check).
pc_software_hmac() {
  python3 -c 'import hmac, hashlib, sys; print(hmac.new(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), hashlib.sha1).hexdigest())' \
    "$PC_SECRET" "$1"
}

# ---- added for test-fork-roundtrip.sh, test-stock-gui.sh and tests/bench/pcsc.sh -----------------
# pc_stock_keepassxc [PACKAGE...]: Debian 12's own, unmodified keepassxc on this machine, with pcscd
# and pcsc-tools (and the PACKAGEs given): a loud skip off Debian 12 or when the machine's keepassxc
# is this project's fork package; those missing are installed with apt for the test and purged again
# on exit (with whatever apt pulled in for them), so the machine's packages stay as they were.
pc_stock_keepassxc() {
  local p installed need=()
  # shellcheck disable=SC1091 # the machine's file
  . /etc/os-release
  [ "${VERSION_CODENAME:-}" = bookworm ] || skip "this machine is ${PRETTY_NAME:-not Debian 12}, not Debian 12 (bookworm)"
  for p in keepassxc pcscd pcsc-tools "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    PC_PACKAGES_BEFORE=$(pc_installed_packages)
    pc_on_exit pc_purge_added
    say "installing Debian's ${need[*]} for this test (apt-get; purged again at the end)"
    pc_timed "apt-get install" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
      _ "${need[@]}" || die "apt-get install ${need[*]} failed"
  fi
  # Stock means Debian's own build: this project's package (2.7.4+dfsg.1-2+tpm1) has the TPM driver.
  installed=$(dpkg-query -W -f='${Version}' keepassxc)
  if [[ "$installed" == *tpm* ]] || [ -e "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/keepassxc/libkeepassxc_tpm_backend.so" ]; then
    skip "the machine's keepassxc is this project's fork package ($installed), not Debian's stock one: apt install keepassxc=<Debian's version> to run this test"
  fi
  PC_STOCK_VERSION=$installed
}
pc_installed_packages() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort; }
# shellcheck disable=SC2317 # run by the EXIT trap
pc_purge_added() {
  local added
  added=$(comm -13 <(echo "$PC_PACKAGES_BEFORE") <(pc_installed_packages))
  [ -z "$added" ] && return 0
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $added >/dev/null 2>&1 || say "could not purge $added"
}

# pc_fork: the KeePassXC 2.7.4 fork's build (tests/keepassxc/lib.sh's paths): PC_FORK_CLI,
# PC_FORK_MAKE_DB, and KEEPASSXC_TPM_BACKEND exported; a loud skip when it is not built.
pc_fork() {
  local bin=$PC_BUILD/keepassxc-2.7.4/build
  PC_FORK_CLI=$bin/src/cli/keepassxc-cli
  PC_FORK_MAKE_DB=$bin/src/keepassxc-tpm-make-db
  [ -x "$PC_FORK_CLI" ] || skip "the KeePassXC 2.7.4 fork is not built (no $PC_FORK_CLI): run tests/keepassxc/build-fork.sh 2.7.4"
  [ -x "$PC_FORK_MAKE_DB" ] || skip "the fork's keepassxc-tpm-make-db is not built (no $PC_FORK_MAKE_DB): run tests/keepassxc/build-fork.sh 2.7.4"
  export KEEPASSXC_TPM_BACKEND=$bin/cargo/release/libkeepassxc_tpm_backend.so
  [ -f "$KEEPASSXC_TPM_BACKEND" ] || skip "the fork's TPM backend is not built (no $KEEPASSXC_TPM_BACKEND): run tests/keepassxc/build-fork.sh 2.7.4"
}

# pc_kdf_seed FILE: the KDF seed of a KDBX 4 file (the "S" of its KDF parameters, hex): what
# KeePassXC pads and sends as the challenge; every save with a new key draws a new one.
pc_kdf_seed() {
  python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == bytes.fromhex("03d9a29a67fb4bb5") and struct.unpack_from("<H", data, 10)[0] == 4, "not KDBX 4"
pos = 12
while True:
    fid, size = data[pos], struct.unpack_from("<I", data, pos + 1)[0]
    body, pos = data[pos + 5:pos + 5 + size], pos + 5 + size
    if fid == 0:
        sys.exit("no KDF parameters")
    if fid == 11:  # KdfParameters, a VariantDictionary
        p = 2
        while body[p] != 0:
            klen = struct.unpack_from("<i", body, p + 1)[0]
            key = body[p + 5:p + 5 + klen].decode()
            vlen = struct.unpack_from("<i", body, p + 5 + klen)[0]
            value = body[p + 9 + klen:p + 9 + klen + vlen]
            if key == "S":
                print(value.hex())
                sys.exit(0)
            p += 9 + klen + vlen
        sys.exit("no KDF seed")
PY
}

# pc_wait_card: beside a private pcscd, waits up to 10 s for the driver's card (pcscd's reader
# thread powers it up on its first poll). For the commands run inside the namespace.
pc_wait_card() {
  local i
  for i in $(seq 100); do
    if timeout 5 pcsc_scan -c -t 1 2>/dev/null </dev/null | grep -q "Card state: Card inserted"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# pc_check_stock_client OUT VERSION LOG: checks what stock-client.sh printed into OUT (keepassxc-cli
# is VERSION.x; the card shows up; the held-out database opens with the key and the password, and is
# refused with a wrong password, without the key, with another serial and with slot 2). LOG is
# pcscd's log, shown when the card does not show up.
pc_check_stock_client() {
  local out=$1 version=$2 log=$3 cli_version pcscd_version case
  section() { awk -v s="=== $1" '$0 == s { on = 1; next } /^=== / { on = 0 } on' "$out"; }
  rc_of() { section "$1" | sed -n 's/^rc=\([0-9]*\) secs=.*/\1/p'; }
  secs_of() { section "$1" | sed -n 's/^rc=[0-9]* secs=\(.*\)/\1/p'; }
  body() { section "$1" | grep -v '^rc=[0-9]* secs=' | tr '\n' '|'; }

  cli_version=$(section versions | head -1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
  pcscd_version=$(section versions | sed -n 2p | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
  if [[ "$cli_version" == "$version".* ]]; then
    pass "keepassxc-cli is $PC_RELEASE's $cli_version (pcscd $pcscd_version)"
  else
    fail "keepassxc-cli version \"$(section versions | head -1)\" is not $version.x"
  fi
  [ "$(rc_of "wait card")" = 0 ] || fail "the driver's card did not show up: $(body "wait card"); pcscd: $(tail -5 "$log" | tr '\n' '|')"
  if section readers | grep -qF "$PC_READER"; then
    pass "pcsc_scan -r lists the driver's reader \"$PC_READER\""
  else
    fail "pcsc_scan -r does not list \"$PC_READER\": $(body readers)"
  fi
  if section cards | grep -q "Card inserted" && section cards | grep -q "ATR:"; then
    pass "pcsc_scan -c shows a card in it ($(section cards | grep -m1 -o 'ATR: .*'))"
  else
    fail "pcsc_scan -c shows no card: $(body cards)"
  fi
  if [ "$(rc_of open)" = 0 ] && section open | grep -qx "Bank" && section open | grep -qx "Mail"; then
    pass "stock keepassxc-cli ls --yubikey 1:$PC_SERIAL opens the held-out database: Bank, Mail ($(secs_of open) s)"
  else
    fail "keepassxc-cli ls --yubikey 1:$PC_SERIAL: rc $(rc_of open): $(body open)"
  fi
  if [ "$(rc_of "show Bank")" = 0 ] && section "show Bank" | grep -q "bank-password"; then
    pass "keepassxc-cli show -s Bank gives its password ($(secs_of "show Bank") s)"
  else
    fail "keepassxc-cli show -s Bank: rc $(rc_of "show Bank"): $(body "show Bank")"
  fi
  for case in "wrong password" "without key" "other serial" "slot 2"; do
    if [ "$(rc_of "$case")" != 0 ] && [ -n "$(rc_of "$case")" ] && ! section "$case" | grep -qx "Bank"; then
      pass "keepassxc-cli ls refused with $case (rc $(rc_of "$case"), $(secs_of "$case") s: $(section "$case" | grep -v '^rc=' | grep -v '^Enter password' | tail -1))"
    else
      fail "keepassxc-cli ls not refused with $case: rc $(rc_of "$case"): $(body "$case")"
    fi
  done
}
