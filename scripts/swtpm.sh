# shellcheck shell=bash
# Sourced by scripts and shell tests: start_swtpm DIR starts a software TPM with its state in DIR
# on free loopback ports and sets SWTPM_PID and SWTPM_TCTI; stop_swtpm ends it (by its PID).
# swtpm is for tests and demos only: it gives no security.

start_swtpm() {
  local dir=$1 port
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    # A port P with P+1 free too: the swtpm TCTI expects the control channel there.
    port=$(python3 -c 'import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass')
    swtpm socket --tpm2 --tpmstate dir="$dir" --flags not-need-init,startup-clear \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --log file="$dir/swtpm.log" &
    SWTPM_PID=$!
    for _ in $(seq 100); do
      if ! kill -0 "$SWTPM_PID" 2>/dev/null; then break; fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        sleep 0.05
        if kill -0 "$SWTPM_PID" 2>/dev/null; then
          SWTPM_TCTI="swtpm:host=127.0.0.1,port=$port"
          export SWTPM_PID SWTPM_TCTI
          return 0
        fi
        break
      fi
      sleep 0.05
    done
    kill "$SWTPM_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
  done
  echo "swtpm did not start (see $dir/swtpm.log)" >&2
  return 1
}

stop_swtpm() {
  if [ -n "${SWTPM_PID:-}" ]; then
    kill "$SWTPM_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
    SWTPM_PID=
  fi
}

# start_abrmd DIR TCTI puts tpm2-abrmd, the resource manager, in front of the TPM at TCTI, on a
# private D-Bus session bus (socket in DIR), and sets ABRMD_TCTI and DBUS_SESSION_BUS_ADDRESS. With a
# resource manager, objects and sessions a killed program left behind are flushed when its
# connection closes; without one a simulator runs out of its 3 slots. stop_abrmd ends both by PID.
start_abrmd() {
  local dir=$1 tcti=$2 bus
  mkdir -p "$dir"
  bus="$dir/bus"
  rm -f "$bus"
  dbus-daemon --session --nofork --address="unix:path=$bus" >/dev/null 2>&1 &
  DBUS_PID=$!
  for _ in $(seq 100); do [ -S "$bus" ] && break; sleep 0.05; done
  export DBUS_SESSION_BUS_ADDRESS="unix:path=$bus"
  local root_flag=""
  [ "$(id -u)" -eq 0 ] && root_flag=--allow-root
  tpm2-abrmd --session $root_flag --tcti="$tcti" >"$dir/abrmd.log" 2>&1 &
  ABRMD_PID=$!
  ABRMD_TCTI=tabrmd:bus_type=session
  for _ in $(seq 100); do
    if TPM2TOOLS_TCTI=$ABRMD_TCTI TSS2_LOG=all+none tpm2_getcap properties-fixed >/dev/null 2>&1; then
      export ABRMD_TCTI
      return 0
    fi
    kill -0 "$ABRMD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "tpm2-abrmd did not start (see $dir/abrmd.log)" >&2
  stop_abrmd
  return 1
}

stop_abrmd() {
  local pid
  for pid in "${ABRMD_PID:-}" "${DBUS_PID:-}"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  ABRMD_PID=""
  DBUS_PID=""
}
