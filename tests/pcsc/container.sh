# shellcheck shell=bash
# A booted Debian container for the tests (sourced after lib.sh): the root file system of
# make-chroot.sh started with systemd as PID 1 (systemd-nspawn --boot), so that Debian's own units,
# socket activation, polkit and maintainer scripts meet a live systemd, as on a user's machine.
# The container shares the machine's network (swtpm on loopback is reachable) and nothing else;
# it is shut down (by the PID of the nspawn this started) on every exit path.
#
#   ct_prepare RELEASE DEB PREVIOUS_DEB FILE...
#                         makes or reuses RELEASE's root file system (ROOTFS; one user at a time) and
#                         puts DEB, PREVIOUS_DEB and the FILEs into its /srv/keepassxc-tpm-test (SRV)
#   ct_boot ROOTFS NAME   boots it (CT_NSPAWN: nspawn's PID, CT_PID: the container's systemd)
#   ct CMD...             runs CMD inside, as root, with a clean environment
#   ct_as USER CMD...     runs CMD inside as USER (setpriv: no login session, as a cron job is)
#   ct_stop               shuts it down (also registered with pc_on_exit by ct_boot)
# and, once booted: node_start / node_stop (the TPM node, relayed to the test's swtpm), apt_in,
# stop_pcscd, unlock_as USER [SERIAL], journal, readers, pcscd_state, socket_state, lockout_counter.

CT_NSPAWN=""
CT_PID=""
CT_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root)

ct_boot() {
  local rootfs=$1 name=$2 state env=()
  command -v systemd-nspawn >/dev/null || die "systemd-nspawn is not installed (scripts/install-deps.sh: systemd-container)"
  # Services start at install, as on a real system (make-chroot.sh puts the file back for its installs).
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  # sid's systemd refuses this machine's hybrid cgroup layout unless nspawn gives it cgroup v2 alone.
  [ "${PC_RELEASE:-}" != sid ] || env=(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1)
  env "${env[@]}" systemd-nspawn -D "$rootfs" --boot --quiet --register=no --keep-unit --machine="$name" \
    >"$WORK/console.log" 2>&1 </dev/null &
  CT_NSPAWN=$!
  pc_on_exit ct_stop
  for _ in $(seq 100); do
    CT_PID=$(pgrep -P "$CT_NSPAWN" -x systemd | head -1 || true)
    [ -n "$CT_PID" ] && break
    kill -0 "$CT_NSPAWN" 2>/dev/null || die "systemd-nspawn ended at once: $(tail -5 "$WORK/console.log" | tr '\n' '|')"
    sleep 0.1
  done
  [ -n "$CT_PID" ] || die "no systemd inside the container after 10 s: $(tail -5 "$WORK/console.log" | tr '\n' '|')"
  # "degraded" is a booted system too: units a container cannot run (no kernel modules, no udev
  # devices) fail there, and nothing the tests use depends on them.
  for _ in $(seq 120); do
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

SRV=/srv/keepassxc-tpm-test

ct_prepare() {
  local release=$1 deb=$2 previous=$3 make_log rc=0 t0
  shift 3
  make_log=$PC_BUILD/chroots/$release.make.log
  mkdir -p "$PC_BUILD/chroots"
  t0=$(pc_now)
  "$PC_HERE/make-chroot.sh" "$release" 2>&1 | tee "$make_log" || rc=${PIPESTATUS[0]}
  pc_note_time "root file system (make or reuse)" "$(pc_secs "$t0" "$(pc_now)")"
  [ "$rc" -ne 77 ] || skip "no $release root file system: $(grep SKIP "$make_log" | tail -1)"
  [ "$rc" -eq 0 ] || die "making the $release root file system failed (see $make_log)"
  ROOTFS=$PC_BUILD/chroots/$release
  # One test at a time in a root file system (the package and /srv are shared).
  exec 8>"$PC_BUILD/chroots/$release.in-use.lock"
  flock 8
  # What the tests put in the container, in /srv (a booted system mounts its own /tmp).
  HOST_SRV=$ROOTFS$SRV
  rm -rf "$HOST_SRV"
  mkdir -p "$HOST_SRV"
  pc_on_exit rm -rf "$HOST_SRV"
  cp "$deb" "$HOST_SRV/tpm-hmac.deb"
  cp "$previous" "$HOST_SRV/tpm-hmac-previous.deb"
  cp "$@" "$PC_HERE/tpm-node.py" "$HOST_SRV/"
  chmod -R a+rX "$HOST_SRV"
  # A package left by an interrupted run is purged before the boot, with the polkit rule it wrote.
  if chroot "$ROOTFS" dpkg-query -W -f='${Status}' tpm-hmac 2>/dev/null | grep -q installed; then
    chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive dpkg --purge tpm-hmac >/dev/null 2>&1 || true
  fi
  rm -f "$ROOTFS/etc/polkit-1/rules.d/60-keepassxc-tpm.rules"
  # Root's records and key files of an earlier run name keys of another swtpm.
  rm -rf "$ROOTFS/root/.local/share/keepassxc-tpm" "$ROOTFS/root/twin.tss"
}

ct() { nsenter -t "$CT_PID" -a "${CT_ENV[@]}" "$@"; }

ct_as() {
  local user=$1
  shift
  nsenter -t "$CT_PID" -a "${CT_ENV[@]}" HOME="/home/$user" setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
}

# shellcheck disable=SC2317 # run by the EXIT trap
ct_stop() {
  [ -n "$CT_NSPAWN" ] || return 0
  # SIGTERM to nspawn asks the container's systemd for a clean shutdown.
  kill -TERM "$CT_NSPAWN" 2>/dev/null || true
  for _ in $(seq 300); do
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

# ---- once booted ----
PORT=""
apt_in() { ct env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@" >>"$WORK/apt.log" 2>&1; }
pcscd_state() { ct systemctl show -p ActiveState --value pcscd.service; }
socket_state() { ct systemctl show -p ActiveState --value pcscd.socket; }
journal() { ct journalctl -q -o cat -u pcscd.service --no-pager "$@" 2>/dev/null || true; }
# The reader list as root sees it (socket activation starts pcscd when it is not running).
readers() { ct timeout 20 pcsc_scan -r 2>&1 || true; }
# Stops pcscd (the socket stays), so the next client starts it anew through the socket.
stop_pcscd() {
  ct systemctl stop pcscd.service 2>/dev/null
  ct systemctl reset-failed pcscd.service pcscd.socket >/dev/null 2>&1 || true
  ct systemctl start pcscd.socket
}
# keepassxc-cli ls of the held-out database with the key, as USER ("root" or a user): its output.
unlock_as() {
  local user=$1 serial=${2:-$PC_SERIAL}
  local cmd=(timeout 60 sh -c 'keepassxc-cli ls --yubikey "1:$1" "$2/held-out.kdbx" <"$2/password" 2>&1' _ "$serial" "$SRV")
  if [ "$user" = root ]; then ct env HOME=/root "${cmd[@]}" || true; else ct_as "$user" "${cmd[@]}" || true; fi
}
# swtpm takes one connection at a time: tpm2-tools on this machine reach it while the node is stopped.
lockout_counter() {
  node_stop
  timeout 20 tpm2_getcap -T "$SWTPM_TCTI" properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ { print $2 }'
  node_start
}
# The TPM node: started (as a transient unit of the container's systemd) or stopped.
node_start() {
  PORT=${SWTPM_TCTI##*port=}
  ct systemd-run --quiet --unit=keepassxc-tpm-test-node python3 "$SRV/tpm-node.py" --port "$PORT" \
    --link /dev/tpmrm0 --owner tss --group tss --mode 660 --log "$SRV/tpm-node.log"
  for _ in $(seq 100); do
    ct test -e /dev/tpmrm0 && return 0
    sleep 0.1
  done
  die "the TPM node did not come up: $(tail -3 "$HOST_SRV/tpm-node.log" 2>/dev/null | tr '\n' '|')"
}
node_stop() {
  ct systemctl stop keepassxc-tpm-test-node >/dev/null 2>&1 || true
  ct systemctl reset-failed keepassxc-tpm-test-node >/dev/null 2>&1 || true
}
