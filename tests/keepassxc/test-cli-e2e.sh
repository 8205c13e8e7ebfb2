#!/usr/bin/env bash
# Issue 3, test 2: end to end with the fork's keepassxc-cli against swtpm. A KDBX 4 database protected
# by password + TPM key, made with KeePassXC's own code (keepassxc-tpm-make-db), opens with
# `ls --yubikey 1:<serial>`; it fails with a clear message with a wrong password, with the TPM
# unreachable and after the TPM key is deleted; after `db-edit` (a save re-randomises the KDF seed and
# challenges again) it still opens. Also prints the unlock time with and without the TPM key.
#
# Usage: tests/keepassxc/test-cli-e2e.sh VERSION     (2.7.4 or 2.7.10)
# Exit codes: 0 pass, 1 fail, 77 KeePassXC source not downloadable (skip).
set -euo pipefail
KX_TEST=cli-e2e
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"

kx_setup

# A fresh key generated inside the TPM; its serial is the persistent handle in decimal.
tpm_hmac create >"$WORK/create.log" 2>&1 || { cat "$WORK/create.log" >&2; fail "tpm-hmac create"; finish; }
HANDLE=$(grep -o '0x81[0-9a-fA-F]\{6\}' "$WORK/create.log" | head -1 || true)
[ -n "$HANDLE" ] || { cat "$WORK/create.log" >&2; fail "tpm-hmac create printed no handle"; finish; }
SERIAL=$(printf '%d' "$HANDLE")
say "TPM key at $HANDLE = KeePassXC hardware key 1:$SERIAL ($TPM2TOOLS_TCTI)"

DB=$WORK/tpm.kdbx
PLAIN=$WORK/password-only.kdbx
printf 'correct horse\n' | "$KX_MAKE_DB" "$DB" "1:$SERIAL" "Bank" "Mail" >"$WORK/make-db.log" 2>&1 ||
    { cat "$WORK/make-db.log" >&2; fail "keepassxc-tpm-make-db"; finish; }
pass "created $DB with keepassx_core (password + TPM key)"

# KDBX 4: signature 03d9a29a 67fb4bb5, then minor 0000, major 0400 (little endian)
if [ "$(head -c 12 "$DB" | od -An -tx1 | tr -d ' \n')" = "03d9a29a67fb4bb500000400" ]; then
    pass "the database is KDBX 4.0"
else
    fail "the database is not KDBX 4.0: $(head -c 12 "$DB" | od -An -tx1)"
fi

cli() { # $1 = stdin text, rest = keepassxc-cli arguments; output in $WORK/out, $WORK/err
    printf '%s' "$1" >"$WORK/in"
    shift
    rc=0
    "$KX_CLI" "$@" <"$WORK/in" >"$WORK/out" 2>"$WORK/err" || rc=$?
    return "$rc"
}
expect_open() { # $1 password, $2 what
    if cli "$1
" ls --yubikey "1:$SERIAL" "$DB" && [ "$(cat "$WORK/out")" = "Bank
Mail" ]; then
        pass "$2"
    else
        sed 's/^/    /' "$WORK/out" "$WORK/err" >&2
        fail "$2"
    fi
}
expect_refused() { # $1 password, $2 message that stderr must contain, $3 what; TCTI from the caller
    if cli "$1
" ls --yubikey "1:$SERIAL" "$DB"; then
        fail "$3: it opened"
    elif grep -qF "$2" "$WORK/err" && [ ! -s "$WORK/out" ]; then
        pass "$3: \"$(grep -F "$2" "$WORK/err" | head -1 | sed 's/^Enter password[^:]*: //')\""
    else
        sed 's/^/    /' "$WORK/err" >&2
        fail "$3: expected \"$2\""
    fi
}

expect_open "correct horse" "ls --yubikey 1:$SERIAL opens it"

# Serial 0 ("the first key found") picks the first TPM key when no YubiKey is connected
if cli "correct horse
" ls --yubikey 1 "$DB" && [ "$(cat "$WORK/out")" = "Bank
Mail" ]; then
    pass "ls --yubikey 1 (no serial: the first key) opens it"
else
    sed 's/^/    /' "$WORK/out" "$WORK/err" >&2
    fail "ls --yubikey 1 (no serial)"
fi

expect_refused "wrong horse" "Invalid credentials were provided" "wrong password is refused"

if cli "correct horse
" ls "$DB"; then
    fail "opened without the hardware key"
else
    pass "without --yubikey it does not open"
fi

# db-edit saves the database: a new KDF seed, hence a new challenge to the TPM key.
if cli "correct horse
battery staple
battery staple
" db-edit --yubikey "1:$SERIAL" --set-password "$DB"; then
    pass "db-edit --set-password saved the database (TPM key kept)"
else
    sed 's/^/    /' "$WORK/out" "$WORK/err" >&2
    fail "db-edit --set-password"
fi
expect_open "battery staple" "after db-edit it opens with the new password and the TPM key"
expect_refused "correct horse" "Invalid credentials were provided" "after db-edit the old password is refused"

# Unlock time with and without the TPM key: a password-only database with the same KDF settings.
printf 'battery staple\n' | "$KX_MAKE_DB" "$PLAIN" none "Bank" "Mail" >/dev/null 2>&1 || fail "password-only database"
timeit() { # $1 = label, rest = command; prints the median of 5 wall times in ms
    label=$1
    shift
    times=""
    for _ in 1 2 3 4 5; do
        start=$(date +%s%N)
        if ! "$@" >/dev/null 2>&1; then
            fail "TIME: $label: a run failed, no timing"
            return 0
        fi
        times="$times $((($(date +%s%N) - start) / 1000000))"
    done
    median=$(echo "$times" | tr ' ' '\n' | sed '/^$/d' | sort -n | sed -n 3p)
    say "TIME: $label: median ${median} ms (runs:$times)"
}
timeit "keepassxc-cli ls, password + TPM key" sh -c "echo 'battery staple' | '$KX_CLI' ls --yubikey 1:$SERIAL '$DB'"
timeit "keepassxc-cli ls, password only, same KDF" sh -c "echo 'battery staple' | '$KX_CLI' ls '$PLAIN'"
echo 'battery staple' | "$KX_CLI" db-info --yubikey "1:$SERIAL" "$DB" 2>/dev/null | grep '^KDF' | sed "s/^/[$KX_TEST $VERSION] both databases: /"

# The TPM unreachable
TPM2TOOLS_TCTI=$(kx_dead_tcti) expect_refused "battery staple" "No TPM could be used" "TPM unreachable"

# A TPM device this user may not open: the message names the group that owns the device (here
# root, on Debian tss), read from the device, not assumed. Runs as nobody, so it needs root.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    DENIED=$(mktemp -d)
    : >"$DENIED/tpmrm0"
    cp "$DB" "$DENIED/db.kdbx"
    chmod 0755 "$DENIED" && chmod 0660 "$DENIED/tpmrm0" && chmod 0644 "$DENIED/db.kdbx"
    rc=0
    printf 'battery staple\n' | HOME=$DENIED TPM2TOOLS_TCTI=device:$DENIED/tpmrm0 \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$KX_CLI" ls --yubikey "1:$SERIAL" "$DENIED/db.kdbx" \
        >"$WORK/out" 2>"$WORK/err" || rc=$?
    denied="The TPM could not be opened: permission denied opening $DENIED/tpmrm0; add yourself to the \"root\" group"
    if [ "$rc" -ne 0 ] && grep -qF "$denied" "$WORK/err" && ! grep -qF '"tss"' "$WORK/err"; then
        pass "a device of group root: \"$(grep -F "$denied" "$WORK/err" | head -1 | sed 's/^Enter password[^:]*: //')\""
    else
        sed 's/^/    /' "$WORK/err" >&2
        fail "permission denied should name the device's group (root)"
    fi
    rm -rf "$DENIED"
else
    say "SKIP: the permission check needs root and setpriv"
fi

# The TPM key deleted
if tpm_hmac delete --handle "$HANDLE" >"$WORK/delete.log" 2>&1; then
    expect_refused "battery staple" "There is no TPM key at $HANDLE" "TPM key deleted"
else
    cat "$WORK/delete.log" >&2
    fail "tpm-hmac delete --handle $HANDLE"
fi

finish
