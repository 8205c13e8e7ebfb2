#!/usr/bin/env bash
# Runs COMMAND next to a private pcscd (issue 23's tests): in a new mount namespace
# (unshare -m --propagation private) a tmpfs covers /run/pcscd (or /run, where the machine has no
# /run/pcscd, so that nothing is created on the machine's /run), pcscd starts in the foreground on
# READER_CONF_DIR (its reader.conf.d; --disable-polkit where that pcscd has polkit: Debian 13, sid),
# and COMMAND runs in the same namespace, so it talks to that pcscd while the machine's own
# /run/pcscd and pcscd are never touched. (pcscd as Debian's units start it: test-booted-pcscd.sh.)
# On every exit path pcscd is stopped by its PID and every mount is undone; the mounts die with the
# namespace even if this script is killed.
#
# Usage: tests/pcsc/private-pcscd.sh [--log FILE] [--apdu] READER_CONF_DIR COMMAND [ARGS...]
#   --log FILE  pcscd's output (default: discarded); --apdu  pcscd logs every APDU (-a)
# Exit codes: COMMAND's own; 1 when pcscd did not start; 2 usage; 77 not root or a tool missing.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^#   --log/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "[private-pcscd] $*" >&2; }

LOG=/dev/null
APDU=()
while [ $# -gt 0 ]; do
  case "$1" in
    --log) LOG=$2; shift 2 ;;
    --apdu) APDU=(--apdu); shift ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || usage
CONFDIR=$1
shift

if [ "${KEEPASSXC_TPM_PRIVATE_PCSCD_NS:-}" != "$$" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "SKIP: a private pcscd needs root (a mount namespace for /run/pcscd)"
    exit 77
  fi
  for tool in unshare pcscd mount; do
    command -v "$tool" >/dev/null 2>&1 || { say "SKIP: $tool is not installed (scripts/install-deps.sh)"; exit 77; }
  done
  # exec keeps the PID, which marks the namespace as entered.
  KEEPASSXC_TPM_PRIVATE_PCSCD_NS=$$ exec unshare -m --propagation private "$0" --log "$LOG" "${APDU[@]}" "$CONFDIR" "$@"
fi

# ---- inside the namespace ---------------------------------------------------------------------
# shellcheck source=tests/pcsc/mounts.sh
. "$(dirname "$0")/mounts.sh"
pcscd_pid=""
command_pid=""
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
  if [ -n "${command_pid:-}" ]; then
    kill "$command_pid" 2>/dev/null || true
    wait "$command_pid" 2>/dev/null || true
  fi
  if [ -n "$pcscd_pid" ]; then
    kill "$pcscd_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pcscd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pcscd_pid" 2>/dev/null || true
    wait "$pcscd_pid" 2>/dev/null || true
    pcscd_pid=""
  fi
  unmount_all
}
trap finish EXIT
trap 'exit 143' TERM INT HUP

if [ -d /run/pcscd ]; then
  mount -t tmpfs -o mode=0755 tmpfs /run/pcscd
  mounted+=(/run/pcscd)
else
  mount -t tmpfs -o mode=0755 tmpfs /run
  mounted+=(/run)
  mkdir /run/pcscd
fi
SOCKET=/run/pcscd/pcscd.comm

polkit=()
if pcscd --help 2>&1 | grep -q -- --disable-polkit; then
  polkit=(--disable-polkit)
fi
pcscd --foreground "${APDU[@]}" "${polkit[@]}" -c "$CONFDIR" >"$LOG" 2>&1 </dev/null &
pcscd_pid=$!
for _ in $(seq 200); do
  [ -S "$SOCKET" ] && break
  kill -0 "$pcscd_pid" 2>/dev/null || break
  sleep 0.05
done
if [ ! -S "$SOCKET" ]; then
  say "pcscd did not start (no $SOCKET); its output: $(tail -5 "$LOG" 2>/dev/null | tr '\n' '|')"
  exit 1
fi
# In the background and waited for, so that a signal to this script is handled at once (the
# command is stopped, then pcscd, then the mounts are undone).
rc=0
"$@" <&0 &
command_pid=$!
wait "$command_pid" || rc=$?
command_pid=""
exit "$rc"
