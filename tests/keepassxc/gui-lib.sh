# shellcheck shell=bash
# GUI helpers for the tests/keepassxc GUI tests (sourced by bash after lib.sh): a private Xvfb, the
# fork's keepassxc with a fresh configuration, and the unlock dialog's hardware-key steps per version.
# The window coordinates are those of the stock 800x600 main window without a window manager; every
# test checks the outcome (window title, database contents), so a layout change shows up as a failure.

KX_XVFB_PID=
KX_GUI_PID=

# Starts Xvfb on a free display; exports DISPLAY.
kx_start_xvfb() {
    exec 3>"$WORK/display"
    Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
    KX_XVFB_PID=$!
    exec 3>&-
    for _ in $(seq 50); do
        [ -s "$WORK/display" ] && break
        sleep 0.1
    done
    DISPLAY=":$(head -1 "$WORK/display")"
    export DISPLAY
}

# Starts the fork's GUI on database $1 with a fresh configuration (no earlier unlock pre-selects a key).
kx_start_gui() {
    mkdir -p "$WORK/home" "$WORK/runtime"
    chmod 700 "$WORK/runtime"
    rm -f "$WORK/keepassxc.ini" "$WORK/keepassxc-local.ini"
    HOME=$WORK/home XDG_RUNTIME_DIR=$WORK/runtime "$KX_BIN/src/keepassxc" \
        --config "$WORK/keepassxc.ini" --localconfig "$WORK/keepassxc-local.ini" "$1" >"$WORK/keepassxc.log" 2>&1 &
    KX_GUI_PID=$!
}

kx_stop_gui() {
    if [ -n "$KX_GUI_PID" ]; then
        kill "$KX_GUI_PID" 2>/dev/null || true
        wait "$KX_GUI_PID" 2>/dev/null || true
        KX_GUI_PID=
    fi
}

kx_stop_all() {
    kx_stop_gui
    [ -z "$KX_XVFB_PID" ] || kill "$KX_XVFB_PID" 2>/dev/null || true
    stop_swtpm
}

# Prints the id of the first window whose title matches regex $1, waiting up to 20 s (or
# $KX_WAIT_SECONDS).
kx_wait_for_title() {
    for _ in $(seq $((${KX_WAIT_SECONDS:-20} * 5))); do
        wid=$(xdotool search --name "$1" 2>/dev/null | head -1 || true)
        if [ -n "$wid" ]; then
            echo "$wid"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# In the unlock dialog (window $1): types password $2, lists the hardware keys (screenshot $3) and
# picks the first one (lowest handle); then presses Unlock. Needs two or more keys: 2.7.10 shows
# the key list only then.
kx_gui_unlock_with_first_key() {
    local wid=$1 password=$2 shot=$3
    xdotool windowfocus --sync "$wid" 2>/dev/null || true
    sleep 3 # key detection runs in the background
    xdotool type --delay 40 "$password"
    case "$VERSION" in
        2.7.4)
            # Hardware Key row: a combo box and a Refresh button (no automatic detection for a new database)
            xdotool mousemove --window "$wid" 665 378 click 1
            sleep 2
            xdotool mousemove --window "$wid" 410 378 click 1
            sleep 1
            import -window root "$shot"
            # Item 0 is "Select hardware key…"; the keys follow, lowest handle first
            xdotool key Home Down Return
            ;;
        *)
            # "Use hardware key" check box, then the key list
            kx_wait_for_hardware_key_row "$wid"
            xdotool key Tab
            sleep 0.3
            xdotool key space
            sleep 0.5
            xdotool key Tab
            sleep 0.3
            xdotool key alt+Down
            sleep 1
            import -window root "$shot"
            xdotool key Home Return
            ;;
    esac
    sleep 0.3
    xdotool key Return # the dialog's default button: Unlock
}

# 2.7.10 hides the hardware-key row while it detects keys, and greys it out while it detects again
# (as it does whenever the window is activated); Tab skips it meanwhile. Waits up to 30 s until the
# row's label (window $1, where both layouts, one key or a list, have its text) is dark.
kx_wait_for_hardware_key_row() {
    local shot=$WORK/hardware-key-row.png darkest
    for _ in $(seq 60); do
        import -window "$1" "$shot" 2>/dev/null || true
        darkest=$(convert "$shot" -crop 60x12+140+334 -colorspace gray -format '%[fx:minima]' info: 2>/dev/null || echo 1)
        awk -v d="$darkest" 'BEGIN { exit !(d < 0.35) }' && return 0
        sleep 0.5
    done
    fail "the hardware-key row did not appear within 30 s (see $shot)"
}

# The outcome of an unlock: the window title turns into the database's name ("TPM demo", set by
# keepassxc-tpm-make-db). Screenshot $WORK/unlocked.png either way; $1 says how it was unlocked.
kx_check_unlocked() {
    local unlocked
    if unlocked=$(kx_wait_for_title '^TPM demo - KeePassXC$'); then
        sleep 1
        import -window root "$WORK/unlocked.png"
        pass "unlocked $1: window title \"$(xdotool getwindowname "$unlocked")\""
    else
        import -window root "$WORK/unlocked.png"
        sed 's/^/    /' "$WORK/keepassxc.log" >&2
        fail "the database did not unlock $1 (see $WORK/unlocked.png)"
    fi
}
