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
