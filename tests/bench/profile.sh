#!/bin/sh
# Where the time of our challenge goes (issue 5), reproducibly: per-operation time of our paths
# on a private swtpm (keepassxc-tpm-bench profile), the same with OpenSSL's legacy name tables
# left empty (openssl-noadd.c, LD_PRELOAD), and, when perf uprobes work (root), how many OpenSSL
# library contexts and digest fetches tpm2-tss makes per operation.
#
# Usage: tests/bench/profile.sh [N]      (N operations per measurement, default 300)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${BENCH_OUT:-$ROOT/build/bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
N=${1:-300}
mkdir -p "$OUT"
cargo build -q --release --manifest-path "$ROOT/Cargo.toml" -p keepassxc-tpm-bench
BENCH=$TARGET/release/keepassxc-tpm-bench
SHIM=$OUT/openssl-noadd.so
cc -shared -fPIC -O2 -o "$SHIM" "$ROOT/tests/bench/openssl-noadd.c" -lcrypto

per_op() { # prints the "x.xxx" of "N x PATH: x.xxx ms each"
    "$@" 2>&1 | sed -n 's/.*: \([0-9.]*\) ms each/\1/p'
}

echo "| path | ms per operation | with empty OpenSSL name tables | OSSL_LIB_CTX_new per op | EVP_MD_fetch per op |"
echo "|---|--:|--:|--:|--:|"
LIBCRYPTO=$(ldd "$BENCH" | awk '/libcrypto/ {print $3}')
PROBES=no
if command -v perf >/dev/null 2>&1 && perf probe -q -x "$LIBCRYPTO" -a OSSL_LIB_CTX_new 2>/dev/null; then
    perf probe -q -x "$LIBCRYPTO" -a EVP_MD_fetch 2>/dev/null && PROBES=yes
fi
count() { # $1 path, $2 n: "ctx fetch" for n operations (whole process, setup included)
    perf stat -x, -e probe_libcrypto:OSSL_LIB_CTX_new,probe_libcrypto:EVP_MD_fetch \
        "$BENCH" profile --path "$1" --n "$2" 2>&1 >/dev/null | awk -F, '/probe_libcrypto/ {printf "%s ", $1}'
}
for path in warm warm-plain cold cold-plain open list; do
    plain=$(per_op "$BENCH" profile --path "$path" --n "$N")
    noadd=$(per_op env LD_PRELOAD="$SHIM" "$BENCH" profile --path "$path" --n "$N")
    ctx=–
    fetch=–
    if [ "$PROBES" = yes ]; then
        # shellcheck disable=SC2046 # count prints two numbers
        set -- $(count "$path" 10)
        a1=$1 b1=$2
        # shellcheck disable=SC2046 # count prints two numbers
        set -- $(count "$path" 110)
        ctx=$(((${1} - a1) / 100))
        fetch=$(((${2} - b1) / 100))
    fi
    echo "| $path | $plain | $noadd | $ctx | $fetch |"
done
if [ "$PROBES" = yes ]; then
    perf probe -q -d 'probe_libcrypto:*' 2>/dev/null || true
fi
echo
echo "warm/cold: a challenge on an open connection / Tpm::open + first challenge (bus encryption on);"
echo "-plain: bus encryption off. Machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)."
