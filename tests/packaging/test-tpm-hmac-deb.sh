#!/usr/bin/env bash
# Issue 14: the tpm-hmac Debian package. Builds it (scripts/build-deb.sh), checks it with lintian
# (errors fail, the rest is reported), installs it with apt as a user would, uses /usr/bin/tpm-hmac
# against a private swtpm, checks the man page, completions and the PC/SC driver's files (the driver
# itself is used through pcscd by tests/pcsc), and removes the package again.
# Needs root (apt-get install); otherwise SKIP (77).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HARNESS_LABEL=deb
# shellcheck source=../lib/harness.sh
. "$ROOT/tests/lib/harness.sh"
if [ "$(id -u)" -ne 0 ]; then
  say "SKIP: installing a package needs root"
  exit 77
fi
if dpkg-query -W -f='${Status}' tpm-hmac 2>/dev/null | grep -q "ok installed"; then
  say "SKIP: a tpm-hmac package is installed already; not touching it"
  exit 77
fi
"$ROOT/scripts/build-deb.sh"
DEB=$(ls "$ROOT"/build/deb/tpm-hmac_*.deb | head -1)

lintian_out=$(lintian --allow-root "$DEB" 2>&1 || true)
say "lintian: ${lintian_out:-no findings}"
if grep -q '^E:' <<<"$lintian_out"; then fail "lintian reports errors"; fi

# shellcheck source=../../scripts/swtpm.sh
. "$ROOT/scripts/swtpm.sh"
WORK=$(mktemp -d)
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  stop_swtpm
  rm -rf "$WORK"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tpm-hmac >/dev/null 2>&1 || true
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >/dev/null
say "PASS: apt-get install $(basename "$DEB")"
DRIVER=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/keepassxc-tpm/libkeepassxc_tpm_pcsc.so
ENTRY=/etc/reader.conf.d/keepassxc-tpm
CONFIG=/etc/keepassxc-tpm/pcsc.json
for file in /usr/bin/tpm-hmac /usr/share/man/man1/tpm-hmac.1.gz /usr/share/bash-completion/completions/tpm-hmac \
  /usr/share/doc/tpm-hmac/copyright "$DRIVER" /usr/share/keepassxc-tpm/reader.conf.d/keepassxc-tpm \
  /usr/lib/systemd/system/pcscd.service.d/keepassxc-tpm.conf; do
  dpkg -L tpm-hmac | grep -qx "$file" || fail "the package does not install $file"
done
# Arriving: the postinst put the reader entry in place only with the driver's file there (a missing
# DEVICENAME file stops pcscd), and that file serves nothing yet.
if [ -f "$ENTRY" ] && [ "$(stat -c '%U %a' "$CONFIG" 2>/dev/null)" = "root 644" ] &&
  /usr/bin/tpm-hmac pcsc status | grep -q "no key enabled\|TPM"; then
  pass "after install: $ENTRY, and $CONFIG (root, 644) serving no key: $(/usr/bin/tpm-hmac pcsc status | head -1)"
else
  fail "after install: entry $(ls "$ENTRY" 2>&1), file $(stat -c '%U %a' "$CONFIG" 2>&1)"
fi
# pcscd (a private one, on the machine's reader.conf.d) starts with the installed entry and lists
# the reader, with no card in it.
pcscd_lists() { "$ROOT/tests/pcsc/private-pcscd.sh" --log "$WORK/pcscd.log" /etc/reader.conf.d timeout 10 pcsc_scan -r; }
# pcscd's entry names the installed driver, and the driver's libraries all resolve
if grep -qx "LIBPATH *$DRIVER" /etc/reader.conf.d/keepassxc-tpm && ! ldd "$DRIVER" | grep -q "not found"; then
  say "PASS: /etc/reader.conf.d/keepassxc-tpm names $DRIVER, whose libraries resolve"
else
  fail "the reader.conf.d entry or the driver's libraries: $(grep LIBPATH /etc/reader.conf.d/keepassxc-tpm; ldd "$DRIVER" | grep 'not found')"
fi

if out=$(pcscd_lists 2>&1) && grep -q "KeePassXC TPM" <<<"$out"; then
  pass "a pcscd started right after install lists the reader (no key enabled)"
else
  fail "pcscd with the installed entry: $out; $(tail -3 "$WORK/pcscd.log" | tr '\n' '|')"
fi

start_swtpm "$WORK/swtpm"
export TPM2TOOLS_TCTI=$SWTPM_TCTI KEEPASSXC_TPM_METADATA=$WORK/keys.json
handle=$(/usr/bin/tpm-hmac create 2>"$WORK/create.err") || fail "the installed tpm-hmac create failed: $(cat "$WORK/create.err")"
if [ -n "$handle" ] && /usr/bin/tpm-hmac list | grep -q "^$handle" && [ "$(/usr/bin/tpm-hmac challenge --handle "$handle" --hex 00ff | wc -c)" -eq 41 ]; then
  say "PASS: the installed /usr/bin/tpm-hmac creates, lists and answers ($handle)"
else
  fail "the installed /usr/bin/tpm-hmac does not work against swtpm"
fi
zcat /usr/share/man/man1/tpm-hmac.1.gz | grep -q '^\.TH tpm-hmac 1' || fail "the man page is not a man page"

# Leaving and coming back: remove keeps the enabled keys but takes the entry away (an entry naming
# a missing library stops pcscd); a reinstall serves them again; purge forgets them.
/usr/bin/tpm-hmac pcsc enable --handle "$handle" >"$WORK/enable.out" 2>&1 || fail "pcsc enable: $(cat "$WORK/enable.out")"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq tpm-hmac >/dev/null
if [ ! -e "$ENTRY" ] && grep -q "$handle" "$CONFIG" && "$ROOT/tests/pcsc/private-pcscd.sh" /etc/reader.conf.d true; then
  pass "after remove: no reader entry, pcscd starts, the enabled key is kept in $CONFIG"
else
  fail "after remove: entry $(ls "$ENTRY" 2>&1), $CONFIG $(ls "$CONFIG" 2>&1)"
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >/dev/null
/usr/bin/tpm-hmac pcsc status | grep -q "served   $handle" && pass "reinstalled: the key enabled before is served again" ||
  fail "reinstalled: $(/usr/bin/tpm-hmac pcsc status | tr '\n' '|')"
stop_swtpm
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tpm-hmac >/dev/null
for file in /usr/bin/tpm-hmac "$DRIVER" "$ENTRY" /etc/keepassxc-tpm /usr/lib/systemd/system/pcscd.service.d/keepassxc-tpm.conf; do
  [ ! -e "$file" ] || fail "$file is left after purge"
done
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >/dev/null
/usr/bin/tpm-hmac pcsc status | grep -q "served" && fail "purged and reinstalled: a key is served: $(/usr/bin/tpm-hmac pcsc status | tr '\n' '|')" ||
  pass "purged and reinstalled: nothing is served until root enables a key again"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tpm-hmac >/dev/null
trap - EXIT
rm -rf "$WORK"
say "package: $(basename "$DEB"), $(du -h "$DEB" | cut -f1); removed again"
harness_finish
