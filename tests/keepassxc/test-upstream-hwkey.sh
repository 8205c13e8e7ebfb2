#!/usr/bin/env bash
# Issue 3, test 1: KeePassXC's own hardware-key tests run and pass in the fork with a TPM key that
# holds the secret their source documents (TestYkChallengeResponseKey and TestCli::testYubiKeyOption,
# which opens upstream's tests/data/YubiKeyProtectedPasswords.kdbx, written with a real YubiKey).
# Without a device they skip; this shows that they run, pass, and skip again without the TPM.
#
# Usage: tests/keepassxc/test-upstream-hwkey.sh VERSION     (2.7.4 or 2.7.10)
# Exit codes: 0 pass, 1 fail, 77 KeePassXC source not downloadable (skip).
set -euo pipefail
KX_TEST=upstream-hwkey
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"

# The secret in the comments of tests/TestYkChallengeResponseKey.cpp and tests/TestCli.cpp
UPSTREAM_TEST_SECRET=1ce30fd78d20dcfa40b50c18779afb0f02288db7
HANDLE=0x81000100

kx_setup

echo "$UPSTREAM_TEST_SECRET" >"$WORK/secret.hex"
tpm_hmac import --secret-file "$WORK/secret.hex" --handle "$HANDLE" >"$WORK/import.log" 2>&1 ||
    { cat "$WORK/import.log" >&2; fail "tpm-hmac import"; finish; }
rm -f "$WORK/secret.hex"
say "imported the upstream test secret at $HANDLE ($TPM2TOOLS_TCTI)"

# QtTest prints one line per test function and a Totals line.
check_qtest() { # $1 log, $2 test function, $3 what
    if grep -q "^PASS   : $2()" "$1" && grep -q '^Totals: .* 0 failed, 0 skipped' "$1"; then
        pass "$3"
    else
        sed 's/^/    /' "$1" >&2
        fail "$3"
    fi
}

cd "$KX_BIN/tests"
./testykchallengeresponsekey >"$WORK/testyk.log" 2>&1 || true
check_qtest "$WORK/testyk.log" TestYubiKeyChallengeResponse::testKeyChallenge \
    "TestYkChallengeResponseKey: testDetectDevices + testKeyChallenge run and pass with the TPM key"

xvfb-run -a ./testcli testYubiKeyOption >"$WORK/testcli.log" 2>&1 || true
check_qtest "$WORK/testcli.log" TestCli::testYubiKeyOption \
    "TestCli::testYubiKeyOption opens upstream's YubiKey-protected database with the TPM key"

# Control: the same tests skip when no TPM is reachable, so the passes above come from the TPM key.
TPM2TOOLS_TCTI=$(kx_dead_tcti) ./testykchallengeresponsekey >"$WORK/testyk-notpm.log" 2>&1 || true
if grep -q '^SKIP   : TestYubiKeyChallengeResponse::testKeyChallenge() No YubiKey devices were detected' \
    "$WORK/testyk-notpm.log"; then
    pass "control: without a reachable TPM the test skips (no devices detected)"
else
    sed 's/^/    /' "$WORK/testyk-notpm.log" >&2
    fail "control: without a reachable TPM the test should skip"
fi

finish
