#!/usr/bin/env bash
# Every test of keepassxc-tpm: the Rust crates against private swtpm instances, then the
# KeePassXC fork tests, then the Python module with kdbxtool (pytest). Each test starts and stops
# its own software TPM.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export TSS2_LOG=all+none   # ESYS's own stderr lines; our errors are checked by the tests
# Lints: formatting, clippy with every warning an error, and shellcheck (warnings and errors)
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
git ls-files -z '*.sh' .ci/run | xargs -0 shellcheck -x -S warning
cargo build --workspace --locked
cargo test --workspace --locked
# The CMake module against each shape of KeePassXC's hardware-key driver API (configure only)
tests/cmake/test-driver-api.sh
if [ -x tests/keepassxc/run-tests.sh ]; then
  tests/keepassxc/run-tests.sh
fi
# The PC/SC reader driver: a private pcscd, yubikit, and the package and stock KeePassXC in booted
# Debian 12, 13 and sid containers opening a password + TPM key database through it
rc=0
tests/pcsc/run-tests.sh || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"
# The Windows build (tpm-hmac.exe, the probe, the core, the wheel with kdbxtool) cross-built and run
# under wine against swtpm through a tbs.dll double
rc=0
tests/windows/test-windows.sh || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"
# The tpm-hmac Debian package: lintian, installed with apt, used, removed
rc=0
tests/packaging/test-tpm-hmac-deb.sh || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"
# The KeePassXC fork's Debian package (Debian 12's keepassxc source package + the TPM driver): built,
# lintian, installed with apt, opens a TPM-protected database, removed
rc=0
tests/packaging/test-keepassxc-deb.sh || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"
# The Python provider with kdbxtool, against both forks built above
tests/python/run.sh
echo "run-all: all tests passed"
