#!/usr/bin/env bash
# TPM keys with a PIN in the fork (issue 4's KeePassXC part): keepassxc-cli asks for the PIN on the
# terminal, the GUI in a dialog (screenshot); the right PIN opens the database, a wrong one is refused
# with the number of tries left, no PIN is refused without a TPM attempt.
# The PIN is asked once per unlock (issue 15): saves while the database stays open do not ask again
# (keepassxc-cli's interactive session and the GUI), and after close or lock the next unlock asks.
# Screenshots: build/keepassxc-VERSION/test-pin/{pin-dialog,unlocked,saved}.png
#
# Usage: tests/keepassxc/test-pin.sh VERSION     (2.7.4 or 2.7.10)
# Exit codes: 0 pass, 1 fail, 77 KeePassXC source not downloadable (skip).
set -euo pipefail
KX_TEST=pin
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"

kx_setup
# shellcheck source=gui-lib.sh
. "$KX_HERE/gui-lib.sh"
trap kx_stop_all EXIT

PIN=4711
printf '%s\n' "$PIN" >"$WORK/pin"
# The PIN key first (lowest handle); a second key without PIN makes the GUI show its key list
tpm_hmac create --pin-file "$WORK/pin" --handle 0x81000100 >"$WORK/create.log" 2>&1 &&
    tpm_hmac create --handle 0x81000101 >>"$WORK/create.log" 2>&1 ||
    { cat "$WORK/create.log" >&2; fail "tpm-hmac create"; finish; }
rm -f "$WORK/pin"
SERIAL=$((0x81000100))
DB=$WORK/pin.kdbx
PASSWORD=pin-test
PTY="python3 $KX_HERE/pty-run.py"
PROMPT='PIN of the TPM key at 0x81000100'

# Creating the database challenges twice (setting the key, then saving with a new KDF seed)
if $PTY --answer "$PROMPT" "$PIN" --answer "$PROMPT" "$PIN" -- \
    sh -c "echo '$PASSWORD' | '$KX_MAKE_DB' '$DB' 1:$SERIAL Bank Mail" >"$WORK/make-db.log" 2>&1; then
    pass "created $DB (password + TPM key with PIN), the PIN asked on the terminal"
else
    sed 's/^/    /' "$WORK/make-db.log" >&2
    fail "keepassxc-tpm-make-db with a PIN key"
    finish
fi

cli_pin() { # $1 = PIN to type ("" = just Enter); output in $WORK/cli.log
    $PTY --answer 'Enter password' "$PASSWORD" --answer "$PROMPT" "$1" -- \
        "$KX_CLI" ls --yubikey "1:$SERIAL" "$DB" >"$WORK/cli.log" 2>&1
}
if cli_pin "$PIN" && grep -q '^Bank' "$WORK/cli.log" && ! grep -q "$PIN" "$WORK/cli.log"; then
    pass "keepassxc-cli asks for the PIN on the terminal (not echoed) and opens it"
else
    sed 's/^/    /' "$WORK/cli.log" >&2
    fail "keepassxc-cli with the right PIN"
fi
if ! cli_pin 0000 && grep -q 'refused the PIN' "$WORK/cli.log" && grep -q 'tries left' "$WORK/cli.log"; then
    pass "a wrong PIN is refused: \"$(grep -o 'The TPM refused the PIN[^"]*' "$WORK/cli.log" | head -1)\""
else
    sed 's/^/    /' "$WORK/cli.log" >&2
    fail "keepassxc-cli with a wrong PIN"
fi
if ! cli_pin "" && grep -q 'needs its PIN, and none was entered' "$WORK/cli.log"; then
    pass "no PIN entered: refused without asking the TPM"
else
    sed 's/^/    /' "$WORK/cli.log" >&2
    fail "keepassxc-cli without a PIN"
fi

# Ctrl-C at the PIN prompt ends keepassxc-cli with the terminal's echo back on
if python3 "$KX_ROOT/rust/cli/tests/pty.py" --answer 'Enter password' 0 "$PASSWORD\n" --answer "$PROMPT" 0.5 '\x03' -- \
    "$KX_CLI" ls --yubikey "1:$SERIAL" "$DB" >"$WORK/ctrl-c.json" 2>&1 &&
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["echo"] and r["rc"] != 0 else 1)' "$WORK/ctrl-c.json"; then
    pass "Ctrl-C at the PIN prompt: keepassxc-cli ends and the terminal echoes again"
else
    sed 's/^/    /' "$WORK/ctrl-c.json" >&2
    fail "Ctrl-C at the PIN prompt leaves the terminal without echo"
fi

# keepassxc-cli's interactive session: one PIN for the unlock, none for the two saves, one after close
DBPROMPT='TPM demo> '
if $PTY --answer 'Enter password' "$PASSWORD" --answer "$PROMPT" "$PIN" \
    --answer "$DBPROMPT" "add -u first 'Saved once'" --answer "$DBPROMPT" "add -u second 'Saved twice'" \
    --answer "$DBPROMPT" "close" --answer '> ' "open --yubikey 1:$SERIAL $DB" \
    --answer 'Enter password' "$PASSWORD" --answer "$PROMPT" "$PIN" --answer "$DBPROMPT" "ls" \
    --answer "$DBPROMPT" "exit" -- "$KX_CLI" open --yubikey "1:$SERIAL" "$DB" >"$WORK/session.log" 2>&1 &&
    [ "$(grep -c "$PROMPT" "$WORK/session.log")" -eq 2 ] && grep -q 'Saved twice' "$WORK/session.log"; then
    pass "keepassxc-cli open: the PIN asked once per unlock, not for the two saves, again after close"
else
    sed 's/^/    /' "$WORK/session.log" >&2
    fail "keepassxc-cli open asks for the PIN other than once per unlock ($(grep -c "$PROMPT" "$WORK/session.log") prompts)"
fi

# The GUI asks in a dialog
kx_start_xvfb
kx_start_gui "$DB"
if ! WID=$(kx_wait_for_title 'pin\.kdbx \[Locked\] - KeePassXC'); then
    cat "$WORK/keepassxc.log" >&2
    fail "the unlock dialog did not appear"
    finish
fi
kx_gui_unlock_with_first_key "$WID" "$PASSWORD" "$WORK/unlock-dialog.png"
if kx_wait_for_title '^TPM key PIN$' >/dev/null; then
    sleep 1
    import -window root "$WORK/pin-dialog.png"
    pass "the GUI asks for the PIN in a dialog (screenshot $WORK/pin-dialog.png)"
    xdotool type --delay 40 "$PIN"
    xdotool key Return
else
    import -window root "$WORK/pin-dialog.png"
    fail "no PIN dialog (see $WORK/pin-dialog.png)"
fi
kx_check_unlocked "with the PIN"

# Two saves (each clone of an entry is saved at once: "save after every change" is on by default)
gui_save_without_pin() { # $1 = which save
    local before
    before=$(sha256sum <"$DB")
    # The first search result's row (the search field would take Ctrl+K itself)
    xdotool mousemove 470 168 click 1
    sleep 0.5
    xdotool key ctrl+k
    local dialog
    # Without a window manager the clone dialog gets the keyboard only when given it
    if dialog=$(kx_wait_for_title '^Clone Entry Options$'); then
        xdotool windowfocus --sync "$dialog" key Return
    fi
    for _ in $(seq 50); do
        [ "$(sha256sum <"$DB")" != "$before" ] && break
        xdotool search --name '^TPM key PIN$' >/dev/null 2>&1 && break
        sleep 0.2
    done
    if xdotool search --name '^TPM key PIN$' >/dev/null 2>&1; then
        import -window root "$WORK/saved.png"
        fail "the $1 save asked for the PIN again (see $WORK/saved.png)"
        xdotool key Escape
    elif [ "$(sha256sum <"$DB")" != "$before" ]; then
        pass "the $1 save wrote the database without asking for the PIN"
    else
        import -window root "$WORK/saved.png"
        fail "the $1 save did not happen (see $WORK/saved.png)"
    fi
}
# Only Bank and its clones in the entry list
xdotool key ctrl+f
sleep 0.5
xdotool type --delay 40 Bank
sleep 1
gui_save_without_pin first
gui_save_without_pin second
import -window root "$WORK/saved.png"
if $PTY --answer 'Enter password' "$PASSWORD" --answer "$PROMPT" "$PIN" -- "$KX_CLI" ls --yubikey "1:$SERIAL" "$DB" 2>&1 |
    grep -c '^Bank' | grep -qx 3; then
    pass "the GUI's saves hold two clones of Bank (checked with keepassxc-cli)"
else
    fail "the GUI's saved database does not hold the two clones"
fi
# Locking forgets the PIN: the next unlock asks again
if MAIN=$(kx_wait_for_title '^TPM demo - KeePassXC$'); then
    xdotool windowfocus --sync "$MAIN"
fi
xdotool key ctrl+l
if WID=$(kx_wait_for_title 'pin\.kdbx \[Locked\] - KeePassXC'); then
    sleep 1
    xdotool type --delay 40 "$PASSWORD"
    xdotool key Return
    if kx_wait_for_title '^TPM key PIN$' >/dev/null; then
        pass "after locking, the next unlock asks for the PIN again"
        xdotool type --delay 40 "$PIN"
        xdotool key Return
        kx_check_unlocked "again with the PIN"
    else
        import -window root "$WORK/relock.png"
        fail "the unlock after locking did not ask for the PIN (see $WORK/relock.png)"
    fi
else
    fail "Ctrl+L did not lock the database"
fi

finish
