#!/usr/bin/env bash
# Every KeePassXC-fork test for both KeePassXC versions: builds each fork (incremental), then runs
# test-upstream-hwkey.sh (issue 3, test 1), test-cli-e2e.sh (test 2) and, when present,
# test-gui.sh (test 3), test-pin.sh (PIN prompts, issue 4), test-no-tss.sh (no tpm2-tss, issue 7)
# and, for 2.7.4, test-offline-build.sh (vendored crates, no network, issue 14); test-demo-gui.sh
# (scripts/demo.sh --gui, issue 15) for the version the demo opens.
# A version whose source cannot be
# downloaded is reported loudly as SKIP.
#
# Usage: tests/keepassxc/run-tests.sh [VERSION...]      (default: 2.7.4 2.7.10)
# Exit codes: 0 everything passed or skipped, 1 something failed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$(cd "$HERE/../.." && pwd)/build}
VERSIONS=${*:-2.7.4 2.7.10}
TESTS="test-upstream-hwkey.sh test-cli-e2e.sh test-gui.sh test-pin.sh test-no-tss.sh test-offline-build.sh test-demo-gui.sh"

summary=""
failed=0
# run TEST VERSION: one test, its result added to the summary; its exit code in $rc.
run() {
    local test=$1 version=$2 start took result
    echo "== $test $version"
    start=$(date +%s)
    rc=0
    "$HERE/$test" "$version" || rc=$?
    took=$(($(date +%s) - start))
    case $rc in
        0) result="PASS" ;;
        77) result="SKIP (see its output)" ;;
        *) result="FAIL (exit $rc)"; failed=1 ;;
    esac
    summary="$summary
  $test $version: $result, ${took} s"
}
for version in $VERSIONS; do
    for test in $TESTS; do
        [ -x "$HERE/$test" ] || continue
        # The offline build is the CMake module's: once, for Debian 12's own KeePassXC, is enough
        [ "$test" = test-offline-build.sh ] && [ "$version" != 2.7.4 ] && continue
        # The demo opens one fork: run once every version was fetched (below)
        [ "$test" = test-demo-gui.sh ] && continue
        run "$test" "$version"
        # Without the source every test of this version skips the same way
        [ "$rc" -eq 77 ] && [ ! -f "$BUILD/keepassxc-$version/.fetched" ] && break
    done
done
# The demo opens the newest fork whose source is here (scripts/demo.sh's choice), so it is chosen
# after every version had its chance to be fetched.
if [ -x "$HERE/test-demo-gui.sh" ]; then
    demo=2.7.4
    [ -f "$BUILD/keepassxc-2.7.10/.fetched" ] && demo=2.7.10
    case " $VERSIONS " in *" $demo "*) run test-demo-gui.sh "$demo" ;; esac
fi

echo "== KeePassXC fork tests:$summary"
if echo "$summary" | grep -q SKIP; then
    echo "######################################################################"
    echo "SKIP: some KeePassXC fork tests could not run here (see above)"
    echo "######################################################################"
fi
exit "$failed"
