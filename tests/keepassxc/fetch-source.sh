#!/bin/sh
# Gets KeePassXC's source for one version from Debian's source packages through apt with a
# private sources directory (the system's apt configuration stays untouched) and unpacks it
# into build/keepassxc-VERSION/src.
#
# Usage: tests/keepassxc/fetch-source.sh VERSION        (2.7.4 or 2.7.10)
# Exit codes: 0 done, 1 error, 2 usage, 77 the source cannot be downloaded (a skip, not a failure).
# Environment: KEEPASSXC_TPM_BUILD_DIR (default build/), KEEPASSXC_TPM_DEBIAN_SOURCES (the deb822 file whose
# first URIs: line names the mirror; default /etc/apt/sources.list.d/debian.sources).
#
# 2.7.4 (Debian 12, Suites bookworm): unpacked with dpkg-source, which applies Debian's patches.
#   We build what Debian 12 ships: the +dfsg tarball has no src/zxcvbn (it builds against
#   libzxcvbn-dev), and Debian's patch tests-adjust-entropy-for-system-wide-zxcvbn adapts
#   TestCli to that library; without it TestCli fails for reasons that have nothing to do with us.
#   The other patches touch only appdata, docs fonts, a password-field font and a runtime Qt check.
# 2.7.10 (Suites trixie): only the orig tarball is used (its Debian tarball may not download).
set -eu

die() { echo "fetch-source: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 VERSION   (2.7.4 or 2.7.10)" >&2; exit 2; }
VERSION=$1
case "$VERSION" in
    2.7.4) SUITE=bookworm ;;
    2.7.10) SUITE=trixie ;;
    *) echo "fetch-source: unknown version $VERSION (known: 2.7.4, 2.7.10)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${KEEPASSXC_TPM_BUILD_DIR:-$ROOT/build}
DEST=$BUILD/keepassxc-$VERSION
APTDIR=$BUILD/apt/$SUITE
DL=$BUILD/apt/downloads

missing=""
for tool in apt-get tar xz dpkg-source; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] || die "missing tools:$missing (apt-get install dpkg-dev xz-utils)"

if [ -f "$DEST/src/CMakeLists.txt" ] && [ -f "$DEST/.fetched" ]; then
    echo "fetch-source: $DEST/src already there"
    exit 0
fi

# The mirror is whatever this machine's apt uses: the first URIs: line of debian.sources.
SOURCES=${KEEPASSXC_TPM_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
[ -r "$SOURCES" ] || die "cannot read $SOURCES (it names the Debian mirror)"
URI=$(awk '/^URIs:/ { print $2; exit }' "$SOURCES")
[ -n "$URI" ] || die "no URIs: line in $SOURCES"

mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$DL"
cat >"$APTDIR/keepassxc-src.sources" <<EOF
Types: deb-src
URIs: $URI
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

apt_private() {
    apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$APTDIR" \
        -o Dir::State::Lists="$APTDIR/lists" -o Dir::Cache="$APTDIR/cache" \
        -o APT::Sandbox::User=root "$@"
}

skip_or_die() {
    if [ "$VERSION" = 2.7.4 ]; then die "$*"; fi
    echo "######################################################################" >&2
    echo "SKIP: KeePassXC $VERSION source cannot be downloaded: $*" >&2
    echo "######################################################################" >&2
    exit 77
}

echo "fetch-source: apt update (private lists in $APTDIR, suite $SUITE)"
apt_private update >"$APTDIR/update.log" 2>&1 || skip_or_die "apt-get update failed (see $APTDIR/update.log)"

# Which files apt would fetch, with their sizes and SHA256 sums.
URIS=$(apt_private --print-uris source "keepassxc/$SUITE" 2>/dev/null | grep "^'") ||
    skip_or_die "no keepassxc source package in $SUITE (mirror unreachable or suite gone? see $APTDIR/update.log)"
DEBVER=$(printf '%s\n' "$URIS" | awk '$2 ~ /\.dsc$/ { sub(/^keepassxc_/, "", $2); sub(/\.dsc$/, "", $2); print $2 }')
case "$DEBVER" in
    "$VERSION"+*) ;;
    *) skip_or_die "$SUITE has keepassxc $DEBVER, not $VERSION" ;;
esac
ORIG=$(printf '%s\n' "$URIS" | awk '$2 ~ /\.orig\.tar\./ { print $2 }')
ORIG_SHA=$(printf '%s\n' "$URIS" | awk '$2 ~ /\.orig\.tar\./ { sub(/^SHA256:/, "", $4); print $4 }')
[ -n "$ORIG" ] || skip_or_die "no orig tarball listed for $DEBVER"

echo "fetch-source: downloading keepassxc $DEBVER"
# A missing Debian tarball (seen for trixie) makes apt-get fail after the orig tarball arrived.
(cd "$DL" && apt_private source --download-only "keepassxc/$SUITE" >"$APTDIR/source.log" 2>&1) ||
    echo "fetch-source: apt-get source reported errors (see $APTDIR/source.log); checking what arrived"
[ -f "$DL/$ORIG" ] || skip_or_die "the orig tarball $ORIG did not download (see $APTDIR/source.log)"
echo "$ORIG_SHA  $DL/$ORIG" | sha256sum -c --quiet - || die "$ORIG: SHA256 mismatch"

# A fresh tree carries no registration patch (build-fork.sh records the one it applied)
rm -rf "$DEST/src" "$DEST/src.tmp" "$DEST/applied.patch"
mkdir -p "$DEST"
DSC=$DL/keepassxc_$DEBVER.dsc
if [ "$VERSION" = 2.7.4 ]; then
    [ -f "$DSC" ] || die "$DSC did not download; Debian's patches are needed for 2.7.4"
    # dpkg-source checks the checksums in the .dsc and applies debian/patches/series.
    dpkg-source --no-check -x "$DSC" "$DEST/src.tmp" >"$DEST/dpkg-source.log" 2>&1 ||
        die "dpkg-source -x failed (see $DEST/dpkg-source.log)"
    # Debian's rules delete src/zxcvbn before configuring; the +dfsg tarball already lacks it.
    rm -rf "$DEST/src.tmp/src/zxcvbn"
    # dpkg-source leaves a copy of the orig tarball beside the tree.
    rm -f "$DEST"/keepassxc_*.orig.tar.*
else
    mkdir -p "$DEST/src.tmp"
    tar -xf "$DL/$ORIG" -C "$DEST/src.tmp" --strip-components=1
fi
mv "$DEST/src.tmp" "$DEST/src"
echo "$DEBVER" >"$DEST/.fetched"
echo "fetch-source: KeePassXC $DEBVER in $DEST/src"
