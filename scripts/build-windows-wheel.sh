#!/usr/bin/env bash
# Builds the Python module's wheel for Windows (abi3, win_amd64: CPython 3.9 and later) here on
# Linux: maturin cross-compiles rust/python for x86_64-pc-windows-gnu with mingw (pyo3 makes the
# python3.dll import library itself). The wheel goes to OUT (default build/windows/wheel); its path
# is printed. maturin comes from PyPI into a venv of its own (build/windows/maturin-venv).
# Needs: the Rust target (rustup target add x86_64-pc-windows-gnu) and gcc-mingw-w64-x86-64.
# Usage: scripts/build-windows-wheel.sh [OUT]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}/windows
OUT=${1:-$BUILD/wheel}
VENV=$BUILD/maturin-venv

die() {
  echo "build-windows-wheel.sh: $*" >&2
  exit 1
}
command -v x86_64-w64-mingw32-gcc >/dev/null || die "x86_64-w64-mingw32-gcc is missing (apt-get install gcc-mingw-w64-x86-64)"
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu ||
  die "the Rust target x86_64-pc-windows-gnu is missing (rustup target add x86_64-pc-windows-gnu)"
PYTHON=$("$ROOT/tests/python/find-python.sh" 2>/dev/null || command -v python3) || die "no python3"
if [ ! -x "$VENV/bin/maturin" ]; then
  "$PYTHON" -m venv "$VENV" || die "cannot make the venv $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2" || die "pip install maturin failed"
fi
rm -rf "$OUT"
mkdir -p "$OUT"
"$VENV/bin/maturin" build --quiet --release --locked --target x86_64-pc-windows-gnu \
  --manifest-path "$ROOT/rust/python/Cargo.toml" --out "$OUT" >&2 || die "maturin build failed"
wheel=$(ls "$OUT"/keepassxc_tpm-*-win_amd64.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || die "maturin made no win_amd64 wheel in $OUT"
echo "$wheel"
