#!/usr/bin/env bash
# Checks that scripts/install-deps.sh would set up a machine with nothing installed: apt simulates
# installing its package list onto an empty system (an empty dpkg status file), and every TCTI module
# and program the tests and the build start must come from a package in that simulated install, or
# from an Essential package (present on every Debian system). A CI machine that still has packages
# from earlier work would otherwise hide a missing install step.
# Run after install-deps.sh (the files are looked up in the installed packages). Exit 1 names what
# is missing and the package that provides it.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(scripts/install-deps.sh --list | grep -v '^#')
simulated=$(apt-get -s -o Dir::State::status=/dev/null install --no-install-recommends "${packages[@]}" |
  awk '/^Inst /{print $2}' | sed 's/:.*//' | sort -u)
[ -n "$simulated" ] || { echo "check-deps: apt simulated no install (run apt-get update first)" >&2; exit 1; }

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
needed=(
  # TCTI modules tpm2-tss loads at run time (swtpm for the tests, device and tabrmd for the default search)
  "/usr/lib/$multiarch/libtss2-tcti-swtpm.so.0" "/usr/lib/$multiarch/libtss2-tcti-device.so.0"
  "/usr/lib/$multiarch/libtss2-tcti-tabrmd.so.0"
  # programs the tests start
  /usr/bin/swtpm /usr/bin/swtpm_setup /usr/sbin/tpm2-abrmd /usr/bin/dbus-daemon /usr/bin/tpm2 /usr/bin/openssl
  /usr/bin/python3 /usr/bin/cc /usr/bin/readelf /usr/bin/strings /usr/bin/xvfb-run /usr/bin/xauth /usr/bin/xdotool
  /usr/bin/convert /usr/bin/import /usr/bin/Xvfb /usr/bin/setpriv /usr/bin/unshare /usr/bin/mkfifo /usr/bin/shellcheck
  /usr/bin/git /usr/bin/fakeroot
  # the PC/SC driver's tests (tests/pcsc): a private pcscd, pcsc-tools, the Debian 13 and sid chroots
  /usr/sbin/pcscd /usr/bin/pcsc_scan /usr/bin/scriptor /usr/sbin/debootstrap /usr/bin/tesseract
  /usr/bin/systemd-nspawn /usr/bin/nsenter /usr/bin/flock /usr/bin/pgrep /usr/bin/timeout /usr/bin/setpriv
  # the Windows build under wine (tests/windows)
  /usr/bin/x86_64-w64-mingw32-gcc /usr/lib/wine/wine64
  # the KeePassXC fork's build
  /usr/bin/cmake /usr/bin/ninja /usr/bin/patch /usr/bin/pkg-config /usr/bin/ccache /usr/bin/dpkg-source
  # the Debian packages' builds and checks (scripts/build-deb.sh, scripts/build-keepassxc-deb.sh)
  /usr/bin/dpkg-buildpackage /usr/bin/dpkg-shlibdeps /usr/bin/dh /usr/bin/quilt /usr/bin/asciidoctor /usr/bin/lintian
  /usr/bin/strip /usr/bin/make
)
missing=0
for file in "${needed[@]}"; do
  real=$(readlink -f "$file" || true)
  owner=$(dpkg -S "$real" 2>/dev/null | head -1 | sed 's/:.*//' || true)
  if [ -z "$owner" ]; then
    echo "check-deps: MISSING $file: not installed here by any package" >&2
    missing=1
  elif grep -qx "$owner" <<<"$simulated"; then
    :
  elif [ "$(dpkg-query -W -f='${Essential}' "$owner" 2>/dev/null)" = "yes" ]; then
    :
  else
    echo "check-deps: MISSING $file: its package $owner is not pulled in by install-deps.sh's list" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1
echo "check-deps: install-deps.sh's ${#packages[@]} packages install all ${#needed[@]} files the tests need on an empty system ($(wc -l <<<"$simulated") packages)"
