#!/usr/bin/env bash
# The stock-KeePassXC part of the README's main job (scripts/demo.sh runs it before the fork, since
# it needs no fork build): the TPM key at HANDLE is enabled for the PC/SC reader driver in a
# private root-owned file, kdbxtool with this project's Python provider makes a database protected
# by a password plus that key (the TPM answers), and Debian 12's own, unmodified keepassxc-cli opens
# it through a private pcscd that loaded the driver (its own mount namespace: the machine's pcscd
# set-up is not touched; tests/pcsc/private-pcscd.sh). Debian's keepassxc is installed for the demo
# when missing and removed again at its end.
#
# Usage: tests/pcsc/demo.sh HANDLE      (TPM2TOOLS_TCTI names the TPM, as for tpm-hmac)
# Exit codes: 0 done, 1 failure, 77 not possible here (not root, not Debian 12, no Python >= 3.12).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HANDLE   (e.g. 0x81000100)" >&2; exit 2; }
HANDLE=$1
SERIAL=$((HANDLE))
PC_TEST=demo
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
pc_need_root
pc_need_tools unshare pcscd
pc_build
pc_fresh_workdir demo
pc_stock_keepassxc

echo "== Stock KeePassXC: enabling the TPM key at $HANDLE for the PC/SC driver (a private file)"
PC_CONFIG=$WORK/etc/pcsc.json
mkdir -p "$WORK/etc" && chmod 0755 "$WORK/etc"
"$TPM_HMAC" pcsc enable --handle "$HANDLE" --config "$PC_CONFIG" 2>&1 | sed 's/^/   /'

echo "== Making a database protected by a password + the TPM key with kdbxtool and keepassxc_tpm.TpmHmac"
pc_venv
"$PC_PY" -m pip install -q --disable-pip-version-check "$PC_ROOT/rust/python" >"$WORK/pip.out" 2>&1 ||
  die "pip install ./rust/python: $(tail -3 "$WORK/pip.out")"
DB=$WORK/stock-demo.kdbx
printf '%s\n' "demo password" >"$WORK/password"
"$PC_PY" "$PC_HERE/demo-db.py" "$HANDLE" "$WORK/password" "$DB"

echo "== Opening it with Debian's own keepassxc-cli $PC_STOCK_VERSION through a private pcscd and the driver"
pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
# The client waits for the card (pcscd's first poll), then lists the entries.
cat >"$WORK/open.sh" <<CLIENT
#!/bin/sh
for i in \$(seq 100); do
  timeout 5 pcsc_scan -c -t 1 </dev/null 2>/dev/null | grep -q "Card state: Card inserted" && break
  sleep 0.1
done
export HOME=$WORK/home
mkdir -p "\$HOME"
echo "   \$ keepassxc-cli ls --yubikey 1:$SERIAL $DB"
keepassxc-cli ls --yubikey "1:$SERIAL" "$DB" <"$WORK/password" 2>&1 | sed 's/^/   /'
CLIENT
chmod 0755 "$WORK/open.sh"
pc_private_pcscd --log "$WORK/pcscd.log" "$WORK/reader.conf.d" "$WORK/open.sh" | tee "$WORK/open.out"
grep -q "Example bank" "$WORK/open.out" || die "stock keepassxc-cli did not open $DB (pcscd's log: $WORK/pcscd.log)"
echo "== Stock KeePassXC opened it: with your distribution's KeePassXC, run once"
echo "   sudo tpm-hmac pcsc enable --handle $HANDLE    (the installed package's driver, /etc/keepassxc-tpm/pcsc.json)"
echo "   and pick \"(PCSC) … [$SERIAL] … Slot 1\" as the hardware key (README: Stock KeePassXC)"
