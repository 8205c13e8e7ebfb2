#!/usr/bin/env bash
# The main job: set up a fresh Debian 12 machine, build keepassxc-tpm, and use a TPM HMAC key:
# first with Debian's own, unmodified keepassxc-cli through the PC/SC driver (tests/pcsc/demo.sh,
# as root: a private pcscd), then with the KeePassXC fork (tests/keepassxc/demo.sh).
# Uses the machine's TPM (/dev/tpmrm0) or the one in TPM2TOOLS_TCTI; without either it starts a
# software TPM (swtpm) whose state is kept in build/demo/swtpm, behind tpm2-abrmd.
# With --gui it then opens the demo database in the fork's GUI, on the same TPM, and stops the
# software TPM when the GUI closes.
# Usage: scripts/demo.sh [--gui]     (DEMO_SOFTWARE_TPM=1: the software TPM even where a TPM is usable)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
gui=""
case "${1:-}" in
  "") ;;
  --gui)
    gui=1
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
      echo "demo: --gui needs a graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set)" >&2
      exit 2
    fi ;;
  *) echo "usage: $0 [--gui]" >&2; exit 2 ;;
esac
scripts/install-deps.sh
# shellcheck source=swtpm.sh
. scripts/swtpm.sh

echo "== Building tpm-hmac"
cargo build --release --locked -p tpm-hmac
tpm_hmac="$top/target/release/tpm-hmac"

if [ -n "${TPM2TOOLS_TCTI:-}" ] && [ -z "${DEMO_SOFTWARE_TPM:-}" ]; then
  tcti=$TPM2TOOLS_TCTI
elif [ -r /dev/tpmrm0 ] && [ -w /dev/tpmrm0 ] && [ -z "${DEMO_SOFTWARE_TPM:-}" ]; then
  tcti=device:/dev/tpmrm0
else
  if [ -n "${DEMO_SOFTWARE_TPM:-}" ]; then
    echo "== DEMO_SOFTWARE_TPM is set: starting a software TPM (swtpm gives no security; demo only)"
  elif [ -e /dev/tpmrm0 ]; then
    echo "== /dev/tpmrm0 exists but you may not use it (add yourself to its group, e.g. tss, and log in again);"
    echo "   using a software TPM instead"
  else
    echo "== No TPM device here: starting a software TPM (swtpm gives no security; demo only)"
  fi
  start_swtpm "$top/build/demo/swtpm"
  trap 'stop_abrmd; stop_swtpm' EXIT
  tcti=$SWTPM_TCTI
  # A resource manager in front of it, as /dev/tpmrm0 is for a real TPM: a program killed mid-way
  # then leaves nothing loaded, and the GUI and keepassxc-cli can share the simulator.
  if start_abrmd "$top/build/demo/abrmd" "$SWTPM_TCTI"; then
    tcti=$ABRMD_TCTI
  else
    echo "== tpm2-abrmd did not start: using the simulator without a resource manager"
  fi
  # The simulator's keys get their own metadata file, apart from the real TPM's.
  export KEEPASSXC_TPM_METADATA="$top/build/demo/keys.json"
fi
export TPM2TOOLS_TCTI=$tcti
echo "== TPM: $tcti"

handle=$("$tpm_hmac" list --json | python3 -c 'import json,sys; k=json.load(sys.stdin); print(k[0]["handle"] if k else "")')
if [ -z "$handle" ]; then
  echo "== Creating an HMAC-SHA1 key inside the TPM"
  handle=$("$tpm_hmac" create)
fi
"$tpm_hmac" list
serial=$(( handle ))
seed=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "== Challenge (a 32-byte KDF seed, as KeePassXC sends): $seed"
echo "   response: $("$tpm_hmac" challenge --handle "$handle" --hex "$seed")"

# Stock KeePassXC first: Debian's own keepassxc-cli through the PC/SC driver (no fork build needed)
rc=0
tests/pcsc/demo.sh "$handle" || rc=$?
case $rc in
  0) ;;
  77) echo "== The stock KeePassXC part could not run here (the reason is above); going on with the fork" ;;
  *) exit "$rc" ;;
esac

if [ -x tests/keepassxc/demo.sh ]; then
  DEMO_GUI=$gui tests/keepassxc/demo.sh "$handle"
else
  echo "== KeePassXC: use this key as hardware key 'TPM 2.0 … [$serial] - Slot 1', or keepassxc-cli --yubikey 1:$serial"
fi
