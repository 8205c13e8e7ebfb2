#!/usr/bin/env bash
# Issue 23, "Tests": yubikit (PyPI yubikey-manager) through the reader driver gives the response
# `tpm-hmac challenge` gives, and the serial is the key's KeePassXC serial (the persistent handle as
# a number). A key with a known secret is imported into a private swtpm and enabled; a private pcscd
# (private-pcscd.sh: own mount namespace and /run/pcscd, the machine's untouched) loads the driver;
# inside it, yubikit-client.py finds the reader with ykman.pcsc.list_devices, opens a
# SmartCardConnection and asks YubiOtpSession for get_serial() and calculate_hmac_sha1(SLOT.ONE, …).
# yubikit pads a challenge to 64 bytes with a byte unlike its last (0x00, or 0x01 after a 0x00), so
# a variable-length slot hashes the challenge as given; `tpm-hmac challenge` applies KeePassXC's
# padding (PKCS#7). Both agree, and agree with a software HMAC-SHA1 of the secret, wherever the two
# paddings hash the same bytes; for a 32-byte challenge ending in 0x20 (where they do not) yubikit's
# answer equals the CLI's for the challenge zero-padded to 64 bytes and the software HMAC of the
# challenge itself. Slot 2 is refused (not configured), as on a YubiKey with one slot programmed.
#
# Usage: tests/pcsc/test-yubikit.sh
# Exit codes: 0 pass, 1 fail (also when pip cannot install yubikey-manager), 77 skip (not root; no
# Python >= 3.12).
set -euo pipefail
PC_TEST=yubikit
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
T_START=$(pc_now)
pc_need_root
pc_need_tools unshare pcscd python3
pc_setup_key yubikit
pc_timed "venv (kdbxtool, yubikey-manager)" pc_venv yubikey-manager

# The challenges (hex): a 32-byte KDF-seed-like one (its last byte is not a padding byte), a 64-byte
# one, one of 1 byte 0x00 (yubikit pads it with 0x01), a 20-byte one, and the disagreeing case: 32
# bytes ending in 0x20.
C_SEED=$(python3 -c 'print(bytes(range(101, 133)).hex())')
C_FULL=$(python3 -c 'print(bytes(range(200, 256)).hex() + bytes(range(1, 9)).hex())')
C_ZERO=00
C_SHORT=$(python3 -c 'print(bytes(range(7, 27)).hex())')
C_SPACE=$(python3 -c 'print((bytes(range(70, 101)) + b" ").hex())')
C_SPACE_ZEROS=$(python3 -c 'import sys; print(sys.argv[1] + "00" * 32)' "$C_SPACE")
C_SPACE_TRIMMED=$(python3 -c 'import sys; print(bytes.fromhex(sys.argv[1]).rstrip(b" ").hex())' "$C_SPACE")

# The CLI's answers first: the driver keeps its own connection to swtpm while pcscd runs.
t0=$(pc_now)
declare -A CLI
for c in "$C_SEED" "$C_FULL" "$C_ZERO" "$C_SHORT" "$C_SPACE" "$C_SPACE_ZEROS"; do
  CLI[$c]=$(tpm_hmac challenge --handle "$PC_HANDLE" --hex "$c") || die "tpm-hmac challenge --hex $c failed"
done
pc_note_time "tpm-hmac challenge x6" "$(pc_secs "$t0" "$(pc_now)")"

mkdir -p "$WORK/reader.conf.d"
pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
rc=0
pc_timed "private pcscd + yubikit" pc_private_pcscd --log "$WORK/pcscd.log" "$WORK/reader.conf.d" \
  sh -c 'for i in $(seq 50); do timeout 5 pcsc_scan -c -t 1 2>/dev/null </dev/null | grep -q "Card inserted" && break; sleep 0.1; done; exec "$@"' _ \
  "$PC_PY" "$PC_HERE/yubikit-client.py" "KeePassXC TPM" "$C_SEED" "$C_FULL" "$C_ZERO" "$C_SHORT" "$C_SPACE" \
  >"$WORK/yubikit.json" 2>"$WORK/yubikit.err" || rc=$?
[ "$rc" -eq 0 ] || die "yubikit-client.py ended with $rc: $(cat "$WORK/yubikit.json" "$WORK/yubikit.err" | tail -5 | tr '\n' '|'); pcscd: $(tail -5 "$WORK/pcscd.log" | tr '\n' '|')"
json() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$WORK/yubikit.json" "$@"; }
say "yubikit: transport $(json transport), version $(json version), $(json secs) s for the session"

serial=$(json serial)
if [ "$serial" = "$PC_SERIAL" ]; then
  pass "YubiOtpSession.get_serial() is $serial, the handle $PC_HANDLE as a number"
else
  fail "get_serial() gave $serial, not $PC_SERIAL"
fi
if [ "$(json slot1_configured)" = True ] && [ "$(json slot2_configured)" = False ]; then
  pass "the config state says slot 1 is programmed, slot 2 is not"
else
  fail "config state: slot 1 $(json slot1_configured), slot 2 $(json slot2_configured)"
fi
# What a variable-length slot hashes for a challenge yubikit sends: yubikit's padding to 64 bytes,
# then the slot drops the block's last byte and every byte before it that equals it (so a 64-byte
# challenge loses its last byte, as on a YubiKey).
yubikit_message() {
  python3 -c 'import sys
c = bytes.fromhex(sys.argv[1])
block = c.ljust(64, b"\1" if c.endswith(b"\0") else b"\0")
print(block.rstrip(block[-1:]).hex())' "$1"
}
i=0
for pair in "seed:$C_SEED" "64 bytes:$C_FULL" "one 0x00:$C_ZERO" "20 bytes:$C_SHORT"; do
  name=${pair%%:*}
  c=${pair#*:}
  got=$(json responses "$i")
  software=$(pc_software_hmac "$(yubikit_message "$c")")
  if [ "$got" = "${CLI[$c]}" ] && [ "$got" = "$software" ]; then
    pass "calculate_hmac_sha1(1, $name) = tpm-hmac challenge = software HMAC-SHA1 ($got)"
  else
    fail "calculate_hmac_sha1(1, $name): yubikit $got, tpm-hmac ${CLI[$c]}, software $software"
  fi
  i=$((i + 1))
done
got=$(json responses 4)
[ "$(yubikit_message "$C_SPACE")" = "$C_SPACE" ] || fail "the test's own rule: yubikit hashes $C_SPACE as given"
if [ "$got" = "${CLI[$C_SPACE_ZEROS]}" ] && [ "$got" = "$(pc_software_hmac "$C_SPACE")" ] &&
  [ "${CLI[$C_SPACE]}" = "$(pc_software_hmac "$C_SPACE_TRIMMED")" ] && [ "$got" != "${CLI[$C_SPACE]}" ]; then
  pass "a challenge ending in 0x20: yubikit's answer is the HMAC of the challenge as given (= tpm-hmac challenge of it zero-padded to 64 bytes), KeePassXC's padding drops the 0x20 (= tpm-hmac challenge of it), as on a YubiKey"
else
  fail "challenge ending in 0x20: yubikit $got, tpm-hmac zero-padded ${CLI[$C_SPACE_ZEROS]}, software $(pc_software_hmac "$C_SPACE"); tpm-hmac as given ${CLI[$C_SPACE]}, software trimmed $(pc_software_hmac "$C_SPACE_TRIMMED")"
fi
slot2=$(json slot2)
if [[ "$slot2" == "error: "* ]] && [[ "$slot2" != *NotSupportedError* ]]; then
  pass "slot 2 is refused ($slot2)"
else
  fail "slot 2 answered $slot2"
fi
pc_note_time "whole script" "$(pc_secs "$T_START" "$(pc_now)")"
finish
