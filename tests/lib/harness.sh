# shellcheck shell=bash
# How every shell test reports (sourced by bash): one labelled line per check, a count of failed
# checks, and the exit codes run-all.sh reads: 0 every check passed, 1 a check failed, 77 skipped
# (with a loud reason). Set HARNESS_LABEL before sourcing, e.g. "pcsc" or "stock-keepassxc sid".

HARNESS_FAILURES=0

say() { echo "[$HARNESS_LABEL] $*"; }
pass() { say "PASS: $*"; }
fail() {
  say "FAIL: $*" >&2
  HARNESS_FAILURES=$((HARNESS_FAILURES + 1))
}
# A check that cannot be made here: says why where it cannot be missed, and skips the whole test.
skip() {
  echo "######################################################################" >&2
  say "SKIP: $*" >&2
  echo "######################################################################" >&2
  exit 77
}
# A failure after which nothing else can be checked.
die() {
  say "FAIL: $*" >&2
  exit 1
}
# The test's verdict, as its exit code; `$1`, when given, is shown with failures (e.g. a log's tail).
harness_finish() {
  if [ "$HARNESS_FAILURES" -eq 0 ]; then
    say "all checks passed"
    exit 0
  fi
  say "$HARNESS_FAILURES check(s) failed${1:+; $1}" >&2
  exit 1
}
