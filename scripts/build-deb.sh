#!/usr/bin/env bash
# Builds the Debian package of the tpm-hmac CLI: build/deb/tpm-hmac_<version>-<revision>_<arch>.deb, with its
# man page and bash, zsh and fish completions (generated from its clap definitions), and the PC/SC
# reader driver that lets stock KeePassXC use TPM keys (/usr/lib/<multiarch>/keepassxc-tpm/
# libkeepassxc_tpm_pcsc.so and its pcscd entry /etc/reader.conf.d/keepassxc-tpm; it serves only keys
# root enables with `tpm-hmac pcsc enable`), made from the crates' release builds (offline from
# vendored crates when KEEPASSXC_TPM_CARGO_VENDOR names them; source paths remapped, so no build path
# is in the binaries). Its dependencies are the shared libraries both link (dpkg-shlibdeps) and the
# TCTI module of the kernel's resource manager, and tpm-udev (the tss group's access to /dev/tpmrm0,
# which the drop-in for pcscd's unit names); it recommends the tpm2-abrmd client module and pcscd.
# Maintainer scripts (packaging/tpm-hmac/maintscripts) register the reader with pcscd only once the
# driver's file exists, take the entry away before the library goes, and purge the enabled keys.
# Usage: scripts/build-deb.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build/deb
STAGE=$OUT/tpm-hmac
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
ARCH=$(dpkg --print-architecture)
# The Debian revision is the changelog's (packaging/tpm-hmac/changelog, first line).
REVISION=$(sed -n '1s/^tpm-hmac (\([^)]*\)).*/\1/p' "$ROOT/packaging/tpm-hmac/changelog")
[ "${REVISION%-*}" = "$VERSION" ] || { echo "build-deb: the changelog's version $REVISION is not $VERSION-N" >&2; exit 1; }
DEB=$OUT/tpm-hmac_${REVISION}_${ARCH}.deb

MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
DRIVER_DIR=/usr/lib/$MULTIARCH/keepassxc-tpm
cargo_args=(build --release --locked -p tpm-hmac -p keepassxc-tpm-pcsc --manifest-path "$ROOT/Cargo.toml")
sep=$(printf '\037')
rustflags="--remap-path-prefix=$ROOT=keepassxc-tpm${sep}--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=cargo"
if [ -n "${KEEPASSXC_TPM_CARGO_VENDOR:-}" ]; then
  mkdir -p "$OUT"
  printf '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "%s"\n' \
    "$KEEPASSXC_TPM_CARGO_VENDOR" >"$OUT/cargo-vendor.toml"
  cargo_args+=(--offline --config "$OUT/cargo-vendor.toml")
  rustflags="$rustflags${sep}--remap-path-prefix=$KEEPASSXC_TPM_CARGO_VENDOR=vendor"
fi
CARGO_TARGET_DIR=$OUT/target CARGO_ENCODED_RUSTFLAGS=$rustflags cargo "${cargo_args[@]}"

rm -rf "$STAGE"
# One tpm-hmac package in build/deb, so that the tests and the README's `apt install` find this one.
rm -f "$OUT"/tpm-hmac_*.deb
install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/usr/share/doc/tpm-hmac" "$STAGE/usr/share/man/man1"
install -m 0755 "$OUT/target/release/tpm-hmac" "$STAGE/usr/bin/tpm-hmac"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/tpm-hmac"
# The reader entry is shipped in /usr/share and put into /etc/reader.conf.d by the postinst (and
# taken away by the prerm), so that pcscd never meets it without its library or its file.
ENTRY_DIR=/usr/share/keepassxc-tpm/reader.conf.d
DROPIN_DIR=/usr/lib/systemd/system/pcscd.service.d
install -d "$STAGE$DRIVER_DIR" "$STAGE$ENTRY_DIR" "$STAGE$DROPIN_DIR"
install -m 0644 "$OUT/target/release/libkeepassxc_tpm_pcsc.so" "$STAGE$DRIVER_DIR/libkeepassxc_tpm_pcsc.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE$DRIVER_DIR/libkeepassxc_tpm_pcsc.so"
sed "s|^LIBPATH .*|LIBPATH      $DRIVER_DIR/libkeepassxc_tpm_pcsc.so|" "$ROOT/packaging/pcsc/keepassxc-tpm" \
  >"$STAGE$ENTRY_DIR/keepassxc-tpm"
chmod 0644 "$STAGE$ENTRY_DIR/keepassxc-tpm"
install -m 0644 "$ROOT/packaging/pcsc/pcscd-keepassxc-tpm.conf" "$STAGE$DROPIN_DIR/keepassxc-tpm.conf"
for script in postinst prerm postrm; do
  install -m 0755 "$ROOT/packaging/tpm-hmac/maintscripts/$script" "$STAGE/DEBIAN/$script"
done
install -m 0644 "$ROOT/packaging/tpm-hmac/copyright" "$STAGE/usr/share/doc/tpm-hmac/copyright"
gzip -9n <"$ROOT/packaging/tpm-hmac/changelog" >"$STAGE/usr/share/doc/tpm-hmac/changelog.Debian.gz"
"$STAGE/usr/bin/tpm-hmac" --man >"$OUT/tpm-hmac.1"
gzip -9n <"$OUT/tpm-hmac.1" >"$STAGE/usr/share/man/man1/tpm-hmac.1.gz"
install -d "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" \
  "$STAGE/usr/share/fish/vendor_completions.d"
"$STAGE/usr/bin/tpm-hmac" --completions bash >"$STAGE/usr/share/bash-completion/completions/tpm-hmac"
"$STAGE/usr/bin/tpm-hmac" --completions zsh >"$STAGE/usr/share/zsh/vendor-completions/_tpm-hmac"
"$STAGE/usr/bin/tpm-hmac" --completions fish >"$STAGE/usr/share/fish/vendor_completions.d/tpm-hmac.fish"
find "$STAGE/usr/share" -type f -exec chmod 0644 {} +

# dpkg-shlibdeps wants a source package's debian/control around it
SHLIBS=$OUT/shlibs
rm -rf "$SHLIBS" && mkdir -p "$SHLIBS/debian"
printf 'Source: tpm-hmac\n\nPackage: tpm-hmac\nArchitecture: any\n' >"$SHLIBS/debian/control"
# Debian 13 renamed libtss2-mu0 (same soname, libtss2-mu.so.0) to libtss2-mu-4.0.1-0t64 without
# providing the old name, as its other tpm2-tss packages do: name both, so the package installs there.
depends=$(cd "$SHLIBS" && dpkg-shlibdeps -O "$STAGE/usr/bin/tpm-hmac" "$STAGE$DRIVER_DIR/libkeepassxc_tpm_pcsc.so" |
  sed -n 's/^shlibs:Depends=//p' | sed 's/libtss2-mu0\( ([^)]*)\)\{0,1\}/& | libtss2-mu-4.0.1-0t64/')
sed -e "s/@VERSION@/$REVISION/" -e "s/@ARCH@/$ARCH/" -e "s/@DEPENDS@/$depends, libtss2-tcti-device0, tpm-udev/" \
  -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)/" "$ROOT/packaging/tpm-hmac/control" >"$STAGE/DEBIAN/control"
dpkg-deb --root-owner-group --build "$STAGE" "$DEB" >/dev/null
echo "build-deb: $DEB ($(du -h "$DEB" | cut -f1))"
