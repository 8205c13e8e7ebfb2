#!/usr/bin/env bash
# Makes (once) and caches a Debian root file system for the stock-KeePassXC tests (issues 23, 30):
# debootstrap minbase of RELEASE plus Debian's own keepassxc, pcscd (with its polkit on Debian 13
# and later), pcsc-tools, systemd, dbus and logind (so that it boots as a container:
# test-booted-pcscd.sh), tpm-udev (the tss group), python3 (tpm-node.py), tpm2-abrmd and the
# tpm2-tss runtime libraries the reader driver links (and the device, swtpm and tabrmd TCTI modules),
# in build/chroots/RELEASE. A stamp
# file (.keepassxc-tpm-stamp) holding the package list marks it finished; a later run with the same
# list reuses it at once, a changed list installs what is missing, a half-made chroot is made again.
#
# Usage: tests/pcsc/make-chroot.sh RELEASE       (bookworm, trixie or sid; prints its path last)
# Exit codes: 0 ready, 1 failure, 2 usage, 77 skip (not root, or debootstrap/unshare missing).
# Environment: KEEPASSXC_TPM_BUILD_DIR (default build/), KEEPASSXC_TPM_DEBIAN_SOURCES (the deb822 file
# whose first URIs: line names the mirror; default /etc/apt/sources.list.d/debian.sources).
#
# Everything runs in a private mount namespace (unshare -m --propagation private): the mounts the
# installation needs (/dev, /proc, /sys, a tmpfs /run) exist only there, are unmounted on every exit
# path, and vanish with the namespace even when this script is killed. Installs start no services
# (policy-rc.d exits 101). sid's Release file may be expired: its apt runs with
# Acquire::Check-Valid-Until=false.
set -euo pipefail

say() { echo "[make-chroot ${RELEASE:-}] $*"; }
die() { say "FAIL: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 RELEASE   (bookworm, trixie or sid)" >&2; exit 2; }
RELEASE=$1
case "$RELEASE" in
  bookworm | trixie | sid) ;;
  *) echo "make-chroot: unknown release $RELEASE (known: bookworm, trixie, sid)" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}
DIR=$BUILD/chroots/$RELEASE
STAMP=$DIR/.keepassxc-tpm-stamp
DONE=$DIR/.keepassxc-tpm-debootstrapped
ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)

# What goes in: Debian's own keepassxc and pcscd, pcsc-tools (pcsc_scan), and the packages that
# hold the tpm2-tss libraries the driver links (its NEEDED sonames) and the swtpm TCTI module. Their
# package names change between releases (Debian 12: libtss2-mu0; Debian 13: libtss2-mu-4.0.1-0t64,
# which does not Provide libtss2-mu0), so each soname libtss2-STEM.so.N is resolved in the chroot to
# the package named libtss2-STEM[-VERSION-]N[t64].
PACKAGES="keepassxc pcscd pcsc-tools systemd systemd-sysv dbus libpam-systemd tpm-udev python3 tpm2-abrmd"
TSS_SONAMES="libtss2-esys.so.0 libtss2-tctildr.so.0 libtss2-mu.so.0 libtss2-sys.so.1 libtss2-tcti-swtpm.so.0 libtss2-tcti-device.so.0 libtss2-tcti-tabrmd.so.0"
WANTED="$PACKAGES $TSS_SONAMES"

# ---- inside the private mount namespace -------------------------------------------------------
if [ "${KEEPASSXC_TPM_CHROOT_NS:-}" = "$DIR" ]; then
  # shellcheck source=tests/pcsc/mounts.sh
  . "$HERE/mounts.sh"
  trap unmount_all EXIT
  apt_opts=()
  [ "$RELEASE" = sid ] && apt_opts=(-o Acquire::Check-Valid-Until=false)
  in_chroot() { chroot "$DIR" "${ENV[@]}" "$@"; }

  if [ ! -f "$DONE" ]; then
    SOURCES=${KEEPASSXC_TPM_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
    [ -r "$SOURCES" ] || die "cannot read $SOURCES (it names the Debian mirror)"
    URI=$(awk '/^URIs:/ { print $2; exit }' "$SOURCES")
    [ -n "$URI" ] || die "no URIs: line in $SOURCES"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    start=$SECONDS
    say "debootstrap --variant=minbase $RELEASE (the mirror of $SOURCES)"
    # The host's TMPDIR does not exist inside (ca-certificates' install fails on it).
    env -u TMPDIR debootstrap --variant=minbase "$RELEASE" "$DIR" "$URI" >"$BUILD/chroots/$RELEASE.debootstrap.log" 2>&1 ||
      die "debootstrap failed: $(tail -5 "$BUILD/chroots/$RELEASE.debootstrap.log" | tr '\n' '|')"
    touch "$DONE"
    say "debootstrap: $((SECONDS - start)) s"
  fi
  printf '#!/bin/sh\n# keepassxc-tpm tests: installs start no services\nexit 101\n' >"$DIR/usr/sbin/policy-rc.d"
  chmod 0755 "$DIR/usr/sbin/policy-rc.d"
  mount_chroot_system "$DIR"

  start=$SECONDS
  in_chroot apt-get "${apt_opts[@]}" -q update >"$BUILD/chroots/$RELEASE.apt.log" 2>&1 ||
    die "apt-get update failed: $(tail -5 "$BUILD/chroots/$RELEASE.apt.log" | tr '\n' '|')"
  install=()
  for p in $PACKAGES; do install+=("$p"); done
  names=$(in_chroot apt-cache pkgnames libtss2- | sort)
  for so in $TSS_SONAMES; do
    stem=${so%%.so.*}
    num=${so##*.so.}
    # The newest-named candidate (a t64 name sorts after the old one).
    package=$(grep -E "^${stem}(-[0-9.]+-)?${num}(t64)?\$" <<<"$names" | tail -1 || true)
    [ -n "$package" ] || die "no package of $RELEASE is named like $stem${num} (for $so); libtss2 packages: $(tr '\n' ' ' <<<"$names")"
    install+=("$package")
  done
  say "apt-get install ${install[*]}"
  in_chroot apt-get "${apt_opts[@]}" -q -y --no-install-recommends install "${install[@]}" >>"$BUILD/chroots/$RELEASE.apt.log" 2>&1 ||
    die "apt-get install failed: $(tail -5 "$BUILD/chroots/$RELEASE.apt.log" | tr '\n' '|')"
  in_chroot apt-get clean
  say "apt: $((SECONDS - start)) s; $(in_chroot dpkg-query -W -f='${Package} ${Version}\n' keepassxc pcscd 2>/dev/null | tr '\n' ' ')"
  {
    echo "$WANTED"
    in_chroot dpkg-query -W -f='${Package} ${Version}\n' "${install[@]}" 2>/dev/null
  } >"$STAMP"
  unmount_all
  exit 0
fi

# ---- outside ----------------------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  echo "######################################################################"
  say "SKIP: a debootstrap chroot needs root"
  echo "######################################################################"
  exit 77
fi
for tool in debootstrap unshare chroot mount flock; do
  command -v "$tool" >/dev/null 2>&1 || { say "SKIP: $tool is not installed (scripts/install-deps.sh)"; exit 77; }
done
mkdir -p "$BUILD/chroots"
exec 9>"$BUILD/chroots/$RELEASE.lock"
flock 9
if [ -f "$STAMP" ] && [ "$(head -1 "$STAMP")" = "$WANTED" ]; then
  say "cached: $DIR"
  echo "$DIR"
  exit 0
fi
# A half-made chroot is made again; never remove one with a mount inside (a run of this script
# still going in another namespace is kept out by the lock; this is the machine's own).
if [ -d "$DIR" ] && [ ! -f "$DONE" ] && findmnt -rn -o TARGET | grep -q "^$DIR/"; then
  die "something is mounted under $DIR: unmount it first"
fi
rm -f "$STAMP"
start=$SECONDS
KEEPASSXC_TPM_CHROOT_NS=$DIR unshare -m --propagation private "$0" "$RELEASE"
say "ready in $((SECONDS - start)) s: $DIR"
echo "$DIR"
