#!/usr/bin/env bash
# Issue 15: `scripts/demo.sh --gui` opens the demo database in the fork's GUI on the demo's own
# software TPM, which tpm-hmac can use at the same time (both behind tpm2-abrmd); the database
# unlocks there with its password and the TPM key, and closing KeePassXC ends the demo and its
# simulator. Runs the README's main job again (incremental), on a private display and HOME.
# Screenshot: build/demo-gui/unlocked.png
#
# Usage: tests/keepassxc/test-demo-gui.sh VERSION   (the version the demo picks: 2.7.10 when its source
#        is there, else 2.7.4; the other one is skipped)
# Exit codes: 0 pass, 1 fail, 77 skip.
set -euo pipefail
KX_TEST=demo-gui
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
DEMO_VERSION=2.7.4
[ -f "$KX_BUILD/keepassxc-2.7.10/.fetched" ] && DEMO_VERSION=2.7.10
if [ "$VERSION" != "$DEMO_VERSION" ]; then
    say "SKIP: the demo opens KeePassXC $DEMO_VERSION"
    exit 77
fi
WORK=$KX_BUILD/demo-gui
rm -rf "$WORK"
mkdir -p "$WORK/home"
# shellcheck source=gui-lib.sh
. "$KX_HERE/gui-lib.sh"
DEMO_PID=
# shellcheck disable=SC2317 # run by the EXIT trap
stop_demo() {
    [ -z "$DEMO_PID" ] || kill "$DEMO_PID" 2>/dev/null || true
    [ -z "$KX_XVFB_PID" ] || kill "$KX_XVFB_PID" 2>/dev/null || true
}
trap stop_demo EXIT
kx_start_xvfb
# The demo on its own software TPM, with a HOME of its own so the GUI's settings stay out of the
# user's (cargo and rustup are named, as HOME no longer leads to them)
CARGO=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
# (and never on this machine's TPM: it would get a key of the demo's)
env -u TPM2TOOLS_TCTI -u KEEPASSXC_TPM_METADATA -u KEEPASSXC_TPM_BACKEND HOME="$WORK/home" DEMO_SOFTWARE_TPM=1 \
    CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
    PATH="$(dirname "$CARGO"):$PATH" XDG_RUNTIME_DIR="$WORK/home" \
    "$KX_ROOT/scripts/demo.sh" --gui >"$WORK/demo.log" 2>&1 &
DEMO_PID=$!
ln -sf demo.log "$WORK/keepassxc.log" # where gui-lib.sh looks for the GUI's output
if ! WID=$(KX_WAIT_SECONDS=600 kx_wait_for_title 'demo\.kdbx \[Locked\] - KeePassXC'); then
    tail -20 "$WORK/demo.log" >&2
    fail "demo.sh --gui did not open the demo database in the GUI"
    finish
fi
pass "demo.sh --gui opened $(xdotool getwindowname "$WID")"
# The CLI shares the simulator with the GUI: tpm-hmac through the demo's tpm2-abrmd
if DBUS_SESSION_BUS_ADDRESS="unix:path=$KX_BUILD/demo/abrmd/bus" KEEPASSXC_TPM_METADATA=$KX_BUILD/demo/keys.json \
    "$KX_ROOT/target/release/tpm-hmac" --tcti tabrmd:bus_type=session list >"$WORK/list.log" 2>&1 &&
    grep -q '^0x81' "$WORK/list.log"; then
    pass "tpm-hmac lists the demo key while the GUI has the simulator open"
else
    cat "$WORK/list.log" >&2
    fail "tpm-hmac cannot use the demo's simulator while the GUI runs"
fi
kx_gui_unlock_with_first_key "$WID" "demo password" "$WORK/unlock-dialog.png"
kx_check_unlocked "in the demo's GUI with its password and TPM key"
xdotool windowfocus --sync "$WID" key ctrl+q
for _ in $(seq 100); do
    kill -0 "$DEMO_PID" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "$DEMO_PID" 2>/dev/null; then
    fail "the demo did not end when KeePassXC closed"
else
    rc=0
    wait "$DEMO_PID" || rc=$?
    DEMO_PID=
    if [ "$rc" -eq 0 ] && ! pgrep -f "tpmstate dir=$KX_BUILD/demo/swtpm" >/dev/null; then
        pass "closing KeePassXC ended the demo (exit 0) and stopped its simulator"
    else
        tail -5 "$WORK/demo.log" >&2
        fail "after KeePassXC closed: demo exit $rc, simulator $(pgrep -f "tpmstate dir=$KX_BUILD/demo/swtpm" || echo gone)"
    fi
fi
finish
