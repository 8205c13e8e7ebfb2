#!/usr/bin/env bash
# Vendors every crate Cargo.lock names into DIR (default build/vendor), for an offline build:
# configure a KeePassXC fork with -DKEEPASSXC_TPM_CARGO_VENDOR=DIR and cargo never touches the network.
# Usage: scripts/vendor-crates.sh [DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/build/vendor}
cargo vendor --locked --quiet --manifest-path "$ROOT/Cargo.toml" "$DIR" >/dev/null
echo "vendor-crates: $(ls "$DIR" | wc -l) crates in $DIR ($(du -sh "$DIR" | cut -f1)); configure with -DKEEPASSXC_TPM_CARGO_VENDOR=$DIR"
