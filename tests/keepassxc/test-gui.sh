#!/usr/bin/env bash
# Issue 3, test 3: the fork's GUI under Xvfb. Opens a database protected by password + TPM key,
# lists the TPM keys in the unlock dialog (screenshot), selects the database's key with xdotool,
# unlocks (screenshot) and checks the outcome: the window title turns from "demo.kdbx [Locked]" into
# the database's name. Then Database Security > Change Challenge-Response lists the TPM keys
# (screenshot); choosing a key kept in a file (issue 31: a TSS2 key file, no persistent handle) and OK
# saves the database, which keepassxc-cli then opens with that key and not with the old one. Two
# persistent keys and the key file exist, so that the GUI shows its key lists with all three kinds.
# Screenshots: build/keepassxc-VERSION/test-gui/{unlock-dialog,unlocked,database-security}.png
#
# Usage: tests/keepassxc/test-gui.sh VERSION     (2.7.4 or 2.7.10)
# Exit codes: 0 pass, 1 fail, 77 KeePassXC source not downloadable (skip).
set -euo pipefail
KX_TEST=gui
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"

for tool in Xvfb xdotool import; do
    command -v "$tool" >/dev/null 2>&1 || { say "FAIL: $tool missing (apt-get install xvfb xdotool imagemagick)" >&2; exit 1; }
done

kx_setup

# shellcheck source=gui-lib.sh
. "$KX_HERE/gui-lib.sh"
trap kx_stop_all EXIT

tpm_hmac create --handle 0x81000100 >"$WORK/create.log" 2>&1 &&
    tpm_hmac create --handle 0x81000101 --label laptop >>"$WORK/create.log" 2>&1 &&
    tpm_hmac create --key-file "$WORK/key-file.tss" --json >"$WORK/key-file.json" 2>>"$WORK/create.log" ||
    { cat "$WORK/create.log" >&2; fail "tpm-hmac create"; finish; }
KEY_FILE_SERIAL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["serial"])' "$WORK/key-file.json")
SERIAL=$((0x81000100))
DB=$WORK/demo.kdbx
PASSWORD=gui-test
printf '%s\n' "$PASSWORD" | "$KX_MAKE_DB" "$DB" "1:$SERIAL" "Bank" "Mail" >"$WORK/make-db.log" 2>&1 ||
    { cat "$WORK/make-db.log" >&2; fail "keepassxc-tpm-make-db"; finish; }

kx_start_xvfb
kx_start_gui "$DB"
if ! WID=$(kx_wait_for_title 'demo\.kdbx \[Locked\] - KeePassXC'); then
    cat "$WORK/keepassxc.log" >&2
    fail "the unlock dialog did not appear"
    finish
fi
pass "the unlock dialog is up (window $WID, $DISPLAY)"
kx_gui_unlock_with_first_key "$WID" "$PASSWORD" "$WORK/unlock-dialog.png"

kx_check_unlocked "through the TPM key"

# Database Security: change the challenge-response key to the second TPM key (window coordinates
# of the stock 800x600 main window; the outcome check below catches a layout change)
WID=$(xdotool search --name '^TPM demo - KeePassXC$' | head -1 || true)
if [ -n "$WID" ]; then
    case "$VERSION" in
        2.7.4)
            xdotool mousemove --window "$WID" 38 13 click 1 # Database menu
            sleep 1
            xdotool mousemove --window "$WID" 108 337 click 1 # Database Security…
            sleep 2
            xdotool mousemove --window "$WID" 290 516 click 1 # Change Challenge-Response
            sleep 3
            xdotool mousemove --window "$WID" 408 439 click 1 # the key list
            ok_button="630 551"
            ;;
        *)
            xdotool mousemove --window "$WID" 447 54 click 1 # Database settings (tool bar)
            sleep 2
            xdotool mousemove --window "$WID" 58 245 click 1 # Security
            sleep 2
            xdotool mousemove --window "$WID" 300 482 click 1 # Change Challenge-Response
            sleep 3
            xdotool mousemove --window "$WID" 430 455 click 1 # the key list
            ok_button="560 551"
            ;;
    esac
    sleep 1
    import -window root "$WORK/database-security.png"
    xdotool key Home Down Down Return # the third key: the key file (persistent keys are listed first)
    sleep 0.5
    # shellcheck disable=SC2086 # two coordinates
    xdotool mousemove --window "$WID" $ok_button click 1
    sleep 4 # KeePassXC saves after every change: a new KDF seed, challenged with the new key
fi
kx_stop_gui

SERIAL2=$KEY_FILE_SERIAL
if printf '%s\n' "$PASSWORD" | "$KX_CLI" ls --yubikey "1:$SERIAL2" "$DB" >"$WORK/cli-new-key.log" 2>&1; then
    pass "after Database Security > Challenge-Response, keepassxc-cli opens it with the key file chosen there, 1:$SERIAL2"
else
    sed 's/^/    /' "$WORK/cli-new-key.log" >&2
    fail "the database does not open with the key chosen in Database Security (1:$SERIAL2)"
fi
if printf '%s\n' "$PASSWORD" | "$KX_CLI" ls --yubikey "1:$SERIAL" "$DB" >"$WORK/cli-old-key.log" 2>&1; then
    fail "the database still opens with the old key 1:$SERIAL"
elif grep -q 'Invalid credentials' "$WORK/cli-old-key.log"; then
    pass "the old TPM key 1:$SERIAL no longer opens it (invalid credentials)"
else
    sed 's/^/    /' "$WORK/cli-old-key.log" >&2
    fail "the old key 1:$SERIAL was not refused for the right reason"
fi

for shot in unlock-dialog unlocked database-security; do
    if [ -s "$WORK/$shot.png" ]; then
        say "screenshot: $WORK/$shot.png"
    else
        fail "no screenshot $shot.png"
    fi
done

finish
