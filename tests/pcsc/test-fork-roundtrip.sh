#!/usr/bin/env bash
# Issue 23, "Tests": a database protected in the fork opens in stock KeePassXC through PC/SC, and one
# saved through PC/SC opens in the fork. One key in a private swtpm, enabled for the reader driver
# (`tpm-hmac pcsc enable`, whose pcsc.json records the swtpm TCTI the fork is given as
# TPM2TOOLS_TCTI, so both reach the same simulator):
#   (a) the fork's keepassxc-tpm-make-db (KeePassXC's own code, direct TPM path) makes a database
#       protected by a password plus the TPM key 1:<serial>; Debian 12's stock, unmodified
#       keepassxc-cli, beside a private pcscd that loads the driver (private-pcscd.sh), lists it
#       with `ls --yubikey 1:<serial>` and refuses a wrong password;
#   (b) stock keepassxc-cli re-saves it through PC/SC (`db-edit --set-password`: a new KDF seed,
#       challenged on the card again) and opens it with the new password; then, with pcscd gone, the
#       fork's keepassxc-cli (direct TPM path) opens the re-saved file with the new password and
#       refuses the old one.
# The fork and the driver never talk to swtpm at the same time (swtpm serves one connection, and the
# driver keeps its own while pcscd runs). The machine's own pcscd is never touched; Debian's
# keepassxc, pcscd and pcsc-tools, when missing, are installed for the test and purged at its end.
#
# Usage: tests/pcsc/test-fork-roundtrip.sh           (as root)
#        (test-fork-roundtrip.sh --client DIR SERIAL is its own half that runs beside pcscd)
# Environment: as tests/pcsc/lib.sh (KEEPASSXC_TPM_PCSC_NO_BUILD=1: tpm-hmac and the driver built).
# Exit codes: 0 pass, 1 fail, 77 skip (not root; not Debian 12; the fork is not built; the machine's
# keepassxc is the fork's package).
set -euo pipefail
PC_TEST=fork-roundtrip

# ---- the client half: beside the private pcscd, Debian's keepassxc-cli ---------------------------
# Prints sections "=== NAME" with what each command printed and a last line "rc=N secs=S".
if [ "${1:-}" = --client ]; then
  # shellcheck source=lib.sh
  . "$(dirname "$0")/lib.sh"
  DIR=$2 SERIAL=$3
  DB=$DIR/fork.kdbx
  run() {
    local name=$1 input=$2 t0 rc=0
    shift 2
    echo "=== $name"
    t0=$(pc_now)
    "$@" <"$input" 2>&1 || rc=$?
    echo "rc=$rc secs=$(pc_secs "$t0" "$(pc_now)")"
  }
  export HOME=$DIR/home XDG_CONFIG_HOME=$DIR/home/.config XDG_CACHE_HOME=$DIR/home/.cache
  mkdir -p "$HOME"
  run "version" /dev/null /usr/bin/keepassxc-cli --version
  run "wait card" /dev/null pc_wait_card
  run "open" "$DIR/password" /usr/bin/keepassxc-cli ls --yubikey "1:$SERIAL" "$DB"
  run "wrong password" "$DIR/wrong-password" /usr/bin/keepassxc-cli ls --yubikey "1:$SERIAL" "$DB"
  run "db-edit" "$DIR/set-password" /usr/bin/keepassxc-cli db-edit --yubikey "1:$SERIAL" --set-password "$DB"
  run "open new" "$DIR/new-password" /usr/bin/keepassxc-cli ls --yubikey "1:$SERIAL" "$DB"
  run "old password" "$DIR/password" /usr/bin/keepassxc-cli ls --yubikey "1:$SERIAL" "$DB"
  trap - EXIT
  exit 0
fi

# ---- the test ---------------------------------------------------------------------------------
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
T_START=$(pc_now)
pc_need_root
pc_need_tools unshare python3
pc_fork
pc_stock_keepassxc
pc_setup_key fork-roundtrip
DB=$WORK/fork.kdbx
NEW_PASSWORD="a new password, set through PC/SC"
printf '%s\n' "$PC_PASSWORD" >"$WORK/password"
printf '%s\n' "not the password" >"$WORK/wrong-password"
printf '%s\n' "$NEW_PASSWORD" >"$WORK/new-password"
printf '%s\n%s\n%s\n' "$PC_PASSWORD" "$NEW_PASSWORD" "$NEW_PASSWORD" >"$WORK/set-password"

# The driver's TPM and the fork's TPM are the same: the TCTI recorded in pcsc.json.
recorded=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("tcti", ""))' "$PC_CONFIG")
[ "$recorded" = "$SWTPM_TCTI" ] || die "pcsc.json records the TCTI \"$recorded\", not the test's swtpm $SWTPM_TCTI"
export TPM2TOOLS_TCTI=$SWTPM_TCTI

# (a) the fork makes the database (before pcscd starts: the driver keeps its swtpm connection).
t0=$(pc_now)
if "$PC_FORK_MAKE_DB" "$DB" "1:$PC_SERIAL" Bank Mail <"$WORK/password" >"$WORK/make-db.out" 2>&1; then
  pass "the fork's keepassxc-tpm-make-db made $(basename "$DB") (password + TPM key 1:$PC_SERIAL, direct TPM path)"
else
  die "keepassxc-tpm-make-db: $(tr '\n' '|' <"$WORK/make-db.out")"
fi
pc_note_time "fork make-db" "$(pc_secs "$t0" "$(pc_now)")"
SEED_BEFORE=$(pc_kdf_seed "$DB") || die "no KDF seed in $DB"

# Debian's keepassxc-cli beside a private pcscd that loads the driver.
pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
say "pcscd (private) and Debian's keepassxc-cli $PC_STOCK_VERSION"
rc=0
pc_timed "private pcscd + stock keepassxc-cli" pc_private_pcscd --log "$WORK/pcscd.log" "$WORK/reader.conf.d" \
  "$PC_HERE/test-fork-roundtrip.sh" --client "$WORK" "$PC_SERIAL" >"$WORK/client.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "the private pcscd run ended with $rc: $(tail -5 "$WORK/client.out" | tr '\n' '|')"

section() { awk -v s="=== $1" '$0 == s { on = 1; next } /^=== / { on = 0 } on' "$WORK/client.out"; }
rc_of() { section "$1" | sed -n 's/^rc=\([0-9]*\) secs=.*/\1/p'; }
secs_of() { section "$1" | sed -n 's/^rc=[0-9]* secs=\(.*\)/\1/p'; }
body() { section "$1" | grep -v '^rc=[0-9]* secs=' | tr '\n' '|'; }
listed() { section "$1" | grep -qx Bank && section "$1" | grep -qx Mail; }

[[ "$(section version | head -1)" == 2.7.* ]] || fail "stock keepassxc-cli --version: $(body version)"
[ "$(rc_of "wait card")" = 0 ] || fail "the driver's card did not show up in 10 s; pcscd: $(tail -5 "$WORK/pcscd.log" | tr '\n' '|')"
if [ "$(rc_of open)" = 0 ] && listed open; then
  pass "(a) stock keepassxc-cli $(section version | head -1) ls --yubikey 1:$PC_SERIAL opens the fork's database through pcscd: Bank, Mail ($(secs_of open) s)"
else
  fail "(a) stock keepassxc-cli ls --yubikey 1:$PC_SERIAL of the fork's database: rc $(rc_of open): $(body open)"
fi
if [ -n "$(rc_of "wrong password")" ] && [ "$(rc_of "wrong password")" != 0 ] && ! listed "wrong password" &&
  section "wrong password" | grep -q "Invalid credentials"; then
  pass "(a) ... and refuses a wrong password (rc $(rc_of "wrong password"): invalid credentials)"
else
  fail "(a) a wrong password was not refused: rc $(rc_of "wrong password"): $(body "wrong password")"
fi
if [ "$(rc_of db-edit)" = 0 ] && section db-edit | grep -q "Successfully edited the database"; then
  pass "(b) stock keepassxc-cli db-edit --yubikey 1:$PC_SERIAL --set-password re-saved it through PC/SC ($(secs_of db-edit) s)"
else
  fail "(b) stock keepassxc-cli db-edit --set-password: rc $(rc_of db-edit): $(body db-edit)"
fi
SEED_AFTER=$(pc_kdf_seed "$DB") || fail "no KDF seed in the re-saved $DB"
if [ -n "$SEED_AFTER" ] && [ "$SEED_AFTER" != "$SEED_BEFORE" ]; then
  pass "(b) the re-saved file has a new KDF seed, so a new challenge (${SEED_BEFORE:0:16}... -> ${SEED_AFTER:0:16}...)"
else
  fail "(b) the KDF seed did not change on the re-save ($SEED_BEFORE -> $SEED_AFTER)"
fi
if [ "$(rc_of "open new")" = 0 ] && listed "open new" && [ "$(rc_of "old password")" != 0 ] && ! listed "old password" &&
  section "old password" | grep -q "Invalid credentials"; then
  pass "(b) stock keepassxc-cli opens the re-saved file with the new password, not with the old one"
else
  fail "(b) stock keepassxc-cli after the re-save: new password rc $(rc_of "open new") ($(body "open new")), old password rc $(rc_of "old password") ($(body "old password"))"
fi

# (b) the fork, direct TPM path: no pcscd (it has stopped; the machine's own is not asked for keys
# it cannot have).
fork_ls() { "$PC_FORK_CLI" ls --yubikey "1:$PC_SERIAL" "$DB" <"$1" >"$WORK/fork-$2.out" 2>&1; }
t0=$(pc_now)
if fork_ls "$WORK/new-password" new && grep -qx Bank "$WORK/fork-new.out" && grep -qx Mail "$WORK/fork-new.out"; then
  pass "(b) the fork's keepassxc-cli (direct TPM path, TPM2TOOLS_TCTI) opens the file stock KeePassXC re-saved, with the new password ($(pc_secs "$t0" "$(pc_now)") s)"
else
  fail "(b) the fork's keepassxc-cli does not open the re-saved file: $(tr '\n' '|' <"$WORK/fork-new.out")"
fi
if fork_ls "$WORK/password" old; then
  fail "(b) the fork opened the re-saved file with the old password"
elif grep -q "Invalid credentials" "$WORK/fork-old.out"; then
  pass "(b) ... and refuses the old password (invalid credentials)"
else
  fail "(b) the fork refused the old password for another reason: $(tr '\n' '|' <"$WORK/fork-old.out")"
fi
if [ -n "$(findmnt -rn -o TARGET | grep -E '^/run/pcscd' || true)" ]; then
  fail "a mount of the test is left: $(findmnt -rn -o TARGET | grep -E '^/run/pcscd' | tr '\n' ' ')"
fi
pc_note_time "whole script" "$(pc_secs "$T_START" "$(pc_now)")"
finish
