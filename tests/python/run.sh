#!/usr/bin/env bash
# The Python provider's tests (issue 12): makes a venv, builds and installs the keepassxc_tpm module
# with `pip install ./rust/python` (maturin), installs pytest and kdbxtool's provider branch (the wheel
# in ../shared/vendor/kdbxtool, or $KDBXTOOL_WHEEL), and runs pytest on tests/python against private
# swtpm instances. kdbxtool needs Python >= 3.12: without one, or without the wheel, its tests are
# skipped loudly with the reason and the rest still runs on the system's python3.
# Usage: tests/python/run.sh [pytest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${KEEPASSXC_TPM_PYTHON_VENV:-$ROOT/build/python-venv}

skip=""
if PYTHON=$("$ROOT/tests/python/find-python.sh"); then
  :
else
  PYTHON=$(command -v python3)
  skip="no Python >= 3.12 here (kdbxtool needs it)"
fi
WHEEL=${KDBXTOOL_WHEEL:-$(ls "$ROOT"/../shared/vendor/kdbxtool/kdbxtool-*.whl 2>/dev/null | head -1 || true)}
[ -n "$skip" ] || [ -f "$WHEEL" ] || skip="the kdbxtool wheel of its provider branch is not there (../shared/vendor/kdbxtool, or set KDBXTOOL_WHEEL)"

echo "python: $("$PYTHON" --version) ($PYTHON)"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s <("$VENV/bin/python" -c 'import sys; print(sys.version)') <("$PYTHON" -c 'import sys; print(sys.version)'); then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check pytest
if [ -z "$skip" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$WHEEL"
else
  "$VENV/bin/python" -m pip uninstall -q -y kdbxtool 2>/dev/null || true
  echo "######################################################################"
  echo "SKIP: the kdbxtool tests: $skip"
  echo "######################################################################"
  export KEEPASSXC_TPM_NO_KDBXTOOL=$skip
fi
echo "== pip install ./rust/python"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT/rust/python"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest tests/python -ra "$@"
