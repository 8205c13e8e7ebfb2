#!/usr/bin/env bash
# Issue 23: the reader driver inside Debian's own pcscd, against a private swtpm. A key with a known
# secret is imported and enabled (`tpm-hmac pcsc enable`) in a private config file; a private pcscd
# (its own mount namespace with a tmpfs on /run/pcscd, its own reader.conf.d) loads the driver, and
# scriptor (pcsc-tools) sends KeePassXC's APDUs: the answers are the HMAC-SHA1 of the secret. Then
# `pcsc disable` takes the card out and `enable` puts it back, without restarting pcscd.
# Needs root (mount namespace, pcscd); otherwise SKIP (77). The machine's own pcscd is not touched.
set -euo pipefail
PC_TEST=pcsc
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
pc_need_root
pc_need_tools pcscd scriptor unshare python3
# Built, a swtpm of its own, the key imported and enabled (PC_CONFIG) in build/pcsc/private-pcscd.
pc_setup_key private-pcscd
status_out=$(tpm_hmac pcsc status --config "$PC_CONFIG")
grep -q "served   $PC_HANDLE" <<<"$status_out" || fail "pcsc status does not list the key: $status_out"
pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
# The namespace's own script stops pcscd; this is for when that script itself was killed.
kill_pcscd() { if [ -s "$1" ]; then kill "$(cat "$1")" 2>/dev/null || true; fi; }
pc_on_exit kill_pcscd "$WORK/pcscd.pid"

# KeePassXC's APDUs: SELECT, GET_SERIAL (with its Le of 6), slot 2, and a 64-byte PKCS#7 block of a
# 32-byte seed; the expected answers, computed here with Python's hmac.
SEED=$(python3 -c 'print(bytes(range(101, 133)).hex())')
python3 - "$SEED" >"$WORK/apdus" <<'EOF'
import sys
seed = bytes.fromhex(sys.argv[1])
block = seed + bytes([32]) * 32
for apdu in ["00 A4 04 00 07 A0 00 00 05 27 20 01", "00 01 10 00 06", "00 01 38 00 40 " + " ".join(["00"] * 64),
             "00 01 30 00 40 " + block.hex(" ").upper()]:
    print(apdu)
EOF
EXPECTED=$(python3 -c 'import hmac, hashlib, sys; print(hmac.new(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), hashlib.sha1).hexdigest())' "$PC_SECRET" "$SEED")

# Inside the namespace: a tmpfs on /run/pcscd, pcscd on the private reader.conf.d, the probes, and
# pcscd stopped by PID and the tmpfs unmounted on every path. Prints what scriptor answered.
cat >"$WORK/inside.sh" <<'EOF'
set -euo pipefail
WORK=$1 CONFIG=$2 TPM_HMAC=$3 HANDLE=$4 READER=$5 TCTI=$6
# A tmpfs on /run/pcscd; where the machine has no /run/pcscd, on /run (in this namespace only),
# so that nothing is created on the machine's /run.
if [ -d /run/pcscd ]; then
  mount -t tmpfs -o mode=0755 tmpfs /run/pcscd
else
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir /run/pcscd
fi
pcscd_pid=
# shellcheck disable=SC2317 # run by the EXIT trap
stop() {
  if [ -n "$pcscd_pid" ]; then kill "$pcscd_pid" 2>/dev/null || true; wait "$pcscd_pid" 2>/dev/null || true; fi
  : >"$WORK/pcscd.pid"
  umount /run/pcscd 2>/dev/null || umount /run 2>/dev/null || true
}
trap stop EXIT
pcscd --foreground -c "$WORK/reader.conf.d" >"$WORK/pcscd.log" 2>&1 &
pcscd_pid=$!
echo "$pcscd_pid" >"$WORK/pcscd.pid"
for _ in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.05; done
card() { timeout 20 scriptor -r "$READER" "$WORK/apdus" 2>&1 || true; }
# The reader's poll (every 0.4 s) powers the card up: give it a moment after a change.
sleep 1
echo "=== first"; card
"$TPM_HMAC" --tcti "$TCTI" pcsc disable --handle "$HANDLE" --config "$CONFIG" 2>/dev/null
sleep 2
echo "=== disabled"; card
"$TPM_HMAC" --tcti "$TCTI" pcsc enable --handle "$HANDLE" --config "$CONFIG" 2>/dev/null
sleep 2
echo "=== enabled again"; card
# pcscd restarted (as after an upgrade or a crash): a new pcscd loads the driver again.
kill "$pcscd_pid"; wait "$pcscd_pid" 2>/dev/null || true
for _ in $(seq 100); do [ ! -S /run/pcscd/pcscd.comm ] && break; sleep 0.05; done
pcscd --foreground -c "$WORK/reader.conf.d" >>"$WORK/pcscd.log" 2>&1 &
pcscd_pid=$!
echo "$pcscd_pid" >"$WORK/pcscd.pid"
for _ in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.05; done
sleep 1
echo "=== restarted"; card
EOF
unshare -m --propagation private bash "$WORK/inside.sh" "$WORK" "$PC_CONFIG" "$TPM_HMAC" "$PC_HANDLE" \
  "$PC_READER" "$SWTPM_TCTI" >"$WORK/out" 2>&1 || fail "the private pcscd run failed: $(cat "$WORK/out")"
[ -z "$(findmnt -n /run/pcscd 2>/dev/null | grep tmpfs || true)" ] || fail "a tmpfs is left on the machine's /run/pcscd"

section() { awk -v s="=== $1" '$0 == s {on = 1; next} /^===/ {on = 0} on' "$WORK/out"; }
# scriptor prints each answer as "< XX XX ... : <meaning>", 16 bytes a line; the bytes without
# spaces, one answer a line.
answers() {
  section "$1" | awk '
    /^< / { buf = substr($0, 3); on = 1 }
    on && !/^< / { buf = buf " " $0 }
    on && / : / { sub(/ : .*/, "", buf); gsub(/ /, "", buf); print tolower(buf); on = 0 }'
}
# The status block: protocol level 3.0.0 (HMAC challenge-response over CCID, what yubikit needs),
# programming sequence 1, slot 1 valid.
status_block=030000010100
expected_answers=$(printf '%s\n' "${status_block}9000" "81000100""9000" "6a82" "${EXPECTED}9000")
if [ "$(answers first)" = "$expected_answers" ]; then
  pass "stock pcscd with the driver: SELECT, serial, slot 2 not configured, and the TPM's HMAC-SHA1 of the secret"
else
  fail "unexpected answers through pcscd: $(section first | tr '\n' '|'); expected $(tr '\n' ' ' <<<"$expected_answers")"
fi
if [ -n "$(section disabled)" ] && [ -z "$(answers disabled)" ]; then
  pass "pcsc disable takes the card out of a running pcscd ($(section disabled | tail -1))"
else
  fail "the card still answered after disable: $(section disabled | tr '\n' '|')"
fi
if [ "$(answers "enabled again")" = "$expected_answers" ]; then
  pass "pcsc enable puts it back without restarting pcscd"
else
  fail "after enabling again: $(section "enabled again" | tr '\n' '|')"
fi
if [ "$(answers restarted)" = "$expected_answers" ]; then
  pass "after pcscd restarted, the driver answers the same"
else
  fail "after pcscd restarted: $(section restarted | tr '\n' '|')"
fi
if grep -q "keepassxc-tpm-pcsc: .*$(printf '%s' "$EXPECTED" | cut -c1-8)" "$WORK/pcscd.log"; then
  fail "a response reached pcscd's log"
fi

[ "$HARNESS_FAILURES" -eq 0 ] || say "pcscd's log: $(tail -5 "$WORK/pcscd.log" | tr '\n' '|')"
finish
