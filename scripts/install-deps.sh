#!/usr/bin/env bash
# Installs the Debian 12 packages keepassxc-tpm needs (build, tests, KeePassXC fork). Idempotent:
# only missing packages are installed. Uses sudo when not run as root.
# Usage: scripts/install-deps.sh [--list]     (--list: print the package list and install nothing)
set -euo pipefail

packages=(
  # core, CLI and tests: tpm2-tss, a software TPM, tpm2-tools as an independent checker
  # (libtss2-tcti-tabrmd0 is the client side of tpm2-abrmd: neither tpm2-abrmd nor tpm2-tools depends on it)
  pkg-config libtss2-dev swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon openssl python3-venv
  # the checkout's file list (lints, package inputs) and package builds without root
  git fakeroot
  # the lints in the test command
  shellcheck
  # the KeePassXC fork (facts: Debian's keepassxc build dependencies) and its GUI tests
  dpkg-dev ca-certificates cmake ninja-build g++ ccache qtbase5-dev qtbase5-private-dev qttools5-dev qttools5-dev-tools
  libqt5svg5-dev libqt5x11extras5-dev libbotan-2-dev libargon2-dev libqrencode-dev zlib1g-dev libpcsclite-dev
  libusb-1.0-0-dev libminizip-dev libreadline-dev libxi-dev libxtst-dev libzxcvbn-dev xvfb xauth xdotool imagemagick
  # packages: lintian checks the .deb files; the KeePassXC fork's package (scripts/build-keepassxc-deb.sh):
  # quilt for its patch, Debian's keepassxc build dependencies not listed above (it runs apt-get build-dep too)
  lintian build-essential quilt debhelper asciidoctor libcurl4-gnutls-dev xclip
  # the PC/SC reader driver's tests (tests/pcsc): pcscd, pcsc_scan and scriptor, debootstrap for the
  # Debian 13 and sid chroots (Debian's keepassxc is installed by test-stock-keepassxc.sh for its run
  # only: tests/packaging/test-keepassxc-deb.sh skips where a keepassxc package is installed)
  pcscd pcsc-tools debootstrap
  # the booted Debian 12, 13 and sid containers (tests/pcsc/test-booted-pcscd.sh: systemd-nspawn)
  systemd-container
  # the Windows build, cross-built and run under wine (tests/windows/test-windows.sh)
  gcc-mingw-w64-x86-64 wine64
  # reading stock KeePassXC's key list off its screenshot (tests/pcsc/test-stock-gui.sh)
  tesseract-ocr
)

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found; install Rust (https://rustup.rs), then run again" >&2; exit 1; }
# The Windows build's Rust target (tests/windows/test-windows.sh)
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
  rustup target add x86_64-pc-windows-gnu ||
    echo "install-deps: WARNING: rustup could not add x86_64-pc-windows-gnu; tests/windows will SKIP" >&2
fi
# The test command's lints need clippy and rustfmt (part of rustup's default profile)
for tool in clippy fmt; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || { echo "install-deps: cargo $tool is missing; install it with your Rust toolchain" >&2; exit 1; }
    rustup component add "$([ "$tool" = fmt ] && echo rustfmt || echo clippy)"
  fi
done
