#!/usr/bin/env bash
# The previous tpm-hmac package (0.1.0-1) for upgrade tests, made from the current .deb: the layout
# and maintainer behaviour that version had (git show 9a668ad^:scripts/build-deb.sh): the reader
# entry shipped as a conffile in /etc/reader.conf.d, no maintainer scripts, no pcscd drop-in, and
# tpm-udev not a dependency. The programs inside are the current ones (an upgrade test is about what
# dpkg and the maintainer scripts do with the files and the enabled keys, not about old code);
# the caller writes the driver's file as that version did (mode 0600).
#
# Usage: tests/packaging/previous-deb.sh CURRENT.deb OUT.deb
# Exit codes: 0 made, 1 failure, 2 usage.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 CURRENT.deb OUT.deb" >&2; exit 2; }
current=$1 out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dpkg-deb -R "$current" "$stage"
rm -f "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
rm -rf "$stage/usr/lib/systemd"
install -d "$stage/etc/reader.conf.d"
mv "$stage/usr/share/keepassxc-tpm/reader.conf.d/keepassxc-tpm" "$stage/etc/reader.conf.d/keepassxc-tpm"
rm -rf "$stage/usr/share/keepassxc-tpm"
echo /etc/reader.conf.d/keepassxc-tpm >"$stage/DEBIAN/conffiles"
sed -i -e 's/^Version: .*/Version: 0.1.0-1/' -e '/^Depends:/s/, tpm-udev$//' "$stage/DEBIAN/control"
grep -q '^Version: 0.1.0-1$' "$stage/DEBIAN/control" || { echo "previous-deb: no Version line" >&2; exit 1; }
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "previous-deb: $out"
