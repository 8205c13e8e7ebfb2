#!/usr/bin/env bash
# Prints the path of a Python >= 3.12 (kdbxtool needs it): on PATH, else one of pyenv's versions
# (pyenv's shims on PATH may fail, so each candidate is tried). Exit 1 when there is none.
# Used by tests/python/run.sh and tests/pcsc/lib.sh.
set -uo pipefail
for candidate in python3.13 python3.12 python3; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    command -v "$candidate"
    exit 0
  fi
done
if command -v pyenv >/dev/null 2>&1; then
  for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -rV); do
    candidate=$(PYENV_VERSION=$version pyenv which python3 2>/dev/null) || continue
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$candidate"; exit 0; }
  done
fi
exit 1
