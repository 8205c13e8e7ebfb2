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
for file in /usr/bin/tpm-hmac /usr/share/man/man1/tpm-hmac.1.gz /usr/share/bash-completion/completions/tpm-hmac \
  /usr/share/doc/tpm-hmac/copyright "$DRIVER" /etc/reader.conf.d/keepassxc-tpm; do
  dpkg -L tpm-hmac | grep -qx "$file" || fail "the package does not install $file"
done
# pcscd's entry names the installed driver, and the driver's libraries all resolve
if grep -qx "LIBPATH *$DRIVER" /etc/reader.conf.d/keepassxc-tpm && ! ldd "$DRIVER" | grep -q "not found"; then
  say "PASS: /etc/reader.conf.d/keepassxc-tpm names $DRIVER, whose libraries resolve"
else
  fail "the reader.conf.d entry or the driver's libraries: $(grep LIBPATH /etc/reader.conf.d/keepassxc-tpm; ldd "$DRIVER" | grep 'not found')"
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
stop_swtpm
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tpm-hmac >/dev/null
trap - EXIT
rm -rf "$WORK"
for file in /usr/bin/tpm-hmac "$DRIVER" /etc/reader.conf.d/keepassxc-tpm; do
  [ ! -e "$file" ] || fail "$file is left after purge"
done
say "package: $(basename "$DEB"), $(du -h "$DEB" | cut -f1); removed again"
harness_finish
