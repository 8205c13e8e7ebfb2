#!/usr/bin/env bash
# cmake/KeePassXCTPM.cmake against each shape KeePassXC's hardware-key driver API has had, at
# configure time: bool findValidKeys() (up to 2.7.6) and KeyMap findValidKeys(int&) (2.7.10 on) are
# accepted, each with its own config-keepassxc-tpm.h; KeyMap findValidKeys() (2.7.7 to 2.7.9) and an
# unknown shape are refused with a message naming the supported versions. Only the API check runs:
# WITH_XC_YUBIKEY=OFF stops the module right after it, before any cargo build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=0

configure() { # $1 = case name, $2 = the virtual function's declaration in YubiKeyInterface.h
    local dir=$WORK/$1
    mkdir -p "$dir/src/keys/drivers"
    printf 'class YubiKeyInterface {\n    virtual %s = 0;\n};\n' "$2" >"$dir/src/keys/drivers/YubiKeyInterface.h"
    cat >"$dir/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.10)
project(driver_api NONE)
include(FeatureSummary)
list(APPEND CMAKE_MODULE_PATH "$ROOT/cmake")
include(KeePassXCTPM)
add_subdirectory(src)
CMAKE
    echo 'keepassxc_tpm_setup(keepassx_core)' >"$dir/src/CMakeLists.txt"
    cmake -S "$dir" -B "$dir/build" -DWITH_XC_TPM=ON -DWITH_XC_YUBIKEY=OFF >"$dir/log" 2>&1 || true
}
expect() { # $1 case, $2 text the configure log must hold, $3 whether the KEYMAP define is written (yes/no/none)
    local log=$WORK/$1/log header=$WORK/$1/build/src/config-keepassxc-tpm.h
    if ! tr -s ' \n' ' ' <"$log" | grep -qF "$2"; then
        sed 's/^/    /' "$log" >&2
        echo "FAIL: $1: configure did not say \"$2\""
        failed=1
        return
    fi
    case $3 in
        yes) grep -q '^#define KEEPASSXC_TPM_KEYMAP_API' "$header" ;;
        no) [ -f "$header" ] && ! grep -q 'KEEPASSXC_TPM_KEYMAP_API' "$header" ;;
        none) [ ! -f "$header" ] ;;
    esac || { echo "FAIL: $1: config-keepassxc-tpm.h (expected KEYMAP define: $3)"; failed=1; return; }
    echo "PASS: $1"
}

configure up-to-2.7.6 'bool findValidKeys()'
configure 2.7.7-to-2.7.9 'YubiKey::KeyMap findValidKeys()'
configure from-2.7.10 'YubiKey::KeyMap findValidKeys(int& connectedKeys)'
configure unknown 'QList<int> findKeys()'
# Accepted shapes get as far as the next check (the YubiKey driver), with the matching define.
expect up-to-2.7.6 "WITH_XC_TPM=ON needs WITH_XC_YUBIKEY=ON" no
expect from-2.7.10 "WITH_XC_TPM=ON needs WITH_XC_YUBIKEY=ON" yes
expect 2.7.7-to-2.7.9 "driver API is KeyMap findValidKeys() (KeePassXC 2.7.7 to 2.7.9), which the TPM driver does not support. Supported: bool findValidKeys() (KeePassXC 2.7.0 to 2.7.6, tested with 2.7.4) and KeyMap findValidKeys(int&) (tested with 2.7.10)." none
expect unknown "driver API is an unknown findValidKeys" none
exit "$failed"
