#!/usr/bin/env bash
# Issue 23, "Tests": stock, unmodified KeePassXC opens a database protected by a password plus a TPM
# key through the reader driver, and refuses it without the key.
#   bookworm: the machine's own Debian 12 keepassxc (2.7.4; when missing, installed with apt for the
#             test and purged again at its end);
#   trixie:   Debian 13's keepassxc (2.7.10) in a debootstrap chroot (tests/pcsc/make-chroot.sh);
#   sid:      sid's keepassxc (2.8.0, Qt 6) in a debootstrap chroot.
# A key with a known secret is imported into a private swtpm and enabled (`tpm-hmac pcsc enable`);
# make-db.py makes the held-out database (kdbxtool, the response computed in software from the
# secret); a private pcscd (private-pcscd.sh: own mount namespace, own /run/pcscd, own reader
# configuration; in the chroot, the chroot's pcscd) loads the driver, and that release's
# keepassxc-cli (stock-client.sh) must list "Bank" and "Mail" with `--yubikey 1:<serial>` and the
# right password, and refuse a wrong password, no --yubikey, another serial and slot 2. pcsc_scan
# must list the driver's reader and its card. swtpm runs on the machine, on loopback; the chroot
# shares the network namespace, so the driver reaches it through the swtpm TCTI.
# The times of each part are printed at the end. The machine's own pcscd is never touched.
#
# Usage: tests/pcsc/test-stock-keepassxc.sh RELEASE        (bookworm, trixie or sid)
# Exit codes: 0 pass, 1 fail, 2 usage, 77 skip (not root; a chroot or Python >= 3.12 not obtainable).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 RELEASE   (bookworm, trixie or sid)" >&2; exit 2; }
PC_RELEASE=$1
case "$PC_RELEASE" in
  bookworm) EXPECT_VERSION=2.7 ;;
  trixie) EXPECT_VERSION=2.7 ;;
  sid) EXPECT_VERSION=2.8 ;;
  *) echo "test-stock-keepassxc: unknown release $PC_RELEASE (bookworm, trixie or sid)" >&2; exit 2 ;;
esac
PC_TEST=stock-keepassxc
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
T_START=$(pc_now)
pc_need_root
pc_need_tools unshare python3

# Where the chroot's copy of the driver lives: the package's own paths (packaging/pcsc/keepassxc-tpm).
CHROOT_DRIVER=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/keepassxc-tpm/libkeepassxc_tpm_pcsc.so
CHROOT_READER_CONF=/etc/reader.conf.d/keepassxc-tpm
CHROOT_CONFIG=/etc/keepassxc-tpm/pcsc.json

# Puts the driver, its reader.conf.d entry and the enabled keys into the chroot $1, where the
# package puts them. (When the project's .deb is installed here instead, this is the one edit.)
chroot_install_driver() {
  local chroot=$1 deb
  # The project's own package, built on Debian 12 (scripts/build-deb.sh), installed with apt as a
  # user of this release would: it must install there and put the driver where pcscd looks.
  deb=$(ls "$PC_ROOT"/build/deb/tpm-hmac_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || die "no tpm-hmac package in build/deb: run scripts/build-deb.sh first"
  cp "$deb" "$chroot/tmp/tpm-hmac.deb"
  pc_on_exit chroot_remove_driver "$chroot"
  if ! chroot "$chroot" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    /tmp/tpm-hmac.deb >"$WORK/package-install.log" 2>&1; then
    sed 's/^/    /' "$WORK/package-install.log" >&2
    die "the tpm-hmac package does not install in $PC_RELEASE"
  fi
  chroot "$chroot" dpkg -L tpm-hmac | grep -qx "$CHROOT_DRIVER" || die "the package installed no $CHROOT_DRIVER in $PC_RELEASE"
  # The entry is the postinst's, written once the driver's (empty) file exists.
  [ -f "$chroot$CHROOT_READER_CONF" ] && [ -f "$chroot$CHROOT_CONFIG" ] ||
    die "the package's postinst wrote no $CHROOT_READER_CONF or no $CHROOT_CONFIG in $PC_RELEASE"
  grep -q '"keys": {}' "$chroot$CHROOT_CONFIG" || die "the freshly installed $CHROOT_CONFIG serves keys already"
  grep -q "^DEVICENAME   $CHROOT_CONFIG\$" "$chroot$CHROOT_READER_CONF" ||
    die "the package's pcscd entry names another file than $CHROOT_CONFIG"
  pass "apt-get install $(basename "$deb") in $PC_RELEASE: $CHROOT_DRIVER and $CHROOT_READER_CONF"
  mkdir -p "$chroot$(dirname "$CHROOT_CONFIG")"
  chmod 0755 "$chroot$(dirname "$CHROOT_CONFIG")"
  install -o root -g root -m 0644 "$PC_CONFIG" "$chroot$CHROOT_CONFIG"
}
# shellcheck disable=SC2317 # run by the EXIT trap
chroot_remove_driver() {
  chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tpm-hmac >/dev/null 2>&1 || true
  rm -f "$1/tmp/tpm-hmac.deb" "$1$CHROOT_CONFIG"
  rmdir "$1$(dirname "$CHROOT_CONFIG")" 2>/dev/null || true
}

# ---- the release's KeePassXC: the machine's, or a chroot ----
CHROOT=""
if [ "$PC_RELEASE" = bookworm ]; then
  # Debian's own keepassxc, pcscd and pcsc-tools; those missing are installed for this test and
  # purged again at its end (tests/packaging/test-keepassxc-deb.sh needs a machine without keepassxc).
  pc_stock_keepassxc
else
  mkdir -p "$PC_BUILD/chroots"
  make_log=$PC_BUILD/chroots/$PC_RELEASE.make.log
  t0=$(pc_now)
  rc=0
  "$PC_HERE/make-chroot.sh" "$PC_RELEASE" 2>&1 | tee "$make_log" || rc=${PIPESTATUS[0]}
  pc_note_time "chroot (make or reuse)" "$(pc_secs "$t0" "$(pc_now)")"
  [ "$rc" -ne 77 ] || skip "no $PC_RELEASE chroot: $(grep SKIP "$make_log" | tail -1)"
  [ "$rc" -eq 0 ] || die "making the $PC_RELEASE chroot failed (see $make_log)"
  CHROOT=$PC_BUILD/chroots/$PC_RELEASE
  # One test at a time in a chroot (the driver's files and the client's directory are shared).
  exec 8>"$PC_BUILD/chroots/$PC_RELEASE.in-use.lock"
  flock 8
fi

# ---- the key, the database ----
pc_setup_key "stock-$PC_RELEASE"
pc_timed "venv" pc_venv
pc_timed "make-db (kdbxtool, software HMAC)" pc_make_db "$WORK/held-out.kdbx"
printf '%s\n' "not the password" >"$WORK/wrong-password"

# ---- the client's files, pcscd's configuration, and the run ----
if [ -z "$CHROOT" ]; then
  CLIENT=$WORK/client
  mkdir -p "$CLIENT"
  pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
  ROOT_ARGS=()
  CONFDIR=$WORK/reader.conf.d
  CLIENT_IN=$CLIENT
else
  t0=$(pc_now)
  chroot_install_driver "$CHROOT"
  missing=$(chroot "$CHROOT" ldd "$CHROOT_DRIVER" 2>&1 | grep "not found" || true)
  [ -z "$missing" ] || die "the driver's libraries are missing in the $PC_RELEASE chroot: $missing"
  tss=$(chroot "$CHROOT" dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'libtss2-*' 2>/dev/null | awk '$1 == "ii" { printf "%s%s %s", sep, $2, $3; sep = ", " }')
  pass "the driver built here finds all its libraries in $PC_RELEASE ($tss)"
  CLIENT_IN=/tmp/keepassxc-tpm-test
  CLIENT=$CHROOT$CLIENT_IN
  rm -rf "$CLIENT"
  mkdir -p "$CLIENT"
  pc_on_exit rm -rf "$CLIENT"
  ROOT_ARGS=(--root "$CHROOT")
  CONFDIR=/etc/reader.conf.d
  pc_note_time "install the driver in the chroot" "$(pc_secs "$t0" "$(pc_now)")"
fi
cp "$WORK/held-out.kdbx" "$WORK/password" "$WORK/wrong-password" "$PC_HERE/stock-client.sh" "$CLIENT/"
say "pcscd (private) and $PC_RELEASE's keepassxc-cli"
rc=0
pc_timed "private pcscd + keepassxc-cli runs" pc_private_pcscd "${ROOT_ARGS[@]}" --log "$WORK/pcscd.log" "$CONFDIR" \
  bash "$CLIENT_IN/stock-client.sh" "$CLIENT_IN" "$PC_SERIAL" >"$WORK/client.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "the private pcscd run ended with $rc: $(tail -5 "$WORK/client.out" | tr '\n' '|')"

# ---- the checks ----
pc_check_stock_client "$WORK/client.out" "$EXPECT_VERSION" "$WORK/pcscd.log"
if [ -n "$(findmnt -rn -o TARGET | grep -E "^(/run/pcscd|${CHROOT:-/nonexistent}/)" || true)" ]; then
  fail "a mount of the test is left: $(findmnt -rn -o TARGET | grep -E "^(/run/pcscd|${CHROOT:-/nonexistent}/)" | tr '\n' ' ')"
fi
pc_note_time "whole script" "$(pc_secs "$T_START" "$(pc_now)")"
finish
