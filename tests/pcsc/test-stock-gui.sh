#!/usr/bin/env bash
# Issue 23, "Tests": Debian 12's stock, unmodified KeePassXC GUI (the machine's /usr/bin/keepassxc,
# 2.7.4) lists a TPM key served by the reader driver in its unlock dialog and unlocks a held-out
# database with it. A key with a known secret is imported into a private swtpm and enabled
# (`tpm-hmac pcsc enable`); make-db.py makes the held-out database (kdbxtool, the response computed
# in software from the secret); a private pcscd (private-pcscd.sh: own mount namespace, own
# /run/pcscd, own reader configuration) loads the driver, and beside it KeePassXC runs on a private
# Xvfb with a HOME, configuration, runtime and temporary directory of its own (no user setting is
# read or written). xdotool types the password, clicks the hardware key's Refresh button, opens
# the key list (screenshot unlock-dialog.png, cropped to the window: unlock-dialog-crop.png) and
# picks the first key, then Unlock. Checks: OCR of the open list (tesseract) shows the card as
# "(PCSC) ... [<serial>] ... Slot 1"; the window title turns from "Passwords.kdbx [Locked]" into the
# database's name; KeePassXC remembers "<serial>:1" as the key it unlocked with. The coordinates
# are those of the 800x600 main window without a window manager (as tests/keepassxc/gui-lib.sh);
# every outcome is checked, so a layout change shows up as a failure.
# Debian's keepassxc, pcscd, pcsc-tools, xvfb, xdotool, imagemagick and tesseract-ocr, when
# missing, are installed for the test and purged again at its end. The machine's pcscd is never
# touched.
#
# Usage: tests/pcsc/test-stock-gui.sh [--docs]        (as root)
#   --docs  also copies the cropped screenshot to docs/stock-unlock-dialog.png
#   (test-stock-gui.sh --client DIR is its own half that runs beside pcscd)
# Environment: as tests/pcsc/lib.sh (KEEPASSXC_TPM_PCSC_NO_BUILD=1: tpm-hmac and the driver built).
# Exit codes: 0 pass, 1 fail, 2 usage, 77 skip (not root; not Debian 12; the machine's keepassxc is
# the fork's package; no Python >= 3.12 or kdbxtool wheel).
set -euo pipefail
PC_TEST=stock-gui
# Where KeePassXC opens the database (shown in the dialog): see the client half.
GUI_DB=/home/user/Passwords.kdbx

# ---- the client half: beside the private pcscd, Debian's keepassxc on the test's Xvfb ------------
# Prints sections "=== NAME" with what happened; screenshots go to DIR.
if [ "${1:-}" = --client ]; then
  # shellcheck source=lib.sh
  . "$(dirname "$0")/lib.sh"
  DIR=$2
  GUI_PID=""
  # shellcheck disable=SC2317 # run by the EXIT trap
  stop_gui() {
    [ -n "$GUI_PID" ] || return 0
    kill "$GUI_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$GUI_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$GUI_PID" 2>/dev/null || true
    wait "$GUI_PID" 2>/dev/null || true
    GUI_PID=""
  }
  trap stop_gui EXIT
  wait_for_title() { # regex; prints the window id; up to 20 s
    local wid
    for _ in $(seq 100); do
      wid=$(xdotool search --name "$1" 2>/dev/null | head -1 || true)
      [ -n "$wid" ] && { echo "$wid"; return 0; }
      sleep 0.2
    done
    return 1
  }
  # The dialog shows the database's full path, and the screenshot goes into docs/: the database is
  # put at a neutral path, on a tmpfs over /home in this private mount namespace only (the
  # machine's /home is not touched; unmounted on the way out, and gone with the namespace anyway).
  [ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] || die "--client runs only in private-pcscd.sh's mount namespace"
  case "$DIR/" in /home/*) die "the work directory $DIR is under /home, which the client covers" ;; esac
  mount -t tmpfs -o mode=0755 tmpfs /home
  HOME_MOUNTED=1
  # shellcheck disable=SC2317 # run by the EXIT trap
  client_exit() {
    stop_gui
    if [ "${HOME_MOUNTED:-}" = 1 ]; then umount /home 2>/dev/null || umount -l /home || true; HOME_MOUNTED=""; fi
  }
  trap client_exit EXIT
  mkdir -p "$(dirname "$GUI_DB")"
  cp "$DIR/held-out.kdbx" "$GUI_DB"
  echo "=== card"
  pc_wait_card && echo present || echo "no card in 10 s"
  mkdir -p "$DIR/home" "$DIR/runtime" "$DIR/tmp"
  chmod 700 "$DIR/runtime"
  HOME=$DIR/home XDG_CONFIG_HOME=$DIR/home/.config XDG_CACHE_HOME=$DIR/home/.cache XDG_DATA_HOME=$DIR/home/.local/share \
    XDG_RUNTIME_DIR=$DIR/runtime TMPDIR=$DIR/tmp /usr/bin/keepassxc \
    --config "$DIR/keepassxc.ini" --localconfig "$DIR/keepassxc-local.ini" "$GUI_DB" >"$DIR/keepassxc.log" 2>&1 &
  GUI_PID=$!
  echo "=== unlock dialog"
  if ! WID=$(wait_for_title "^$(basename "$GUI_DB" | sed 's/\./\\./g') \\[Locked\\] - KeePassXC\$"); then
    echo "no unlock dialog in 20 s"
    import -window root "$DIR/no-dialog.png" || true
    exit 0
  fi
  echo "window $WID"
  xdotool windowfocus --sync "$WID" 2>/dev/null || true
  sleep 2
  xdotool type --delay 40 "$(head -1 "$DIR/password")"
  # The Hardware Key row: the key list and its Refresh button (a fresh configuration: no detection
  # until Refresh). Detection sends KeePassXC's two test challenges to the card.
  xdotool mousemove --window "$WID" 665 378 click 1
  sleep 3
  import -window root "$DIR/after-refresh.png"
  xdotool mousemove --window "$WID" 410 378 click 1
  sleep 1
  import -window root "$DIR/unlock-dialog.png"
  xdotool getwindowgeometry --shell "$WID" | sed 's/^/geometry /'
  # Item 0 is "Select hardware key…"; the card follows.
  xdotool key Home Down Return
  sleep 0.5
  xdotool key Return # the dialog's default button: Unlock
  echo "=== unlocked"
  if wid=$(wait_for_title '^Database - KeePassXC$'); then
    sleep 1
    echo "title $(xdotool getwindowname "$wid")"
  else
    echo "no unlocked window in 20 s; windows: $(xdotool search --name KeePassXC getwindowname %@ 2>/dev/null | tr '\n' '|')"
  fi
  import -window root "$DIR/unlocked.png"
  stop_gui # KeePassXC quits on SIGTERM and writes its settings
  echo "=== local config"
  cat "$DIR/keepassxc-local.ini" 2>&1 || true
  client_exit
  trap - EXIT
  exit 0
fi

# ---- the test ---------------------------------------------------------------------------------
DOCS=0
case "${1:-}" in
  "") ;;
  --docs) DOCS=1 ;;
  *) echo "usage: $0 [--docs]" >&2; exit 2 ;;
esac
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
T_START=$(pc_now)
pc_need_root
pc_need_tools unshare python3
pc_stock_keepassxc xvfb xdotool imagemagick tesseract-ocr
pc_need_tools Xvfb xdotool import convert tesseract
pc_setup_key stock-gui
pc_timed "venv" pc_venv
pc_timed "make-db (kdbxtool, software HMAC)" pc_make_db "$WORK/held-out.kdbx"

# A private X server (outside the namespace; its socket is in /tmp, which the namespace shares).
XVFB_PID=""
pc_on_exit pc_stop XVFB_PID
exec 3>"$WORK/display"
Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
# shellcheck disable=SC2034 # read by pc_stop, through its name
XVFB_PID=$!
exec 3>&-
for _ in $(seq 50); do [ -s "$WORK/display" ] && break; sleep 0.1; done
[ -s "$WORK/display" ] || die "Xvfb did not start: $(tail -3 "$WORK/xvfb.log" | tr '\n' '|')"
DISPLAY=":$(head -1 "$WORK/display")"
export DISPLAY

pc_reader_conf "$WORK/reader.conf.d/keepassxc-tpm" "$PC_CONFIG" "$PC_DRIVER"
say "pcscd (private) and Debian's keepassxc $PC_STOCK_VERSION on $DISPLAY"
rc=0
pc_timed "private pcscd + stock keepassxc GUI" pc_private_pcscd --log "$WORK/pcscd.log" "$WORK/reader.conf.d" \
  "$PC_HERE/test-stock-gui.sh" --client "$WORK" >"$WORK/client.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "the private pcscd run ended with $rc: $(tail -5 "$WORK/client.out" | tr '\n' '|')"

section() { awk -v s="=== $1" '$0 == s { on = 1; next } /^=== / { on = 0 } on' "$WORK/client.out"; }
[ "$(section card)" = present ] || fail "the driver's card did not show up: $(section card); pcscd: $(tail -5 "$WORK/pcscd.log" | tr '\n' '|')"
if section "unlock dialog" | grep -q '^window '; then
  pass "Debian's keepassxc $PC_STOCK_VERSION shows the unlock dialog of the held-out database ($GUI_DB in the namespace)"
else
  fail "no unlock dialog: $(section "unlock dialog" | tr '\n' '|'); keepassxc: $(tail -5 "$WORK/keepassxc.log" | tr '\n' '|')"
fi

# The window's rectangle on the screen: the screenshot cropped to it (as docs/*.png).
geometry() { section "unlock dialog" | sed -n "s/^geometry $1=//p"; }
crop=""
if [ -s "$WORK/unlock-dialog.png" ] && [ -n "$(geometry WIDTH)" ]; then
  crop="$(geometry WIDTH)x$(geometry HEIGHT)+$(geometry X)+$(geometry Y)"
  convert "$WORK/unlock-dialog.png" -crop "$crop" +repage -define png:exclude-chunks=date,time "$WORK/unlock-dialog-crop.png" ||
    fail "cannot crop the screenshot to $crop"
fi
# OCR of the open key list, the hardware-key row and below (scaled up for tesseract).
ocr=""
if [ -s "$WORK/unlock-dialog-crop.png" ]; then
  convert "$WORK/unlock-dialog-crop.png" -crop 800x130+0+330 +repage -colorspace gray -resize 300% "$WORK/key-list.png"
  ocr=$(tesseract "$WORK/key-list.png" - --psm 6 2>/dev/null | tr -s ' \n' ' ' || true)
  printf '%s\n' "$ocr" >"$WORK/key-list.txt"
fi
if grep -q "PCSC" <<<"$ocr" && grep -q "\[$PC_SERIAL\]" <<<"$ocr" && grep -q "Slot 1" <<<"$ocr"; then
  pass "after Refresh the key list shows the card: \"$(grep -o "(PCSC)[^]]*\[$PC_SERIAL\][^1]*Slot 1" <<<"$ocr" | head -1)\" (OCR of $WORK/unlock-dialog-crop.png)"
else
  fail "the key list does not read \"(PCSC) ... [$PC_SERIAL] ... Slot 1\": OCR \"$ocr\" (see $WORK/unlock-dialog.png)"
fi
if section unlocked | grep -qx "title Database - KeePassXC"; then
  pass "unlocked with password + the card: window title \"Database - KeePassXC\""
else
  fail "the database did not unlock: $(section unlocked | tr '\n' '|') (see $WORK/unlocked.png); keepassxc: $(tail -5 "$WORK/keepassxc.log" | tr '\n' '|')"
fi
# LastChallengeResponse is a QVariant hash in QSettings' escaped binary form (UTF-16 strings): its
# text with the escapes undone and the NULs dropped holds the database's path and "serial:slot".
last_cr=$(section "local config" | python3 -c 'import re, sys
for line in sys.stdin:
    if line.startswith("LastChallengeResponse="):
        raw = line.split("=", 1)[1].strip()
        raw = re.sub(r"\\x([0-9a-fA-F]{1,4})", lambda m: chr(int(m.group(1), 16)), raw).replace("\\0", "\0")
        print("".join(c for c in raw if c.isprintable()))')
if grep -qF "$GUI_DB" <<<"$last_cr" && grep -qF "$PC_SERIAL:1" <<<"$last_cr"; then
  pass "KeePassXC remembers the key it unlocked with as $PC_SERIAL:1 (LastChallengeResponse)"
else
  fail "LastChallengeResponse does not name $GUI_DB and $PC_SERIAL:1: \"$last_cr\" ($(section "local config" | grep LastChallengeResponse))"
fi
if [ "$DOCS" = 1 ]; then
  if [ -s "$WORK/unlock-dialog-crop.png" ] && [ "$HARNESS_FAILURES" -eq 0 ]; then
    cp "$WORK/unlock-dialog-crop.png" "$PC_ROOT/docs/stock-unlock-dialog.png"
    say "screenshot saved as docs/stock-unlock-dialog.png ($crop of the screen)"
  else
    fail "--docs: no screenshot saved (a check failed or there was none)"
  fi
fi
for shot in unlock-dialog unlock-dialog-crop unlocked; do
  [ -s "$WORK/$shot.png" ] && say "screenshot: $WORK/$shot.png"
done
if [ -n "$(findmnt -rn -o TARGET | grep -E '^/run/pcscd' || true)" ]; then
  fail "a mount of the test is left: $(findmnt -rn -o TARGET | grep -E '^/run/pcscd' | tr '\n' ' ')"
fi
pc_note_time "whole script" "$(pc_secs "$T_START" "$(pc_now)")"
finish
