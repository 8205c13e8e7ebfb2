#!/usr/bin/env bash
# Builds both Debian packages into build/deb/: tpm-hmac (scripts/build-deb.sh) and the KeePassXC fork
# (scripts/build-keepassxc-deb.sh: Debian 12's keepassxc 2.7.4 with the TPM driver; installs its build
# dependencies with apt-get build-dep, so it needs root or sudo). Prints the apt command that installs them.
# Usage: scripts/build-packages.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/build-deb.sh"
"$ROOT/scripts/build-keepassxc-deb.sh"
ARCH=$(dpkg --print-architecture)
cd "$ROOT"
echo "build-packages: install with"
echo "  sudo apt install $(ls build/deb/tpm-hmac_*_"$ARCH".deb | sed 's#^#./#' | head -1) $(ls build/deb/keepassxc_*+tpm1_"$ARCH".deb | sed 's#^#./#' | head -1)"
