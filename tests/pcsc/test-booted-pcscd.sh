#!/usr/bin/env bash
# Issue 30: the tpm-hmac package and stock KeePassXC as Debian really runs pcscd. RELEASE's root file
# system (make-chroot.sh) is booted with systemd as PID 1 (container.sh), with Debian's own,
# unmodified pcscd.socket and pcscd.service (Debian 13 and sid: their sandbox and polkit), and a TPM
# node /dev/tpmrm0 of Debian's permissions (tss:tss 0660; tpm-node.py relays it to a swtpm on this
# machine's loopback, flushing what a client leaves at close as the kernel's resource manager does).
# In the running system, as a user would:
#   arriving   apt installs the project's .deb (its maintainer scripts meet a live systemd); pcscd
#              then starts at once through its socket, shows the driver's reader and no card;
#   enable     tpm-hmac imports a key of known secret and `pcsc enable --user alice` serves it;
#   unlock     socket activation starts pcscd; stock keepassxc-cli (as root) opens the held-out
#              database with password + key and refuses it otherwise (stock-client.sh), and again
#              after pcscd exited and was started anew, three times (nothing piles up in the TPM);
#   who        alice (named with --user) opens it; bob is refused, even when another polkit rule
#              gives him every other card (Debian 13, sid); on Debian 12, which has no polkit in
#              pcscd, enable says every local user may use the key, and bob gets in;
#   bad input  the drop-in gone (Debian 13, sid), the TPM node gone, the driver's file unreadable,
#              pcscd killed in the middle of an unlock: each gives the driver's log line and doctor's
#              cause, never a crash of pcscd, and the TPM's lockout counter stays 0;
#   key file   a key kept in a TSS2 key file under /root (hidden from pcscd), enabled: it opens too;
#   abrmd      with tpm2-abrmd (on the system D-Bus) as the driver's TCTI, the database opens too;
#   leaving    apt remove leaves pcscd starting and serving; purge leaves nothing of the package;
#              a reinstall serves no card until root enables again;
#   upgrade    from the previous package (0.1.0-1: the reader entry a conffile, no maintainer
#              scripts, the driver's file 0600): the enabled key is kept and opens the database.
#
# Usage: tests/pcsc/test-booted-pcscd.sh RELEASE        (bookworm, trixie or sid)
# Exit codes: 0 pass, 1 fail, 2 usage, 77 skip (not root; no root file system or Python >= 3.12).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 RELEASE   (bookworm, trixie or sid)" >&2; exit 2; }
PC_RELEASE=$1
case "$PC_RELEASE" in
  bookworm) EXPECT_VERSION=2.7 POLKIT=0 ;;
  trixie) EXPECT_VERSION=2.7 POLKIT=1 ;;
  sid) EXPECT_VERSION=2.8 POLKIT=1 ;;
  *) echo "test-booted-pcscd: unknown release $PC_RELEASE (bookworm, trixie or sid)" >&2; exit 2 ;;
esac
PC_TEST=booted-pcscd
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=container.sh
. "$PC_HERE/container.sh"
T_START=$(pc_now)
pc_need_root
pc_need_tools unshare nsenter python3 tpm2_getcap

CONFIG=/etc/keepassxc-tpm/pcsc.json
ENTRY=/etc/reader.conf.d/keepassxc-tpm
DROP_IN=/usr/lib/systemd/system/pcscd.service.d/keepassxc-tpm.conf
RULE=/etc/polkit-1/rules.d/60-keepassxc-tpm.rules
TCTI=device:/dev/tpmrm0

# ---- the root file system, booted, with a TPM node ----
pc_fresh_workdir "booted-$PC_RELEASE"
DEB=$(ls "$PC_ROOT"/build/deb/tpm-hmac_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1 || true)
[ -n "$DEB" ] || die "no tpm-hmac package in build/deb: run scripts/build-deb.sh first"
"$PC_ROOT/tests/packaging/previous-deb.sh" "$DEB" "$WORK/previous.deb" >"$WORK/previous-deb.out" 2>&1 ||
  die "making the previous package failed: $(tail -3 "$WORK/previous-deb.out" | tr '\n' '|')"
pc_start_swtpm
echo "$PC_SECRET" >"$WORK/secret.hex"
pc_timed "venv" pc_venv
pc_timed "make-db (kdbxtool, software HMAC)" pc_make_db "$WORK/held-out.kdbx"
printf '%s\n' "not the password" >"$WORK/wrong-password"
ct_prepare "$PC_RELEASE" "$DEB" "$WORK/previous.deb" "$WORK/held-out.kdbx" "$WORK/password" "$WORK/wrong-password" \
  "$WORK/secret.hex" "$PC_HERE/stock-client.sh"
rm -f "$ROOTFS/etc/polkit-1/rules.d/70-keepassxc-tpm-test.rules"
t0=$(pc_now)
ct_boot "$ROOTFS" "keepassxc-tpm-$PC_RELEASE"
pc_note_time "boot" "$(pc_secs "$t0" "$(pc_now)")"
for user in alice bob; do
  ct id "$user" >/dev/null 2>&1 || ct useradd -m "$user"
done

doctor() { ct tpm-hmac --tcti "$TCTI" doctor 2>&1 || true; }
# The package's files and anything it or `tpm-hmac pcsc` writes: none may stay after a purge.
left_behind() {
  local path
  for path in "$CONFIG" "$(dirname "$CONFIG")" "$ENTRY" "$DROP_IN" "$RULE" /usr/bin/tpm-hmac \
    "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/keepassxc-tpm" /usr/share/keepassxc-tpm; do
    ct test -e "$path" && echo "$path"
  done
  ct dpkg-query -W -f='${Status}\n' tpm-hmac 2>/dev/null | grep -v '^unknown ok not-installed$' | grep -v '^$' || true
}

node_start
node_perm=$(ct stat -L -c '%U:%G %a' /dev/tpmrm0)
[ "$node_perm" = "tss:tss 660" ] || die "the TPM node is $node_perm, not tss:tss 660 as tpm-udev makes it"
pass "TPM node /dev/tpmrm0 as Debian's tpm-udev makes it ($node_perm), relayed to swtpm"

# ---- arriving: install, before any key is enabled ----
t0=$(pc_now)
apt_in install --no-install-recommends "$SRV/tpm-hmac.deb" || die "apt-get install tpm-hmac.deb failed: $(tail -5 "$WORK/apt.log" | tr '\n' '|')"
pc_note_time "apt-get install" "$(pc_secs "$t0" "$(pc_now)")"
out=$(readers)
if grep -qF "$PC_READER" <<<"$out" && [ "$(pcscd_state)" = active ]; then
  pass "right after apt install, socket activation starts pcscd and it serves: pcsc_scan -r lists \"$PC_READER\""
else
  fail "after apt install pcscd does not serve (pcscd $(pcscd_state), socket $(socket_state)): $(tr '\n' '|' <<<"$out"); journal: $(journal | tail -3 | tr '\n' '|')"
fi
groups=$(ct systemctl show -p SupplementaryGroups --value pcscd.service)
[ "$groups" = tss ] && pass "pcscd's unit has the package's drop-in: SupplementaryGroups=$groups" ||
  fail "pcscd's unit has SupplementaryGroups=\"$groups\", not tss"
if ct timeout 10 pcsc_scan -c -t 1 2>&1 | grep -q "Card inserted"; then
  fail "a card is served before any key was enabled"
else
  pass "no card is served before a key is enabled"
fi

# ---- enable ----
stop_pcscd
ct tpm-hmac --tcti "$TCTI" import --secret-file "$SRV/secret.hex" --handle "$PC_HANDLE" >"$WORK/import.out" 2>&1 ||
  die "tpm-hmac import in the container: $(cat "$WORK/import.out")"
ct tpm-hmac --tcti "$TCTI" pcsc enable --handle "$PC_HANDLE" --user alice >"$WORK/enable.out" 2>&1 ||
  die "tpm-hmac pcsc enable: $(cat "$WORK/enable.out")"
perm=$(ct stat -c '%U:%G %a' "$CONFIG")
[ "$perm" = "root:root 644" ] && pass "pcsc enable wrote $CONFIG ($perm)" || fail "$CONFIG is $perm, not root:root 644"
if [ "$POLKIT" = 1 ]; then
  if ct test -f "$RULE" && ct grep -q '"alice"' "$RULE"; then
    pass "pcsc enable --user alice wrote the polkit rule $RULE"
  else
    fail "no polkit rule naming alice in $RULE: $(cat "$WORK/enable.out" | tr '\n' '|')"
  fi
elif grep -q "every local" "$WORK/enable.out"; then
  pass "pcsc enable says that Debian 12's pcscd lets every local user use the key: $(grep -m1 'every local' "$WORK/enable.out")"
else
  fail "pcsc enable on Debian 12 does not say that every local user may use the key: $(tr '\n' '|' <<<"$(cat "$WORK/enable.out")")"
fi
status=$(ct tpm-hmac pcsc status 2>&1 || true)
who="used by: root, alice"
[ "$POLKIT" = 1 ] || who="used by: every local user"
if grep -q "$who" <<<"$status"; then pass "pcsc status says who may use the key: \"$who\""; else fail "pcsc status does not say \"$who\": $(tr '\n' '|' <<<"$status")"; fi
said=$(doctor | grep "pcsc-users" | head -1)
expected="root, alice"
[ "$POLKIT" = 1 ] || expected="every local user"
if grep -qF "$expected" <<<"$said"; then
  pass "doctor says who may use the keys: \"$(sed 's/^ *//' <<<"$said")\""
else
  fail "doctor does not say who may use the keys: \"$said\""
fi

# ---- unlock: socket activation, stock keepassxc-cli ----
[ "$(pcscd_state)" != active ] || fail "pcscd runs before the first client"
t0=$(pc_now)
ct bash "$SRV/stock-client.sh" "$SRV" "$PC_SERIAL" >"$WORK/client.out" 2>&1 || true
pc_note_time "stock-client.sh (socket-activated pcscd)" "$(pc_secs "$t0" "$(pc_now)")"
journal >"$WORK/pcscd.log"
pc_check_stock_client "$WORK/client.out" "$EXPECT_VERSION" "$WORK/pcscd.log"
ct cat /proc/"$(ct systemctl show -p MainPID --value pcscd.service)"/status 2>/dev/null | grep -E '^(Uid|Groups|CapEff):' |
  tr -s '\t ' ' ' | tr '\n' ';' >"$WORK/pcscd-creds" || true
say "pcscd as its unit runs it: $(cat "$WORK/pcscd-creds")"
# pcscd exits and starts anew at the next client (--auto-exit; here stopped at once): each start
# opens the TPM afresh, and what the driver leaves is flushed when pcscd closes the device.
restarts_ok=0
for i in 1 2 3; do
  stop_pcscd
  grep -qx Bank <<<"$(unlock_as root)" && restarts_ok=$((restarts_ok + 1))
done
stop_pcscd
sleep 0.5
[ "$restarts_ok" = 3 ] && pass "3 more unlocks, each by a pcscd started through the socket, all open the database" ||
  fail "only $restarts_ok of 3 unlocks after a pcscd restart opened the database"
closes=$(grep -c "CLOSED" "$HOST_SRV/tpm-node.log" || true)
node_stop
left=$(for what in transient loaded-session saved-session; do timeout 20 tpm2_getcap -T "$SWTPM_TCTI" "handles-$what"; done)
left=$(grep -o '0x[0-9A-Fa-f]*' <<<"$left" | tr '\n' ' ' || true)
if [ -z "$left" ] && [ "$closes" -ge 4 ]; then
  pass "pcscd's exit closes the TPM ($closes closes seen by the node) and nothing is left in it"
else
  fail "after pcscd's exits the TPM holds \"$left\" ($closes closes seen)"
fi
say "what the node flushed at each close: $(grep CLOSED "$HOST_SRV/tpm-node.log" | cut -d' ' -f2- | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
node_start

# ---- who may use the key ----
if grep -qx Bank <<<"$(unlock_as alice)"; then pass "alice (pcsc enable --user alice) opens the database"; else fail "alice cannot open the database: $(unlock_as alice | tail -2 | tr '\n' '|')"; fi
bob=$(unlock_as bob)
if [ "$POLKIT" = 1 ]; then
  if grep -qx Bank <<<"$bob"; then fail "bob (not named) opens the database"; else pass "bob (not named) is refused: $(tail -1 <<<"$bob")"; fi
  # bob as a user polkit lets use every card (an active session, or a rule like this one): the
  # driver's rule still keeps its reader from him, and leaves every other reader to the rest.
  cat >"$ROOTFS/etc/polkit-1/rules.d/70-keepassxc-tpm-test.rules" <<'JS'
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.debian.pcsc-lite.") == 0 && subject.user == "bob") return polkit.Result.YES;
});
JS
  sleep 2
  bob_readers=$(ct_as bob timeout 20 pcsc_scan -r 2>&1 || true)
  bob=$(unlock_as bob)
  if grep -qF "$PC_READER" <<<"$bob_readers" && ! grep -qx Bank <<<"$bob"; then
    pass "bob, given every card by another rule, lists the readers but is still refused the TPM key"
  else
    fail "with every card given to bob: readers \"$(tr '\n' '|' <<<"$bob_readers")\", unlock \"$(tr '\n' '|' <<<"$bob")\""
  fi
  rm -f "$ROOTFS/etc/polkit-1/rules.d/70-keepassxc-tpm-test.rules"
elif grep -qx Bank <<<"$bob"; then
  pass "Debian 12 (no polkit in pcscd): bob, not named, opens it too, as enable warned"
else
  fail "Debian 12: bob could not open the database, though pcscd 1.9.9 has no polkit: $(tail -1 <<<"$bob")"
fi

# ---- bad input: each gives the driver's log line and doctor's cause ----
# bad_case NAME LOG_PATTERN DOCTOR_PATTERN: an unlock fails, pcscd's log and doctor name the cause.
bad_case() {
  local name=$1 log_pattern=$2 doctor_pattern=$3 since out said
  since=$(ct date '+%Y-%m-%d %H:%M:%S')
  sleep 1
  out=$(unlock_as root)
  if grep -qx Bank <<<"$out"; then
    fail "$name: the database still opened"
    return
  fi
  said=$(journal --since "$since" | grep -E "$log_pattern" | head -1 || true)
  [ -n "$said" ] && pass "$name: the driver logs \"$said\"" ||
    fail "$name: no log line matching /$log_pattern/: $(journal --since "$since" | tail -5 | tr '\n' '|')"
  said=$(doctor | grep -E "$doctor_pattern" | head -1 || true)
  [ -n "$said" ] && pass "$name: doctor says \"$(sed 's/^ *//' <<<"$said")\"" ||
    fail "$name: doctor says nothing matching /$doctor_pattern/: $(doctor | tail -8 | tr '\n' '|')"
  [ "$(ct systemctl show -p Result --value pcscd.service)" = success ] || fail "$name: pcscd did not run cleanly"
}
if [ "$POLKIT" = 1 ]; then
  stop_pcscd
  ct mv "$DROP_IN" "$SRV/drop-in.conf"
  ct systemctl daemon-reload
  bad_case "without the package's drop-in" "permission denied opening /dev/tpmrm0; pcscd's unit must grant the group \"tss\"" \
    "pcscd cannot open /dev/tpmrm0 .*no access to group tss"
  ct mv "$SRV/drop-in.conf" "$DROP_IN"
  ct systemctl daemon-reload
fi
stop_pcscd
node_stop
bad_case "the TPM node missing" "no TPM reachable through device:/dev/tpmrm0 \(/dev/tpmrm0 does not exist\)" \
  "pcscd cannot open /dev/tpmrm0: No such file"
node_start
if [ "$PC_RELEASE" = sid ]; then
  stop_pcscd
  ct chmod 0600 "$CONFIG"
  bad_case "the driver's file unreadable by the user pcscd" "pcsc.json: serving no card: cannot open it \(Permission denied.*must be able to read it: .*chmod 644" \
    "pcscd cannot read /etc/keepassxc-tpm/pcsc.json: its unit runs it as user pcscd"
  ct chmod 0644 "$CONFIG"
fi
stop_pcscd
# pcscd killed in the middle of an unlock: the next unlock works.
ct env HOME=/root sh -c 'keepassxc-cli ls --yubikey "1:$1" "$2/held-out.kdbx" <"$2/password" >/dev/null 2>&1 &' _ "$PC_SERIAL" "$SRV"
for i in $(seq 100); do
  pid=$(ct systemctl show -p MainPID --value pcscd.service)
  [ "${pid:-0}" != 0 ] && break
  sleep 0.05
done
ct systemctl kill -s KILL pcscd.service >/dev/null 2>&1 || true
sleep 1
stop_pcscd
grep -qx Bank <<<"$(unlock_as root)" && pass "pcscd killed during an unlock: the next unlock opens the database" ||
  fail "after pcscd was killed during an unlock, the next unlock fails: $(journal | tail -3 | tr '\n' '|')"
counter=$(lockout_counter)
[ -n "$counter" ] && [ "$((counter))" = 0 ] && pass "TPM2_PT_LOCKOUT_COUNTER is 0 after every case above" || fail "TPM2_PT_LOCKOUT_COUNTER is $counter"
grep -q "DROPPED" "$HOST_SRV/tpm-node.log" && fail "the TPM node got bytes that were no TPM command"

# ---- a key kept in a file (no persistent handle), served from its record in the driver's file ----
stop_pcscd
file_serial=$(ct tpm-hmac --tcti "$TCTI" import --secret-file "$SRV/secret.hex" --key-file /root/twin.tss --json 2>"$WORK/key-file.err" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["serial"])' || true)
ct tpm-hmac --tcti "$TCTI" pcsc enable --key-file /root/twin.tss >>"$WORK/key-file.err" 2>&1 || true
stop_pcscd
if [ -n "$file_serial" ] && [ "$((file_serial >> 24))" = $((0x82)) ] && grep -qx Bank <<<"$(unlock_as root "$file_serial")"; then
  pass "a key file (serial $file_serial, no persistent handle) opens the database in stock keepassxc-cli"
else
  fail "the key file's database did not open (serial \"$file_serial\"): $(tr '\n' '|' <"$WORK/key-file.err") $(journal | tail -3 | tr '\n' '|')"
fi
ct tpm-hmac pcsc disable --handle "$file_serial" >/dev/null 2>&1 || true

# ---- tpm2-abrmd as the TCTI: the driver inside pcscd's sandbox reaches it over the system D-Bus ----
stop_pcscd
ct systemd-run --quiet --unit=keepassxc-tpm-test-abrmd --uid=tss tpm2-abrmd --tcti=device:/dev/tpmrm0
for _ in $(seq 100); do
  ct busctl --system status com.intel.tss2.Tabrmd >/dev/null 2>&1 && break
  sleep 0.1
done
ct tpm-hmac pcsc disable --handle "$PC_HANDLE" >/dev/null 2>&1
if ct tpm-hmac --tcti tabrmd:bus_type=system pcsc enable --handle "$PC_HANDLE" >"$WORK/enable-abrmd.out" 2>&1 &&
  grep -qx Bank <<<"$(unlock_as root)"; then
  pass "with tpm2-abrmd (system D-Bus) as the driver's TCTI, pcscd under its unit opens the database"
else
  fail "through tpm2-abrmd: $(tr '\n' '|' <"$WORK/enable-abrmd.out") $(journal | tail -3 | tr '\n' '|')"
fi
ct systemctl stop keepassxc-tpm-test-abrmd >/dev/null 2>&1 || true

# ---- leaving ----
stop_pcscd
apt_in remove tpm-hmac || fail "apt-get remove tpm-hmac failed: $(tail -3 "$WORK/apt.log" | tr '\n' '|')"
out=$(readers)
if [ "$(pcscd_state)" = active ] && ! grep -qF "$PC_READER" <<<"$out" && ! ct test -e "$ENTRY"; then
  pass "after apt remove pcscd starts and serves, without the driver's reader ($(tr '\n' ' ' <<<"$out" | cut -c1-60))"
else
  fail "after apt remove: pcscd $(pcscd_state), socket $(socket_state), entry $(ct ls "$ENTRY" 2>&1): $(tr '\n' '|' <<<"$out")"
fi
journal | grep -q "Error with" && fail "pcscd logged an error about a reader entry: $(journal | grep -m1 'Error with')"
apt_in purge tpm-hmac || fail "apt-get purge tpm-hmac failed"
left=$(left_behind)
[ -z "$left" ] && pass "after apt purge nothing of the package is left (keys file, reader entry, drop-in, polkit rule)" ||
  fail "after apt purge these are left: $(tr '\n' ' ' <<<"$left")"
stop_pcscd
apt_in install --no-install-recommends "$SRV/tpm-hmac.deb" || fail "reinstall failed"
if ct timeout 10 pcsc_scan -c -t 1 2>&1 | grep -q "Card inserted"; then
  fail "after purge and reinstall a card is served again before root enabled a key"
else
  pass "after purge and reinstall no card is served until root enables a key"
fi
apt_in purge tpm-hmac || true

# ---- upgrade from the previous package ----
stop_pcscd
apt_in install --no-install-recommends "$SRV/tpm-hmac-previous.deb" || die "installing the previous package failed: $(tail -3 "$WORK/apt.log" | tr '\n' '|')"
# As the previous version enabled keys: the same records, in a file only root could read.
ct tpm-hmac --tcti "$TCTI" pcsc enable --handle "$PC_HANDLE" >"$WORK/enable-previous.out" 2>&1 ||
  die "enable under the previous package: $(cat "$WORK/enable-previous.out")"
ct chmod 0600 "$CONFIG"
stop_pcscd
apt_in install --no-install-recommends "$SRV/tpm-hmac.deb" || fail "the upgrade failed: $(tail -3 "$WORK/apt.log" | tr '\n' '|')"
version=$(ct dpkg-query -W -f='${Version}' tpm-hmac)
stop_pcscd
if grep -qx Bank <<<"$(unlock_as root)" && ct grep -q "\"$PC_HANDLE\"" "$CONFIG"; then
  pass "upgraded from 0.1.0-1 to $version: the enabled key is kept and opens the database ($(ct stat -c '%U:%G %a' "$CONFIG"))"
else
  fail "after the upgrade to $version the key does not open the database: $(journal | tail -3 | tr '\n' '|')"
fi
ct test -e "$ENTRY" || fail "after the upgrade the reader entry is gone"
apt_in purge tpm-hmac || true
left=$(left_behind)
[ -z "$left" ] || fail "after purging the upgraded package these are left: $(tr '\n' ' ' <<<"$left")"
stop_pcscd

pc_note_time "whole script" "$(pc_secs "$T_START" "$(pc_now)")"
finish
