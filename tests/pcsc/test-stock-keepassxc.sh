#!/usr/bin/env bash
# Issue 23, "Tests": stock, unmodified KeePassXC of this machine (Debian 12's keepassxc 2.7.4; when
# missing, installed with apt for the test and purged again at its end) opens a database protected
# by a password plus a TPM key through the reader driver in a pcscd started by hand, and refuses it
# without the key. (Debian 12, 13 and sid as their own pcscd units run it, with the package
# installed: test-booted-pcscd.sh.)
# A key with a known secret is imported into a private swtpm and enabled (`tpm-hmac pcsc enable`);
# make-db.py makes the held-out database (kdbxtool, the response computed in software from the
# secret); a private pcscd (private-pcscd.sh: own mount namespace, own /run/pcscd, own reader
# configuration) loads the driver, and keepassxc-cli (stock-client.sh) must list "Bank" and "Mail"
# with `--yubikey 1:<serial>` and the right password, and refuse a wrong password, no --yubikey,
# another serial and slot 2. pcsc_scan must list the driver's reader and its card.
# The times of each part are printed at the end. The machine's own pcscd is never touched.
#
# Usage: tests/pcsc/test-stock-keepassxc.sh [bookworm]
# Exit codes: 0 pass, 1 fail, 2 usage, 77 skip (not root; not Debian 12; no Python >= 3.12).
set -euo pipefail
case "${1:-bookworm}" in
  bookworm) ;;
  *) echo "usage: $0 [bookworm]   (other releases: tests/pcsc/test-booted-pcscd.sh RELEASE)" >&2; exit 2 ;;
esac
PC_RELEASE=bookworm
EXPECT_VERSION=2.7
PC_TEST=stock-keepassxc
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
T_START=$(pc_now)
pc_need_root
pc_need_tools unshare python3

# Debian's own keepassxc, pcscd and pcsc-tools; those missing are installed for this test and
# purged again at its end (tests/packaging/test-keepassxc-deb.sh needs a machine without keepassxc).
pc_stock_keepassxc

# ---- the key, the database ----
pc_setup_key "stock-$PC_RELEASE"
pc_timed "venv" pc_venv
pc_timed "make-db (kdbxtool, software HMAC)" pc_make_db "$WORK/held-out.kdbx"
printf '%s\n' "not the password" >"$WORK/wrong-password"

# ---- the client's files, pcscd's configuration, and the run ----
CLIENT=$WORK/client
mkdir -p "$CLIENT"
pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
cp "$WORK/held-out.kdbx" "$WORK/password" "$WORK/wrong-password" "$PC_HERE/stock-client.sh" "$CLIENT/"
say "pcscd (private) and the machine's keepassxc-cli"
rc=0
pc_timed "private pcscd + keepassxc-cli runs" pc_private_pcscd --log "$WORK/pcscd.log" "$WORK/reader.conf.d" \
  bash "$CLIENT/stock-client.sh" "$CLIENT" "$PC_SERIAL" >"$WORK/client.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "the private pcscd run ended with $rc: $(tail -5 "$WORK/client.out" | tr '\n' '|')"

# ---- the checks ----
pc_check_stock_client "$WORK/client.out" "$EXPECT_VERSION" "$WORK/pcscd.log"
if [ -n "$(findmnt -rn -o TARGET | grep -E "^/run/pcscd" || true)" ]; then
  fail "a mount of the test is left: $(findmnt -rn -o TARGET | grep -E "^/run/pcscd" | tr '\n' ' ')"
fi
pc_note_time "whole script" "$(pc_secs "$T_START" "$(pc_now)")"
finish
