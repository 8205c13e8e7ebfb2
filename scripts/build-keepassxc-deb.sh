#!/usr/bin/env bash
# Builds the KeePassXC fork as a Debian package the way a packager would: Debian 12's own keepassxc
# source package (2.7.4+dfsg.1-2, fetched by tests/keepassxc/fetch-source.sh), unpacked afresh into
# build/deb/keepassxc-2.7.4+dfsg.1, plus
#   - debian/patches/keepassxc-tpm-register-driver.patch (quilt): the driver (cpp-shim/src), the CMake
#     module (cmake/KeePassXCTPM.cmake) and the registration patch (cpp-shim/patches/2.7.4);
#   - keepassxc-tpm/: a snapshot of this checkout's Rust workspace (working tree, not HEAD), its crates
#     vendored in keepassxc-tpm/vendor (scripts/vendor-crates.sh), so the package builds offline;
#   - debian/rules: -DWITH_XC_TPM=ON and the cargo/rustup/ccache settings debhelper's fake HOME hides;
#     the backend's tpm2-tss libraries become Recommends (dh_shlibdeps -X), not Depends;
#   - debian/control, debian/copyright, debian/changelog (2.7.4+dfsg.1-2+tpm1, bookworm).
# Missing build dependencies are installed with apt-get build-dep (root or sudo). The package is
# built with dpkg-buildpackage -b (nocheck) under unshare -n when possible (no network, as on a
# buildd), then keepassxc-tpm-make-db (tests/keepassxc/helper, not packaged) in the same tree for the
# package's install test. Everything else of Debian's build (WITH_XC_ALL, docs) stays as Debian has it.
# Results in build/deb/: keepassxc_2.7.4+dfsg.1-2+tpm1_<arch>.deb, keepassxc-dbgsym_..., .buildinfo,
# .changes, keepassxc-tpm-make-db. An unchanged input set (build/deb/keepassxc.inputs: the .dsc, this
# script, the driver, module, patch, Rust workspace and toolchain) reuses the packages built before.
# Usage: scripts/build-keepassxc-deb.sh [--force]     (--force: rebuild even when up to date)
# Environment: JOBS (default 2), CARGO_EXECUTABLE (default: cargo in PATH or ~/.cargo/bin).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UPSTREAM=2.7.4
DEBVER=2.7.4+dfsg.1-2
TPMVER=$DEBVER+tpm1
OUT=$ROOT/build/deb
SRC=$OUT/keepassxc-2.7.4+dfsg.1
DSC=$ROOT/build/apt/downloads/keepassxc_$DEBVER.dsc
PATCH=$ROOT/cpp-shim/patches/$UPSTREAM/0001-Register-the-TPM-hardware-key-driver.patch
ARCH=$(dpkg --print-architecture)
DEB=$OUT/keepassxc_${TPMVER}_$ARCH.deb
HELPER=$OUT/keepassxc-tpm-make-db
STAMP=$OUT/keepassxc.inputs
JOBS=${JOBS:-2}
MAINT="keepassxc-tpm contributors <keepassxc-tpm@example.org>"
say() { echo "build-keepassxc-deb: $*"; }
die() { say "$*" >&2; exit 1; }

missing=""
for tool in git dpkg-source dpkg-buildpackage dpkg-checkbuilddeps quilt apt-get; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] || die "missing tools:$missing (scripts/install-deps.sh installs them)"
CARGO=${CARGO_EXECUTABLE:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
[ -x "$CARGO" ] || die "cargo not found: install Rust (https://rustup.rs) or set CARGO_EXECUTABLE"

# The Rust workspace as this checkout has it now (tracked and new files, not what .gitignore hides)
workspace_files() {
  (cd "$ROOT" && git ls-files -co --exclude-standard -- Cargo.toml Cargo.lock rust tests/swtpm-fixture \
    tests/keepassxc/helper | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done)
}

# The driver and the PIN prompts (cpp-shim/src mirrors KeePassXC's src/)
mapfile -t shim_files < <(cd "$ROOT" && find cpp-shim/src -type f | sort)

# Same inputs as the packages already built: reuse them
"$ROOT/tests/keepassxc/fetch-source.sh" "$UPSTREAM" >/dev/null
[ -f "$DSC" ] || die "$DSC is missing (tests/keepassxc/fetch-source.sh $UPSTREAM downloads it)"
inputs=$(
  cd "$ROOT"
  sha256sum "$DSC" scripts/build-keepassxc-deb.sh "${shim_files[@]}" cmake/KeePassXCTPM.cmake "$PATCH" |
    sed "s#  $ROOT/#  #"
  workspace_files | xargs -d '\n' sha256sum
  "$CARGO" --version
  "$(dirname "$CARGO")/rustc" --version 2>/dev/null || rustc --version
) || die "cannot hash the inputs"
inputs_hash=$(sha256sum <<<"$inputs" | cut -d' ' -f1)
if [ "${1:-}" != "--force" ] && [ -f "$DEB" ] && [ -x "$HELPER" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$inputs_hash" ]; then
  say "up to date, reusing $DEB ($(du -h "$DEB" | cut -f1)); --force rebuilds"
  exit 0
fi
rm -f "$STAMP"

start=$(date +%s)
# A fresh tree from the .dsc (dpkg-source applies Debian's patches; .pc records them for quilt)
rm -rf "$SRC" "$OUT"/keepassxc_"$TPMVER"* "$OUT"/keepassxc-dbgsym_"$TPMVER"* "$HELPER"
mkdir -p "$OUT"
dpkg-source --no-check -x "$DSC" "$SRC" >"$OUT/keepassxc-dpkg-source.log" 2>&1 ||
  die "dpkg-source -x failed (see $OUT/keepassxc-dpkg-source.log)"
rm -f "$OUT"/keepassxc_*.orig.tar.* "$OUT"/keepassxc_*.debian.tar.* "$OUT"/keepassxc_*.dsc
cd "$SRC"

# One quilt patch: the driver files, the CMake module and the registration (DEP-3 header)
export QUILT_PATCHES=debian/patches QUILT_PC=.pc
QPATCH=keepassxc-tpm-register-driver.patch
new_files=("${shim_files[@]#cpp-shim/}" cmake/KeePassXCTPM.cmake)
mapfile -t patched < <(sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$PATCH")
quilt new "$QPATCH" >/dev/null
quilt add "${new_files[@]}" "${patched[@]}" >/dev/null
cp -r "$ROOT/cpp-shim/src/." src/
cp "$ROOT/cmake/KeePassXCTPM.cmake" cmake/
patch -p1 -s --no-backup-if-mismatch <"$PATCH" || die "$PATCH does not apply to Debian's $DEBVER"
quilt refresh -p ab --no-timestamps --no-index >/dev/null
{
  printf 'Description: TPM 2.0 HMAC keys as challenge-response hardware keys (keepassxc-tpm)\n'
  printf ' Adds the TPM hardware-key driver (src/keys/drivers/YubiKeyInterfaceTPM.*), the PIN prompts of\n'
  printf ' the GUI and the CLI (src/gui/TpmPinDialog.*, src/cli/TpmPinPrompt.*), its CMake module\n'
  printf ' (cmake/KeePassXCTPM.cmake: option WITH_XC_TPM, builds the Rust bridge and backend in\n'
  printf ' keepassxc-tpm/ with cargo) and registers the driver in YubiKey.cpp, the prompts in main() and the build.\n'
  printf 'Author: %s\nForwarded: not-needed\nLast-Update: %s\n---\n' "$MAINT" "$(date -u +%F)"
  cat "debian/patches/$QPATCH"
} >"debian/patches/$QPATCH.new"
mv "debian/patches/$QPATCH.new" "debian/patches/$QPATCH"
[ "$(quilt top)" = "debian/patches/$QPATCH" ] || die "quilt did not apply $QPATCH"

# The Rust workspace and its vendored crates (cargo --offline from them)
mkdir -p "$SRC/keepassxc-tpm"
workspace_files | (cd "$ROOT" && xargs -d '\n' cp --parents -t "$SRC/keepassxc-tpm")
"$ROOT/scripts/vendor-crates.sh" "$SRC/keepassxc-tpm/vendor" | sed 's/;.*//'

# debian/rules: TPM on, cargo and ccache passed through debhelper's fake HOME, Recommends for tpm2-tss
grep -q -- '-DWITH_XC_ALL=ON' debian/rules || die "debian/rules has no -DWITH_XC_ALL=ON to extend"
sed -i 's#-DWITH_XC_ALL=ON#-DWITH_XC_ALL=ON $(TPM_CMAKE_ARGS)#' debian/rules
tpm_rules=$(
  cat <<'EOF'
# keepassxc-tpm: TPM 2.0 HMAC keys as hardware keys. The Rust workspace is in keepassxc-tpm/, its
# crates vendored in keepassxc-tpm/vendor (cargo builds --offline). cargo/rustc >= the workspace's
# rust-version (newer than bookworm's) come from the build machine: CARGO_EXECUTABLE, else cargo in
# PATH or ~/.cargo/bin. debhelper gives the build a fake HOME, so rustup's home and ccache's
# directory are taken from the real one here, and cargo gets an empty CARGO_HOME of its own.
TPM_CARGO := $(or $(CARGO_EXECUTABLE),$(shell command -v cargo),$(wildcard $(HOME)/.cargo/bin/cargo))
ifeq ($(TPM_CARGO),)
$(error keepassxc-tpm needs cargo: install Rust (rustup) or set CARGO_EXECUTABLE)
endif
ifeq ($(origin RUSTUP_HOME),undefined)
export RUSTUP_HOME := $(HOME)/.rustup
endif
export CARGO_HOME := $(CURDIR)/debian/cargo-home
export PATH := $(patsubst %/,%,$(dir $(TPM_CARGO))):$(PATH)
TPM_CMAKE_ARGS := -DWITH_XC_TPM=ON -DKEEPASSXC_TPM_SOURCE_DIR=$(CURDIR)/keepassxc-tpm \
                  -DKEEPASSXC_TPM_CARGO_VENDOR=$(CURDIR)/keepassxc-tpm/vendor -DCARGO_EXECUTABLE=$(TPM_CARGO)
ifneq ($(shell command -v ccache),)
ifeq ($(origin CCACHE_DIR),undefined)
export CCACHE_DIR := $(shell ccache -k cache_dir)
endif
# -ffile-prefix-map (dpkg-buildflags) keeps the build directory out of the objects
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
TPM_CMAKE_ARGS += -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
endif
# Line tables for the backend's and bridge's -dbgsym (cargo's release profile has no debug info)
export CARGO_PROFILE_RELEASE_DEBUG := line-tables-only
TPM_BACKEND := usr/lib/$(DEB_HOST_MULTIARCH)/keepassxc/libkeepassxc_tpm_backend.so
EOF
)
tpm_shlibdeps=$(
  cat <<'EOF'

# Not part of the package: the install test's database maker, built with the package's settings
.PHONY: keepassxc-tpm-make-db
keepassxc-tpm-make-db:
	dh_auto_build -- keepassxc-tpm-make-db

override_dh_clean:
	# dh_clean deletes *.orig files: the vendored crates' Cargo.toml.orig are checksummed sources
	dh_clean -Xkeepassxc-tpm/vendor/

override_dh_shlibdeps:
	# The TPM backend is loaded at run time (dlopen) and KeePassXC runs without it: the tpm2-tss
	# libraries it links are Recommends (tpm:Recommends), not Depends.
	test -f debian/keepassxc/$(TPM_BACKEND)
	dh_shlibdeps -X libkeepassxc_tpm_backend.so
	dpkg-shlibdeps -ptpm -dRecommends -xlibc6 -xlibgcc-s1 -Tdebian/keepassxc.substvars debian/keepassxc/$(TPM_BACKEND)
EOF
)
awk -v block="$tpm_rules" '{ print } /^WITH_TESTS :=/ { print ""; print block }' debian/rules >debian/rules.new
printf '%s\n' "$tpm_shlibdeps" >>debian/rules.new
mv debian/rules.new debian/rules
chmod 0755 debian/rules
grep -q '^TPM_CMAKE_ARGS :=' debian/rules || die "could not extend debian/rules (no WITH_TESTS := line?)"
echo "debian/cargo-home/" >>debian/clean

# debian/control: build dependencies, our maintainer, Recommends/Suggests, description
grep -q '^Recommends: fonts-font-awesome$' debian/control || die "debian/control's Recommends changed; adapt this script"
sed -i \
  -e "s#^Maintainer: .*#Maintainer: $MAINT#" \
  -e 's#^Build-Depends: asciidoctor,#Build-Depends: asciidoctor,\n               libtss2-dev,\n               pkg-config,#' \
  -e 's#^Recommends: fonts-font-awesome$#Recommends: fonts-font-awesome, ${tpm:Recommends}, tpm-hmac#' \
  -e 's#^Suggests: \(.*\)#Suggests: \1, libtss2-tcti-tabrmd0#' debian/control
cat >>debian/control <<'EOF'
 .
 This build (keepassxc-tpm) also offers HMAC keys held in the computer's
 TPM 2.0 chip as challenge-response hardware keys, next to YubiKeys. The
 TPM backend (/usr/lib/<multiarch>/keepassxc/libkeepassxc_tpm_backend.so)
 is loaded at run time; without it or without tpm2-tss KeePassXC runs and
 lists no TPM key. Create TPM keys with tpm-hmac.
EOF
grep -q 'libtss2-dev' debian/control && grep -q 'tpm:Recommends' debian/control || die "could not edit debian/control"

# As the files say: the driver and prompts like KeePassXC's own sources ("version 2 or version 3"),
# the CMake module and the Rust workspace as its Cargo.toml (GPL-2.0-or-later OR GPL-3.0-or-later)
cat >>debian/copyright <<EOF

Files: ${shim_files[*]#cpp-shim/}
Copyright: 2026 keepassxc-tpm contributors
License: GPL-2 or GPL-3
Comment: keepassxc-tpm's TPM hardware-key driver and its PIN prompts.

Files: cmake/KeePassXCTPM.cmake keepassxc-tpm/*
Copyright: 2026 keepassxc-tpm contributors
License: GPL-2+ or GPL-3+
Comment: keepassxc-tpm's CMake module and Rust workspace. The crates vendored in
 keepassxc-tpm/vendor carry their own licenses (each crate's Cargo.toml and license files).
EOF

# The changelog entry, dated by the checkout's last commit (a stable SOURCE_DATE_EPOCH)
date=$(date -R -d "@$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)")
{
  printf 'keepassxc (%s) bookworm; urgency=medium\n\n' "$TPMVER"
  printf '  * keepassxc-tpm: TPM 2.0 HMAC keys as challenge-response hardware keys.\n'
  printf '    - d/patches/keepassxc-tpm-register-driver.patch: the driver, its CMake\n'
  printf '      module (WITH_XC_TPM) and its registration.\n'
  printf '    - keepassxc-tpm/: the Rust bridge and TPM backend, built offline from\n'
  printf '      vendored crates; the backend goes to /usr/lib/<multiarch>/keepassxc.\n'
  printf '    - The tpm2-tss libraries the backend links are Recommends: KeePassXC\n'
  printf '      runs without them.\n\n'
  printf ' -- %s  %s\n\n' "$MAINT" "$date"
  cat debian/changelog
} >debian/changelog.new
mv debian/changelog.new debian/changelog
[ "$(dpkg-parsechangelog -S Version)" = "$TPMVER" ] || die "debian/changelog does not parse to $TPMVER"

# Build dependencies (Debian's plus libtss2-dev, pkg-config)
if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing build dependencies: $(dpkg-checkbuilddeps 2>&1 | sed 's/.*Unmet build dependencies: //')"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get build-dep -y -qq "$SRC" >"$OUT/keepassxc-build-dep.log" 2>&1 ||
    die "apt-get build-dep failed (see $OUT/keepassxc-build-dep.log)"
fi

# Without network when a network namespace is available (as root): the package must not need one
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi
say "dpkg-buildpackage -b ${offline[*]:+(${offline[*]}) }(log: $OUT/keepassxc-build.log)"
build_start=$(date +%s)
if ! CARGO_EXECUTABLE=$CARGO DEB_BUILD_OPTIONS="nocheck parallel=$JOBS" \
  "${offline[@]}" dpkg-buildpackage -b -us -uc >"$OUT/keepassxc-build.log" 2>&1; then
  grep -E -B2 -A12 'error|Error|FAILED' "$OUT/keepassxc-build.log" | tail -60 >&2
  die "dpkg-buildpackage failed after $(($(date +%s) - build_start)) s (see $OUT/keepassxc-build.log)"
fi
build_took=$(($(date +%s) - build_start))
[ -f "$DEB" ] || die "dpkg-buildpackage made no $DEB"

# The test helper, against the package's keepassx_core (its backend search path is the package's)
CARGO_EXECUTABLE=$CARGO DEB_BUILD_OPTIONS="nocheck parallel=$JOBS" \
  "${offline[@]}" debian/rules keepassxc-tpm-make-db >"$OUT/keepassxc-helper.log" 2>&1 ||
  die "building keepassxc-tpm-make-db failed (see $OUT/keepassxc-helper.log)"
strip --strip-debug -o "$HELPER" "$SRC/obj-$(dpkg-architecture -qDEB_HOST_GNU_TYPE)/src/keepassxc-tpm-make-db"

echo "$inputs_hash" >"$STAMP"
say "built in $(($(date +%s) - start)) s (dpkg-buildpackage $build_took s)"
for f in "$OUT"/keepassxc*_"$TPMVER"_"$ARCH".deb; do
  say "$(basename "$f"): $(du -h "$f" | cut -f1), installed $(dpkg-deb -f "$f" Installed-Size) KiB"
done
