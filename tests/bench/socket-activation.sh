#!/usr/bin/env bash
# Benchmark of issue 30: an unlock by stock keepassxc-cli when pcscd is started by its socket, as
# Debian runs it (--auto-exit: pcscd exits when idle, so the driver loads and opens the TPM anew
# around each unlock after a pause), against one while pcscd still runs. A booted container of
# RELEASE (tests/pcsc/container.sh: Debian's own units, the project's .deb installed with apt, a
# tss:tss 0660 TPM node relayed to swtpm); the node logs every TPM command, so each unlock's
# commands are counted; times are keepassxc-cli's whole run (Argon2 included) and are not asserted.
# Prints a markdown table (also in build/bench/socket-activation-RELEASE.md).
#
# Usage: tests/bench/socket-activation.sh [RELEASE] [RUNS]     (as root; default trixie 10)
# Exit codes: 0 measured, 1 failure, 77 skip (not root; no root file system or Python >= 3.12).
set -euo pipefail
PC_RELEASE=${1:-trixie}
RUNS=${2:-10}
PC_TEST=bench-socket-activation
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../pcsc/lib.sh
. "$HERE/../pcsc/lib.sh"
# shellcheck source=../pcsc/container.sh
. "$PC_HERE/container.sh"
pc_need_root
OUT=${BENCH_OUT:-$PC_BUILD/bench}
mkdir -p "$OUT"

pc_fresh_workdir "bench-socket-$PC_RELEASE"
DEB=$(ls "$PC_ROOT"/build/deb/tpm-hmac_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1 || true)
[ -n "$DEB" ] || die "no tpm-hmac package in build/deb: run scripts/build-deb.sh first"
pc_start_swtpm
echo "$PC_SECRET" >"$WORK/secret.hex"
pc_venv
pc_make_db "$WORK/held-out.kdbx"
ct_prepare "$PC_RELEASE" "$DEB" "$DEB" "$WORK/held-out.kdbx" "$WORK/password" "$WORK/secret.hex"
ct_boot "$ROOTFS" "keepassxc-tpm-bench-$PC_RELEASE"
node_start
apt_in install --no-install-recommends "$SRV/tpm-hmac.deb" || die "apt-get install: $(tail -3 "$WORK/apt.log" | tr '\n' '|')"
pc_on_exit apt_in purge tpm-hmac
ct tpm-hmac --tcti device:/dev/tpmrm0 import --secret-file "$SRV/secret.hex" --handle "$PC_HANDLE" >/dev/null 2>&1 ||
  die "tpm-hmac import failed"
ct tpm-hmac --tcti device:/dev/tpmrm0 pcsc enable --handle "$PC_HANDLE" >/dev/null 2>&1 || die "tpm-hmac pcsc enable failed"
grep -qx Bank <<<"$(unlock_as root)" || die "the database does not open"

# measure KIND: one unlock, after stopping pcscd ("first") or with it running ("warm"); prints
# "MS COMMANDS NAMES" (the commands the node relayed during it).
measure() {
  local kind=$1 before t0 ms out
  [ "$kind" = warm ] || stop_pcscd
  before=$(wc -l <"$HOST_SRV/tpm-node.log")
  t0=$(pc_now)
  out=$(unlock_as root)
  ms=$(awk -v a="$t0" -v b="$(pc_now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  grep -qx Bank <<<"$out" || die "an unlock failed: $(tail -1 <<<"$out")"
  tail -n +"$((before + 1))" "$HOST_SRV/tpm-node.log" | awk -v ms="$ms" '
    $2 == "CMD" { n++; names = names sep name($3); sep = "," }
    function name(cc) {
      if (cc == "0x00000173") return "ReadPublic"; if (cc == "0x00000176") return "StartAuthSession"
      if (cc == "0x00000155") return "HMAC"; if (cc == "0x00000165") return "FlushContext"
      if (cc == "0x0000017A") return "GetCapability"; if (cc == "0x0000017E") return "GetRandom"
      return cc
    }
    END { printf "%s %d %s\n", ms, n, names }'
}
declare -A MS COUNT NAMES
for kind in first warm; do
  for i in $(seq "$RUNS"); do
    read -r ms n names <<<"$(measure "$kind")"
    MS[$kind]+="$ms "
    COUNT[$kind]+="$n "
    NAMES[$kind]=$names
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
{
  echo "| unlock by $PC_RELEASE's keepassxc-cli ($RUNS runs) | TPM commands | what | whole unlock, median |"
  echo "|---|---|---|---|"
  echo "| first after pcscd was started by its socket | $(median <<<"${COUNT[first]}") | ${NAMES[first]} | $(median <<<"${MS[first]}") ms |"
  echo "| while pcscd runs | $(median <<<"${COUNT[warm]}") | ${NAMES[warm]} | $(median <<<"${MS[warm]}") ms |"
} | tee "$OUT/socket-activation-$PC_RELEASE.md"
say "what the node flushed at each close: $(grep CLOSED "$HOST_SRV/tpm-node.log" | cut -d' ' -f2- | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
