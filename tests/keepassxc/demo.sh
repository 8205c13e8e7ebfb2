#!/usr/bin/env bash
# The KeePassXC part of the README's main job: builds the newest KeePassXC fork obtainable here
# (2.7.10, else 2.7.4), creates a demo database protected by password + the TPM key at HANDLE with
# KeePassXC's own code, opens it with the fork's keepassxc-cli and prints its entries, then says how
# to open it in the fork's GUI; with DEMO_GUI=1 it opens it there and returns when the GUI closes.
#
# Usage: tests/keepassxc/demo.sh HANDLE      (TPM2TOOLS_TCTI names the TPM, as for tpm-hmac)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HANDLE   (e.g. 0x81000100)" >&2; exit 2; }
HANDLE=$1
SERIAL=$((HANDLE))
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}

VERSION=""
for candidate in 2.7.10 2.7.4; do
    echo "== Building the KeePassXC $candidate fork (first build about 10 minutes; later ones are incremental)"
    rc=0
    "$HERE/build-fork.sh" "$candidate" || rc=$?
    if [ "$rc" -eq 0 ]; then
        VERSION=$candidate
        break
    elif [ "$rc" -ne 77 ]; then
        exit "$rc"
    fi
    echo "== KeePassXC $candidate is not available here; trying the next version"
done
[ -n "$VERSION" ] || { echo "demo: no KeePassXC source could be downloaded" >&2; exit 1; }
BIN=$BUILD/keepassxc-$VERSION/build

DIR=$BUILD/demo
DB=$DIR/demo.kdbx
PASSWORD="demo password"
mkdir -p "$DIR"
rm -f "$DB"
echo "== Creating $DB: password \"$PASSWORD\" + TPM key $HANDLE (KeePassXC hardware key 1:$SERIAL)"
# Run from its build tree, the fork is told where the backend is (it searches only where an installer puts it)
export KEEPASSXC_TPM_BACKEND=$BIN/cargo/release/libkeepassxc_tpm_backend.so
printf '%s\n' "$PASSWORD" | "$BIN/src/keepassxc-tpm-make-db" "$DB" "1:$SERIAL" "Example bank" "Example mail"

echo "== Opening it with the fork's keepassxc-cli: keepassxc-cli ls --yubikey 1:$SERIAL $DB"
printf '%s\n' "$PASSWORD" | "$BIN/src/cli/keepassxc-cli" ls --yubikey "1:$SERIAL" "$DB"
printf '%s\n' "$PASSWORD" | "$BIN/src/cli/keepassxc-cli" show --yubikey "1:$SERIAL" "$DB" "Example bank"

if [ "$VERSION" = 2.7.4 ]; then
    PICK="click Refresh next to \"Hardware Key\" and choose \"TPM 2.0 HMAC-SHA1 ... [$SERIAL] Challenge-Response - Slot 1\""
else
    PICK="tick \"Use hardware key\" (with several keys, choose \"TPM 2.0 HMAC-SHA1 ... [$SERIAL] - Slot 1\")"
fi
if [ -n "${DEMO_GUI:-}" ]; then
    echo "== Opening $DB in the fork's GUI: enter the password \"$PASSWORD\", $PICK, then Unlock."
    echo "   The TPM stays available until you close KeePassXC."
    # Settings, lock file and socket of the demo's own: a KeePassXC you already run (single instance)
    # and your settings stay out of it. Fresh each run, as the database is: remembered from a last
    # run, "Use hardware key" would be ticked already and the steps above would untick it.
    rm -f "$DIR/keepassxc.ini" "$DIR/keepassxc-local.ini"
    mkdir -p "$DIR/tmp"
    chmod 700 "$DIR/tmp"
    TMPDIR=$DIR/tmp "$BIN/src/keepassxc" --config "$DIR/keepassxc.ini" --localconfig "$DIR/keepassxc-local.ini" "$DB"
    exit 0
fi
echo "== Open it in the fork's GUI:"
case "${TPM2TOOLS_TCTI:-}" in
    swtpm:* | tabrmd:*)
        # This software TPM stops with the demo; --gui keeps it running for the GUI
        echo "     scripts/demo.sh --gui        (the software TPM runs until you close KeePassXC)" ;;
    *)
        echo "     TPM2TOOLS_TCTI='${TPM2TOOLS_TCTI:-device:/dev/tpmrm0}' KEEPASSXC_TPM_BACKEND=$BIN/cargo/release/libkeepassxc_tpm_backend.so $BIN/src/keepassxc $DB" ;;
esac
cat <<EOF
   In the unlock dialog enter the password "$PASSWORD", $PICK, then Unlock.
   To protect one of your own databases: Database > Database Security > Add additional protection >
   Challenge-Response, and pick the TPM entry.
EOF
