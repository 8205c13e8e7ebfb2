#!/usr/bin/env bash
# Issue 7 in the fork: KeePassXC with TPM support runs where tpm2-tss is absent. The fork's binaries
# do not need libtss2 (readelf); with the tpm2-tss libraries hidden from the process (a private mount
# namespace whose library directory has them whited out), keepassxc-cli opens a password-only
# database, refuses a TPM-protected one with a message that names what is missing, and KeePassXC's
# hardware-key test runs and finds no key.
#
# Usage: tests/keepassxc/test-no-tss.sh VERSION     (2.7.4 or 2.7.10); needs root (unshare, mount)
# Exit codes: 0 pass, 1 fail, 77 KeePassXC source not downloadable (skip).
set -euo pipefail
KX_TEST=no-tss
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"

kx_build_fork
kx_tpm_hmac_build
kx_fresh_workdir

BACKEND=$KX_BACKEND
for bin in src/keepassxc src/cli/keepassxc-cli src/keepassxc-tpm-make-db tests/testcli tests/testykchallengeresponsekey; do
    if readelf -d "$KX_BIN/$bin" | grep NEEDED | grep -q 'libtss2'; then
        fail "$bin needs libtss2: $(readelf -d "$KX_BIN/$bin" | grep NEEDED | grep libtss2 | tr -s ' ' | tr '\n' ' ')"
    else
        pass "$bin does not need libtss2 (readelf -d)"
    fi
done
if readelf -d "$BACKEND" | grep NEEDED | grep -q 'libtss2-esys'; then
    pass "the backend loaded at run time ($(basename "$BACKEND")) is what needs libtss2-esys"
else
    fail "$BACKEND does not need libtss2-esys: is it the TPM backend?"
fi

# The backend search list holds no build-tree path (code planted there would run in KeePassXC)
for bin in src/keepassxc src/cli/keepassxc-cli; do
    if strings "$KX_BIN/$bin" | grep -F "$KX_TREE" >"$WORK/paths.log"; then
        fail "$bin has build-tree paths compiled in: $(head -3 "$WORK/paths.log" | tr '\n' ' ')"
    else
        pass "$bin has no build-tree path compiled in (strings)"
    fi
done

# Databases made while tpm2-tss is there: one password-only, one with a TPM key
kx_start_swtpm "$WORK/swtpm"
tpm_hmac create --handle 0x81000100 >"$WORK/create.log" 2>&1 || { cat "$WORK/create.log" >&2; fail "tpm-hmac create"; finish; }
SERIAL=$((0x81000100))
printf 'plain\n' | "$KX_MAKE_DB" "$WORK/plain.kdbx" none "Bank" >"$WORK/make-db.log" 2>&1 &&
    printf 'plain\n' | "$KX_MAKE_DB" "$WORK/tpm.kdbx" "1:$SERIAL" "Bank" >>"$WORK/make-db.log" 2>&1 ||
    { cat "$WORK/make-db.log" >&2; fail "keepassxc-tpm-make-db"; finish; }

# Runs "$@" with the tpm2-tss libraries hidden: in a private mount namespace, an overlay on their
# directory whites them out. Nothing outside the command sees a change.
LIBDIR=$(dirname "$(ldconfig -p | awk '/libtss2-esys\.so\.0 /{print $NF; exit}')")
hide_tss() {
    unshare -m bash -c '
        set -e
        libdir=$1
        shift
        scratch=$(mktemp -d)
        mount -t tmpfs none "$scratch"
        mkdir "$scratch/upper" "$scratch/work"
        for lib in "$libdir"/libtss2*; do mknod "$scratch/upper/${lib##*/}" c 0 0; done
        mount -t overlay overlay -o "lowerdir=$libdir,upperdir=$scratch/upper,workdir=$scratch/work" "$libdir"
        exec "$@"' hide-tss "$LIBDIR" "$@"
}

if ! unshare -m true 2>/dev/null; then
    say "SKIP: no private mount namespace here (unshare -m needs root or CAP_SYS_ADMIN); the readelf checks above ran" >&2
    [ "$HARNESS_FAILURES" -eq 0 ] && exit 77
    finish
fi
if hide_tss sh -c "ls $LIBDIR/libtss2-esys.so.0" >/dev/null 2>&1; then
    fail "could not hide $LIBDIR/libtss2-esys.so.0 (overlay mount refused?)"
    finish
fi
pass "tpm2-tss hidden in a private mount namespace ($LIBDIR/libtss2* absent there)"

if printf 'plain\n' | hide_tss "$KX_CLI" ls "$WORK/plain.kdbx" >"$WORK/plain.log" 2>&1 && grep -q '^Bank' "$WORK/plain.log"; then
    pass "without tpm2-tss keepassxc-cli opens a password-only database"
else
    sed 's/^/    /' "$WORK/plain.log" >&2
    fail "without tpm2-tss keepassxc-cli does not open a password-only database"
fi

if printf 'plain\n' | hide_tss "$KX_CLI" ls --yubikey "1:$SERIAL" "$WORK/tpm.kdbx" >"$WORK/tpm.log" 2>&1; then
    fail "without tpm2-tss the TPM-protected database opened"
elif grep -q 'No TPM could be used' "$WORK/tpm.log" && grep -q 'libtss2' "$WORK/tpm.log"; then
    pass "without tpm2-tss a TPM-protected database is refused: \"$(grep -o 'No TPM could be used[^"]*' "$WORK/tpm.log" | head -1)\""
else
    sed 's/^/    /' "$WORK/tpm.log" >&2
    fail "without tpm2-tss: expected \"No TPM could be used\" naming libtss2"
fi

# Without $KEEPASSXC_TPM_BACKEND the fork run from its build tree does not find the backend built
# beside it: it looks only where an installer puts it.
if printf 'plain\n' | env -u KEEPASSXC_TPM_BACKEND "$KX_CLI" ls --yubikey "1:$SERIAL" "$WORK/tpm.kdbx" >"$WORK/search.log" 2>&1; then
    fail "the fork loaded a backend from outside its install directory"
elif grep -q 'not installed' "$WORK/search.log"; then
    pass "without KEEPASSXC_TPM_BACKEND the build tree's backend is not loaded: \"$(grep -o 'TPM support is not installed[^;]*' "$WORK/search.log" | head -1)\""
else
    sed 's/^/    /' "$WORK/search.log" >&2
    fail "without KEEPASSXC_TPM_BACKEND: expected \"TPM support is not installed\""
fi

(cd "$KX_BIN/tests" && hide_tss ./testykchallengeresponsekey >"$WORK/testyk.log" 2>&1) || true
if grep -q '^SKIP   : TestYubiKeyChallengeResponse::testKeyChallenge() No YubiKey devices were detected' "$WORK/testyk.log" &&
    grep -q '^Totals: .* 0 failed' "$WORK/testyk.log"; then
    pass "without tpm2-tss KeePassXC's hardware-key test runs and detects no key"
else
    sed 's/^/    /' "$WORK/testyk.log" >&2
    fail "without tpm2-tss TestYkChallengeResponseKey"
fi

finish
