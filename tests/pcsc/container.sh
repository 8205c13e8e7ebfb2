# shellcheck shell=bash
# A booted Debian container for the tests (sourced after lib.sh): the root file system of
# make-chroot.sh started with systemd as PID 1 (systemd-nspawn --boot), so that Debian's own units,
# socket activation, polkit and maintainer scripts meet a live systemd, as on a user's machine.
# The container shares the machine's network (swtpm on loopback is reachable) and nothing else;
# it is shut down (by the PID of the nspawn this started) on every exit path.
#
#   ct_boot ROOTFS NAME   boots it (CT_NSPAWN: nspawn's PID, CT_PID: the container's systemd)
#   ct CMD...             runs CMD inside, as root, with a clean environment
#   ct_as USER CMD...     runs CMD inside as USER (setpriv: no login session, as a cron job is)
#   ct_stop               shuts it down (also registered with pc_on_exit by ct_boot)

CT_NSPAWN=""
CT_PID=""
CT_ROOT=""
CT_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root)

ct_boot() {
  local rootfs=$1 name=$2 i state env=()
  CT_ROOT=$rootfs
  command -v systemd-nspawn >/dev/null || die "systemd-nspawn is not installed (scripts/install-deps.sh: systemd-container)"
  # Services start at install, as on a real system (make-chroot.sh puts the file back for its installs).
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  # sid's systemd refuses this machine's hybrid cgroup layout unless nspawn gives it cgroup v2 alone.
  [ "${PC_RELEASE:-}" != sid ] || env=(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1)
  env "${env[@]}" systemd-nspawn -D "$rootfs" --boot --quiet --register=no --keep-unit --machine="$name" \
    >"$WORK/console.log" 2>&1 </dev/null &
  CT_NSPAWN=$!
  pc_on_exit ct_stop
  for i in $(seq 100); do
    CT_PID=$(pgrep -P "$CT_NSPAWN" -x systemd | head -1 || true)
    [ -n "$CT_PID" ] && break
    kill -0 "$CT_NSPAWN" 2>/dev/null || die "systemd-nspawn ended at once: $(tail -5 "$WORK/console.log" | tr '\n' '|')"
    sleep 0.1
  done
  [ -n "$CT_PID" ] || die "no systemd inside the container after 10 s: $(tail -5 "$WORK/console.log" | tr '\n' '|')"
  # "degraded" is a booted system too: units a container cannot run (no kernel modules, no udev
  # devices) fail there, and nothing the tests use depends on them.
  for i in $(seq 120); do
    state=$(ct systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) break ;; esac
    sleep 0.5
  done
  case "$state" in
    running | degraded) ;;
    *) die "the $name container did not boot in 60 s (state \"$state\"): $(tail -5 "$WORK/console.log" | tr '\n' '|')" ;;
  esac
  say "booted $name ($state; systemd $(ct systemctl --version | head -1 | awk '{ print $2 }'))"
}

ct() { nsenter -t "$CT_PID" -a "${CT_ENV[@]}" "$@"; }

ct_as() {
  local user=$1
  shift
  nsenter -t "$CT_PID" -a "${CT_ENV[@]}" HOME="/home/$user" setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
}

# shellcheck disable=SC2317 # run by the EXIT trap
ct_stop() {
  local i
  [ -n "$CT_NSPAWN" ] || return 0
  # SIGTERM to nspawn asks the container's systemd for a clean shutdown.
  kill -TERM "$CT_NSPAWN" 2>/dev/null || true
  for i in $(seq 300); do
    kill -0 "$CT_NSPAWN" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$CT_NSPAWN" 2>/dev/null; then
    say "the container did not shut down in 30 s: killing systemd-nspawn"
    kill -KILL "$CT_NSPAWN" 2>/dev/null || true
  fi
  wait "$CT_NSPAWN" 2>/dev/null || true
  CT_NSPAWN=""
  CT_PID=""
}
