#!/usr/bin/env bash
# Benchmark of issue 23: what one unlock by Debian 12's stock, unmodified keepassxc-cli through pcscd
# and the reader driver costs. One key in a private swtpm, enabled for the driver; a private pcscd
# (tests/pcsc/private-pcscd.sh: own mount namespace and /run/pcscd, the machine's untouched).
#   Commands: a counting proxy (Python, on loopback) sits between the driver and swtpm (the TCTI in
#   the driver's pcsc.json names the proxy), and pcscd logs every APDU (-a). At each TPM command the
#   proxy notes how far pcscd's log has got, so every TPM command is put down to the APDU that
#   caused it: detection (KeePassXC's SELECTs, serial, test challenges to slots 1 and 2) or the
#   challenge. Counted for the first unlock after pcscd started (the driver opens its TPM
#   connection) and for the next ones (warm).
#   Times: in a second pcscd run, the driver talks to swtpm directly (no proxy, no APDU log):
#   `keepassxc-cli ls --yubikey 1:<serial>` of a password + TPM key database, 10 runs, against
#   `keepassxc-cli ls` of a password-only database with the same KDF (both made by the fork's
#   keepassxc-tpm-make-db, KeePassXC's own code, when the fork is built; else by kdbxtool).
# Prints a markdown table (also in build/bench/pcsc.md). Nothing is asserted. Debian's keepassxc,
# pcscd and pcsc-tools, when missing, are installed for the run and purged at its end.
#
# Usage: tests/bench/pcsc.sh [RUNS]          (as root; RUNS: timed runs per row, default 10)
#   (pcsc.sh --client DIR SERIAL MODE RUNS is its own half that runs beside pcscd)
# Environment: as tests/pcsc/lib.sh (KEEPASSXC_TPM_PCSC_NO_BUILD=1: tpm-hmac and the driver built);
# BENCH_OUT (default build/bench).
# Exit codes: 0 measured, 1 failure, 2 usage, 77 skip (not root; not Debian 12; no way to make the
# databases; the machine's keepassxc is the fork's package).
set -euo pipefail
PC_TEST=bench-pcsc
HERE=$(cd "$(dirname "$0")" && pwd)

# ---- the client half: beside the private pcscd ---------------------------------------------------
# MODE count: one line "=== run I START END" per unlock (START, END: the size of pcscd's log before
# and after it), each unlock's output below. MODE time: "=== key|plain I MS RC" per run.
if [ "${1:-}" = --client ]; then
  # shellcheck source=../pcsc/lib.sh
  . "$HERE/../pcsc/lib.sh"
  DIR=$2 SERIAL=$3 MODE=$4 RUNS=$5
  export HOME=$DIR/home XDG_CONFIG_HOME=$DIR/home/.config XDG_CACHE_HOME=$DIR/home/.cache
  mkdir -p "$HOME"
  pc_wait_card || { echo "=== no card"; exit 1; }
  ms_since() { awk -v a="$1" -v b="$(pc_now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
  if [ "$MODE" = count ]; then
    for i in $(seq "$RUNS"); do
      start=$(stat -c %s "$DIR/pcscd.log")
      rc=0
      /usr/bin/keepassxc-cli ls --yubikey "1:$SERIAL" "$DIR/key.kdbx" <"$DIR/password" >"$DIR/count-$i.out" 2>&1 || rc=$?
      sleep 0.2 # pcscd logs the card's release after the client has gone
      echo "=== run $i $start $(stat -c %s "$DIR/pcscd.log") $rc"
    done
  else
    for i in $(seq "$RUNS"); do
      for kind in key plain; do
        args=(ls "$DIR/$kind.kdbx")
        [ "$kind" = plain ] || args=(ls --yubikey "1:$SERIAL" "$DIR/$kind.kdbx")
        t0=$(pc_now)
        rc=0
        /usr/bin/keepassxc-cli "${args[@]}" <"$DIR/password" >"$DIR/time-$kind.out" 2>&1 || rc=$?
        echo "=== $kind $i $(ms_since "$t0") $rc"
      done
    done
  fi
  trap - EXIT
  exit 0
fi

# ---- the benchmark ------------------------------------------------------------------------------
RUNS=${1:-10}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]" >&2; exit 2; }
# shellcheck source=../pcsc/lib.sh
. "$HERE/../pcsc/lib.sh"
OUT=${BENCH_OUT:-$PC_ROOT/build/bench}
pc_need_root
pc_need_tools unshare python3 swtpm
pc_stock_keepassxc
pc_setup_key bench
DIRECT_TCTI=$SWTPM_TCTI

# The databases: password + TPM key, and password only, same KDF.
printf '%s\n' "$PC_PASSWORD" >"$WORK/password"
if [ -x "$PC_BUILD/keepassxc-2.7.4/build/src/keepassxc-tpm-make-db" ]; then
  pc_fork
  MADE_BY="the fork's keepassxc-tpm-make-db (KeePassXC's default Argon2id)"
  TPM2TOOLS_TCTI=$DIRECT_TCTI "$PC_FORK_MAKE_DB" "$WORK/key.kdbx" "1:$PC_SERIAL" Bank Mail <"$WORK/password" >"$WORK/make-db.out" 2>&1 &&
    "$PC_FORK_MAKE_DB" "$WORK/plain.kdbx" none Bank Mail <"$WORK/password" >>"$WORK/make-db.out" 2>&1 ||
    die "keepassxc-tpm-make-db: $(tr '\n' '|' <"$WORK/make-db.out")"
else
  pc_venv
  MADE_BY="kdbxtool (Argon2Config.fast())"
  pc_make_db "$WORK/key.kdbx"
  "$PC_PY" -c 'import sys, kdbxtool
from kdbxtool.security.kdf import Argon2Config
db = kdbxtool.Database.create(password=open(sys.argv[1]).readline().rstrip("\n"), kdf_config=Argon2Config.fast())
db.root_group.create_entry(title="Bank"); db.root_group.create_entry(title="Mail"); db.save(sys.argv[2])' \
    "$WORK/password" "$WORK/plain.kdbx" || die "kdbxtool: cannot make the password-only database"
fi

# ---- the counting proxy: loopback ports P (TPM commands, counted) and P+1 (swtpm's control channel)
cat >"$WORK/count-proxy.py" <<'PY'
"""Loopback proxy in front of swtpm: forwards ports P and P+1 to swtpm's, and writes one line per
TPM command sent on P: "<pcscd log size at that moment> <command code hex>". Prints P, then serves
until killed."""
import os, socket, sys, threading

upstream, log_path, watch = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = open(log_path, "a", buffering=1)
lock = threading.Lock()

def free_pair():
    while True:
        a = socket.create_server(("127.0.0.1", 0))
        port = a.getsockname()[1]
        try:
            return a, socket.create_server(("127.0.0.1", port + 1))
        except OSError:
            a.close()

def pipe(src, dst, count):
    pending = b""
    try:
        while data := src.recv(65536):
            if count:
                pending += data
                while len(pending) >= 10:
                    size = int.from_bytes(pending[2:6], "big")
                    if len(pending) < size:
                        break
                    with lock:
                        try:
                            mark = os.stat(watch).st_size
                        except OSError:
                            mark = 0
                        out.write(f"{mark} {int.from_bytes(pending[6:10], 'big'):#06x}\n")
                    pending = pending[size:]
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def serve(listener, port, count):
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pipe, args=(client, server, count), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client, False), daemon=True).start()

commands, control = free_pair()
threading.Thread(target=serve, args=(control, upstream + 1, False), daemon=True).start()
print(commands.getsockname()[1], flush=True)
serve(commands, upstream, True)
PY
PROXY_PID=""
pc_on_exit pc_stop PROXY_PID
: >"$WORK/pcscd.log"
: >"$WORK/tpm-commands.log"
python3 "$WORK/count-proxy.py" "${DIRECT_TCTI##*port=}" "$WORK/tpm-commands.log" "$WORK/pcscd.log" >"$WORK/proxy.port" 2>"$WORK/proxy.err" &
# shellcheck disable=SC2034 # read by pc_stop, through its name
PROXY_PID=$!
for _ in $(seq 50); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
[ -s "$WORK/proxy.port" ] || die "the counting proxy did not start: $(cat "$WORK/proxy.err")"
PROXY_TCTI="swtpm:host=127.0.0.1,port=$(head -1 "$WORK/proxy.port")"

pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
enable_with() { # the driver's TPM: the proxy or swtpm directly (a new pcscd reads it at start)
  rm -f "$PC_CONFIG" # the file names one TPM: this test's own file, made again for the other route
  "$TPM_HMAC" --tcti "$1" pcsc enable --handle "$PC_HANDLE" --config "$PC_CONFIG" >"$WORK/enable.out" 2>&1 ||
    die "tpm-hmac pcsc enable --tcti $1: $(cat "$WORK/enable.out")"
}

# ---- run 1: counting (3 unlocks: the first after pcscd started, then warm) ----
enable_with "$PROXY_TCTI"
: >"$WORK/tpm-commands.log"
say "counting: private pcscd -a, driver -> proxy -> swtpm, 3 unlocks"
rc=0
pc_private_pcscd --apdu --log "$WORK/pcscd.log" "$WORK/reader.conf.d" \
  "$HERE/pcsc.sh" --client "$WORK" "$PC_SERIAL" count 3 >"$WORK/count.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || die "the counting run ended with $rc: $(tail -5 "$WORK/count.out" | tr '\n' '|')"
pc_stop PROXY_PID

# ---- run 2: times (driver -> swtpm directly, no APDU log) ----
enable_with "$DIRECT_TCTI"
say "timing: private pcscd -a, driver -> swtpm, $RUNS runs of each"
rc=0
pc_private_pcscd --apdu --log "$WORK/pcscd-time.log" "$WORK/reader.conf.d" \
  "$HERE/pcsc.sh" --client "$WORK" "$PC_SERIAL" time "$RUNS" >"$WORK/time.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || die "the timing run ended with $rc: $(tail -5 "$WORK/time.out" | tr '\n' '|')"

# ---- the table ----
mkdir -p "$OUT"
python3 - "$WORK" "$PC_SERIAL" "$RUNS" "$MADE_BY" "$PC_STOCK_VERSION" "$(pcscd --version 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)" \
  <<'PY' | tee "$OUT/pcsc.md"
import re, statistics, sys
work, serial, runs, made_by, kx_version, pcscd_version = sys.argv[1:]
NAMES = {0x120: "EvictControl", 0x131: "CreatePrimary", 0x143: "SelfTest", 0x144: "Startup", 0x153: "Create",
         0x155: "HMAC", 0x157: "Load", 0x161: "ContextLoad", 0x162: "ContextSave", 0x165: "FlushContext",
         0x167: "LoadExternal", 0x16B: "PolicyAuthValue", 0x173: "ReadPublic", 0x176: "StartAuthSession",
         0x17A: "GetCapability", 0x17B: "GetRandom", 0x17E: "PCR_Read", 0x18A: "TestParms", 0x18C: "PolicyPassword"}
name = lambda code: NAMES.get(code, f"0x{code:03X}")

# pcscd's log: (offset of the line's end, APDU bytes) for every APDU it passed to the driver.
log = open(f"{work}/pcscd.log", "rb").read()
apdus, pos = [], 0
for line in log.splitlines(keepends=True):
    pos += len(line)
    m = re.search(rb"APDU: ([0-9A-Fa-f ]+)", line)
    if m:
        apdus.append((pos, bytes.fromhex(m.group(1).decode())))
def kind(apdu):
    """KeePassXC's APDUs to the YubiKey OTP applet: SELECT; INS 01 (P1 10 serial, 30/38 HMAC of slot
    1/2, the test challenge being 1 byte PKCS#7-padded with 63 x 0x3F); INS 03 status."""
    if len(apdu) < 4:
        return "short APDU"
    ins, p1 = apdu[1], apdu[2]
    if ins == 0xA4:
        return "SELECT"
    if ins == 0x01 and p1 == 0x10:
        return "GET_SERIAL"
    if ins == 0x01 and p1 in (0x30, 0x38):
        slot = 1 if p1 == 0x30 else 2
        if apdu[6:69] == bytes([63]) * 63:
            return f"test challenge slot {slot}"
        return f"challenge slot {slot}"
    if ins == 0x03:
        return "STATUS"
    return f"INS {ins:02X} P1 {p1:02X}"
commands = []
for line in open(f"{work}/tpm-commands.log"):
    mark, code = line.split()
    commands.append((int(mark), int(code, 16)))
def cause(mark):
    """The last APDU pcscd had logged when the TPM command was sent."""
    last = None
    for end, apdu in apdus:
        if end <= mark:
            last = (end, apdu)
    return last

runs_seen = []
for line in open(f"{work}/count.out"):
    m = re.match(r"=== run (\d+) (\d+) (\d+) (\d+)", line)
    if m:
        runs_seen.append(tuple(int(x) for x in m.groups()))
def phases(start, end):
    """TPM commands of one unlock, by phase: detection (up to the slot 2 test challenge) and challenge."""
    in_run = [(a_end, a) for a_end, a in apdus if start < a_end <= end]
    split = max((a_end for a_end, a in in_run if kind(a) == "test challenge slot 2"), default=None)
    out = {"detection": [], "challenge": [], "by apdu": []}
    for mark, code in commands:
        if not (start < mark <= end):
            continue
        c = cause(mark)
        phase = "detection" if split is not None and c is not None and c[0] <= split else "challenge"
        out[phase].append(code)
        out["by apdu"].append((kind(c[1]) if c else "before any APDU", code))
    out["apdus"] = [kind(a) for _, a in in_run]
    return out
outside = [code for mark, code in commands if not any(s < mark <= e for _, s, e, _ in runs_seen)]

times = {"key": [], "plain": []}
failed = []
for line in open(f"{work}/time.out"):
    m = re.match(r"=== (key|plain) (\d+) ([0-9.]+) (\d+)", line)
    if m:
        times[m.group(1)].append(float(m.group(3)))
        if m.group(4) != "0":
            failed.append(line.strip())

print(f"Stock keepassxc-cli {kx_version} (Debian 12) through pcscd {pcscd_version} and the reader driver, swtpm; "
      f"databases by {made_by}; median of {runs} runs.\n")
print("| unlock | TPM commands (detection + challenge) | median ms |")
print("|---|---|---|")
key_ms = f"{statistics.median(times['key']):.0f}" if times["key"] else "n/a"
plain_ms = f"{statistics.median(times['plain']):.0f}" if times["plain"] else "n/a"
if not runs_seen:
    print(f"| stock keepassxc-cli ls --yubikey 1:{serial} through pcscd + driver | (the counting run recorded no unlock) | {key_ms} |")
else:
    first = phases(*runs_seen[0][1:3])
    warm = [phases(*r[1:3]) for r in runs_seen[1:]]
    def cell(p):
        return f"{len(p['detection']) + len(p['challenge'])} ({len(p['detection'])} + {len(p['challenge'])})"
    counts = f"{cell(first)} the first after pcscd started; " + ", ".join(sorted({cell(p) for p in warm})) + " after that"
    print(f"| stock keepassxc-cli ls --yubikey 1:{serial} through pcscd + driver | {counts} | {key_ms} |")
    print(f"| stock keepassxc-cli ls, the same KDF, password only (baseline) | 0 | {plain_ms} |")
    print()
    if times["key"] and times["plain"]:
        print(f"The key adds {statistics.median(times['key']) - statistics.median(times['plain']):.0f} ms to the median unlock "
              f"(with the key: min {min(times['key']):.0f}, max {max(times['key']):.0f} ms; password only: "
              f"min {min(times['plain']):.0f}, max {max(times['plain']):.0f} ms; the runs alternate, the first with the "
              f"key is the first after pcscd started; load average at the end {open('/proc/loadavg').read().split()[0]}).\n")
    # The driver's own time per APDU: pcscd's log gives each "SW:" line the microseconds since the
    # "APDU:" line before it, the time spent in the driver (and the TPM) for that APDU.
    spans, last = {}, None
    for line in open(f"{work}/pcscd-time.log", "rb"):
        m = re.match(rb"(\d+) (APDU|SW): ([0-9A-Fa-f ]*)", line)
        if not m:
            continue
        if m.group(2) == b"APDU":
            last = kind(bytes.fromhex(m.group(3).decode()))
        elif last is not None:
            spans.setdefault(last, []).append(int(m.group(1)) / 1000)
            last = None
    if spans.get("challenge slot 1"):
        tests, chals = spans.get("test challenge slot 1", []), spans["challenge slot 1"]
        other = sorted(v for k, v in spans.items() if "challenge slot 1" not in k for v in v)
        print(f"Time in the driver per APDU (pcscd's APDU log, driver -> swtpm directly): test challenge "
              f"{tests[0]:.1f} ms the first after pcscd started, then median {statistics.median(tests[1:] or tests):.1f} ms; "
              f"challenge median {statistics.median(chals):.1f} ms; every other APDU median "
              f"{statistics.median(other) if other else 0:.2f} ms.\n")
    def names(codes):
        return ", ".join(name(c) for c in codes) or "none"
    for label, p in (("first unlock", first), ("warm unlock", warm[0] if warm else None)):
        if p is None:
            continue
        print(f"TPM commands of one {label}, by the APDU that caused them:\n")
        grouped = []
        for k, code in p["by apdu"]:
            if grouped and grouped[-1][0] == k:
                grouped[-1][1].append(code)
            else:
                grouped.append((k, [code]))
        for k, codes in grouped:
            print(f"- {k}: {names(codes)}")
        print(f"- APDUs of the unlock ({len(p['apdus'])}): {', '.join(p['apdus'])}\n")
    if outside:
        print(f"TPM commands outside the unlocks (pcscd's polling, start-up): {names(outside)}\n")
if failed:
    print(f"FAILED runs: {'; '.join(failed)}")
PY
finish
