#!/usr/bin/env bash
# The KeePassXC fork as a Debian package. Builds it (scripts/build-keepassxc-deb.sh: Debian 12's
# keepassxc 2.7.4 source package plus the TPM driver; reused when its inputs are unchanged) and the
# tpm-hmac package (scripts/build-deb.sh), checks them with lintian (errors fail, the rest is
# reported), installs both with apt as a user would, and checks: the TPM backend is in
# /usr/lib/<multiarch>/keepassxc, tpm2-tss is a Recommends and not a Depends, no checkout or cargo
# path is compiled into the installed binaries. Then, with the checkout hidden (a tmpfs over it in a
# private mount namespace) and KEEPASSXC_TPM_BACKEND unset, against a private swtpm: tpm-hmac
# creates a key, keepassxc-tpm-make-db (built against the package's tree) makes a database protected
# by password + TPM key, /usr/bin/keepassxc-cli lists its entry with --yubikey 1:<serial> and fails
# without the key or with another one. Finally both packages are purged, with whatever apt pulled
# in for them, and the dpkg state must match the start.
# Needs root (apt-get install); otherwise SKIP (77). A keepassxc or tpm-hmac package installed
# already: SKIP (77), the machine's own packages are not touched.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HARNESS_LABEL=keepassxc-deb
# shellcheck source=../lib/harness.sh
. "$ROOT/tests/lib/harness.sh"
if [ "$(id -u)" -ne 0 ]; then
  say "SKIP: installing a package needs root"
  exit 77
fi
for pkg in keepassxc keepassxc-dbgsym tpm-hmac; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
    say "SKIP: a $pkg package is installed already; not touching it"
    exit 77
  fi
done
start=$(date +%s)
"$ROOT/scripts/build-keepassxc-deb.sh"
"$ROOT/scripts/build-deb.sh"
ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
KX_DEB=$(ls "$ROOT"/build/deb/keepassxc_*+tpm1_"$ARCH".deb | head -1)
DBG_DEB=$(ls "$ROOT"/build/deb/keepassxc-dbgsym_*+tpm1_"$ARCH".deb 2>/dev/null | head -1 || true)
TPM_DEB=$(ls "$ROOT"/build/deb/tpm-hmac_*_"$ARCH".deb | head -1)
BACKEND=/usr/lib/$MULTIARCH/keepassxc/libkeepassxc_tpm_backend.so

for deb in "$KX_DEB" ${DBG_DEB:+"$DBG_DEB"}; do
  lintian_out=$(lintian --allow-root "$deb" 2>&1 || true)
  say "lintian $(basename "$deb"): ${lintian_out:-no findings}"
  if grep -q '^E:' <<<"$lintian_out"; then fail "lintian reports errors for $(basename "$deb")"; fi
done
depends=$(dpkg-deb -f "$KX_DEB" Depends)
recommends=$(dpkg-deb -f "$KX_DEB" Recommends)
if grep -q libtss2 <<<"$depends"; then
  fail "tpm2-tss is a hard dependency: Depends: $depends"
elif grep -q libtss2-esys <<<"$recommends"; then
  pass "tpm2-tss is recommended, not required (Recommends: $recommends)"
else
  fail "the backend's tpm2-tss libraries are not in Recommends: $recommends"
fi

# dpkg's state before, to purge exactly what the install adds and compare at the end
dpkg_state() { dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Abbrev}\n' | sort; }
STATE_BEFORE=$(dpkg_state)
WORK=$(mktemp -d)
added=""
cleanup() {
  stop_swtpm 2>/dev/null || true
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq keepassxc tpm-hmac $added >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$KX_DEB" "$TPM_DEB" >"$WORK/install.log" 2>&1; then
  pass "apt-get install $(basename "$KX_DEB") $(basename "$TPM_DEB")"
else
  cat "$WORK/install.log" >&2
  fail "apt-get install failed"
  exit 1
fi
added=$(comm -13 <(sed 's/ .*//' <<<"$STATE_BEFORE" | sort) <(dpkg_state | sed 's/ .*//' | sort) | grep -v -e '^keepassxc:' -e '^tpm-hmac:' | tr '\n' ' ' || true)
say "apt installed besides the two packages: ${added:-nothing}"

if [ -f "$BACKEND" ] && [ "$(dpkg -S "$BACKEND" 2>/dev/null | cut -d: -f1)" = keepassxc ]; then
  pass "the package installs the TPM backend at $BACKEND"
else
  fail "no $BACKEND from the keepassxc package (it has: $(dpkg -L keepassxc | grep tpm_backend || echo nothing))"
fi
for bin in /usr/bin/keepassxc /usr/bin/keepassxc-cli; do
  if readelf -d "$bin" | grep NEEDED | grep -q libtss2; then fail "$bin links tpm2-tss"; else pass "$bin does not link tpm2-tss"; fi
done
# (strings into a file: with pipefail, "strings | grep -q" fails when grep stops reading early)
for file in /usr/bin/keepassxc /usr/bin/keepassxc-cli "$BACKEND"; do
  strings "$file" >"$WORK/strings.txt"
  found=""
  for path in "$ROOT" "$HOME/.cargo" "$HOME/.rustup" /build/; do
    if grep -qF "$path" "$WORK/strings.txt"; then found="$found $path"; fi
  done
  if [ -z "$found" ]; then pass "no build path in $file (strings)"; else fail "$file holds build paths:$found"; fi
done
strings /usr/bin/keepassxc-cli /usr/bin/keepassxc >"$WORK/strings.txt"
if grep -qF "/usr/lib/$MULTIARCH/keepassxc" "$WORK/strings.txt"; then
  pass "the bridge looks for the backend in /usr/lib/$MULTIARCH/keepassxc"
else
  fail "/usr/lib/$MULTIARCH/keepassxc is not compiled into the binaries"
fi

# From here on nothing of the checkout is visible (tmpfs over it) and no backend is named
cp "$ROOT/build/deb/keepassxc-tpm-make-db" "$WORK/"
unset KEEPASSXC_TPM_BACKEND
export TSS2_LOG=all+none
if unshare -m true 2>/dev/null; then
  hidden() { unshare -m bash -c 'mount -t tmpfs tmpfs "$0" && exec "$@"' "$ROOT" "$@"; }
  hidden test ! -e "$ROOT/Cargo.toml" || fail "the checkout is still visible in the private mount namespace"
  say "the checkout $ROOT is hidden (tmpfs) from the installed programs"
else
  hidden() { "$@"; }
  say "no mount namespace here: the installed programs run with the checkout visible"
fi
if version=$(hidden env QT_QPA_PLATFORM=offscreen /usr/bin/keepassxc --version 2>/dev/null) && grep -q '2\.7\.4' <<<"$version"; then
  pass "/usr/bin/keepassxc starts ($(head -1 <<<"$version"))"
else
  fail "/usr/bin/keepassxc --version does not answer 2.7.4: $version"
fi

. "$ROOT/scripts/swtpm.sh"
start_swtpm "$WORK/swtpm"
export TPM2TOOLS_TCTI=$SWTPM_TCTI KEEPASSXC_TPM_METADATA=$WORK/keys.json
handle=$(hidden /usr/bin/tpm-hmac create 2>"$WORK/create.log") || { cat "$WORK/create.log" >&2; fail "tpm-hmac create"; exit 1; }
other=$(hidden /usr/bin/tpm-hmac create 2>>"$WORK/create.log") || { cat "$WORK/create.log" >&2; fail "tpm-hmac create (2nd key)"; exit 1; }
serial=$((handle)) other_serial=$((other))
say "TPM keys $handle (serial $serial) and $other (serial $other_serial) on swtpm"
if printf 'pw\n' | hidden "$WORK/keepassxc-tpm-make-db" "$WORK/tpm.kdbx" "1:$serial" "Packaged entry" >"$WORK/make.log" 2>&1; then
  pass "keepassxc-tpm-make-db made a database protected by password + TPM key (installed backend)"
else
  cat "$WORK/make.log" >&2
  fail "keepassxc-tpm-make-db"
  exit 1
fi
if printf 'pw\n' | hidden /usr/bin/keepassxc-cli ls --yubikey "1:$serial" "$WORK/tpm.kdbx" >"$WORK/ls.log" 2>&1 &&
  grep -q 'Packaged entry' "$WORK/ls.log"; then
  pass "/usr/bin/keepassxc-cli ls --yubikey 1:$serial lists the entry"
else
  cat "$WORK/ls.log" >&2
  fail "/usr/bin/keepassxc-cli does not open the TPM-protected database"
fi
for args in "" "--yubikey 1:$other_serial" "--yubikey 1:$((serial + 4096))"; do
  # shellcheck disable=SC2086 # args is a list of options
  if printf 'pw\n' | hidden /usr/bin/keepassxc-cli ls $args "$WORK/tpm.kdbx" >"$WORK/ls-bad.log" 2>&1 ||
    grep -q 'Packaged entry' "$WORK/ls-bad.log"; then
    fail "keepassxc-cli ls ${args:-without a key} opened the database"
  else
    pass "keepassxc-cli ls ${args:-without a key} fails: $(grep -v '^Enter password' "$WORK/ls-bad.log" | head -1)"
  fi
done
stop_swtpm

# shellcheck disable=SC2086 # a list of package names
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq keepassxc tpm-hmac $added >/dev/null
added=""
[ ! -e /usr/bin/keepassxc ] && [ ! -e "$BACKEND" ] && [ ! -e /usr/bin/tpm-hmac ] ||
  fail "files are left after purge: $(ls /usr/bin/keepassxc "$BACKEND" /usr/bin/tpm-hmac 2>/dev/null | tr '\n' ' ')"
if [ "$(dpkg_state)" = "$STATE_BEFORE" ]; then
  pass "purged: dpkg's state is as before the test"
else
  fail "dpkg's state differs from the start: $(diff <(echo "$STATE_BEFORE") <(dpkg_state) | grep '^[<>]' | head -5 | tr '\n' ' ')"
fi
say "packages: $(basename "$KX_DEB") $(du -h "$KX_DEB" | cut -f1), $(basename "$TPM_DEB") $(du -h "$TPM_DEB" | cut -f1); test took $(($(date +%s) - start)) s"
harness_finish
