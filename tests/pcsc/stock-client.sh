#!/bin/bash
# The client half of test-stock-keepassxc.sh (issue 23): runs beside a private pcscd (on the machine,
# or inside a Debian chroot) and uses the installed, unmodified keepassxc-cli and pcsc_scan there.
# Prints sections "=== NAME", each followed by what the command printed (stdout and stderr) and a
# last line "rc=N secs=S"; test-stock-keepassxc.sh checks them. Not a test on its own.
#
# Usage: stock-client.sh DIR SERIAL
#   DIR holds held-out.kdbx, password, wrong-password; SERIAL is the key's KeePassXC serial.
# Exit codes: 0 (the checks are made by the caller), 2 usage.
set -u
[ $# -eq 2 ] || { echo "usage: $0 DIR SERIAL" >&2; exit 2; }
DIR=$1 SERIAL=$2
DB=$DIR/held-out.kdbx

now() { date +%s.%N; }
run() {
  local name=$1 t0 rc=0
  shift
  echo "=== $name"
  t0=$(now)
  "$@" 2>&1 || rc=$?
  echo "rc=$rc secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')"
}
# The card is there once pcscd's reader thread has seen it (the driver powers it up on its first
# poll): up to 10 s.
wait_card() {
  local i
  for i in $(seq 100); do
    if timeout 5 pcsc_scan -c -t 1 2>/dev/null </dev/null | grep -q "Card state: Card inserted"; then
      echo "card present after ${i} look(s)"
      return 0
    fi
    sleep 0.1
  done
  echo "no card in 10 s"
  return 1
}

export HOME=$DIR/home XDG_CONFIG_HOME=$DIR/home/.config XDG_CACHE_HOME=$DIR/home/.cache
mkdir -p "$HOME"
run "versions" sh -c 'keepassxc-cli --version; pcscd --version 2>&1 | head -1'
run "wait card" wait_card
run "readers" timeout 10 pcsc_scan -r
run "cards" timeout 10 pcsc_scan -c -t 1
run "open" keepassxc-cli ls --yubikey "1:$SERIAL" "$DB" <"$DIR/password"
run "wrong password" keepassxc-cli ls --yubikey "1:$SERIAL" "$DB" <"$DIR/wrong-password"
run "without key" keepassxc-cli ls "$DB" <"$DIR/password"
run "other serial" keepassxc-cli ls --yubikey "1:$((SERIAL + 1))" "$DB" <"$DIR/password"
run "slot 2" keepassxc-cli ls --yubikey "2:$SERIAL" "$DB" <"$DIR/password"
run "show Bank" keepassxc-cli show -s --yubikey "1:$SERIAL" "$DB" Bank <"$DIR/password"
exit 0
