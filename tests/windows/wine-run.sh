#!/usr/bin/env bash
# Runs a Windows program cross-built here under wine 8.0, as the Windows tests do and as cargo's
# runner for x86_64-pc-windows-gnu (`CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER`): the repo's test
# doubles of tbs.dll and bcryptprimitives.dll (built by test-windows.sh into $KEEPASSXC_TPM_WINDOWS_DLLS)
# are put beside the program and preferred to wine's own (WINEDLLOVERRIDES); its stdout and stderr
# go through pipes (wine 8.0 loses them otherwise); its exit status is the program's.
# Usage: tests/windows/wine-run.sh PROGRAM.exe [ARGS...]
set -euo pipefail
WINE=/usr/lib/wine/wine64
DLLS=${KEEPASSXC_TPM_WINDOWS_DLLS:?set it to the directory with the tbs.dll double and the ProcessPrng shim}
program=$1
shift
dir=$(dirname "$program")
for dll in tbs.dll bcryptprimitives.dll; do
  cmp -s "$DLLS/$dll" "$dir/$dll" || cp "$DLLS/$dll" "$dir/$dll"
done
export WINEPREFIX=${WINEPREFIX:-$DLLS/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="tbs=n;bcryptprimitives=n"
# pipefail: the pipeline's status is wine's (the program's) when it fails.
rc=0
"$WINE" "$program" "$@" </dev/null 2> >(cat >&2) | cat || rc=$?
exit "$rc"
