#!/usr/bin/env bash
# Download and build sph2pipe 2.5 (NIST SPHERE reader, shorten decompression) into
# tools/sph2pipe/sph2pipe, which path.sh puts on PATH. Needed to read shorten-compressed or
# u-law SPHERE audio (WSJ .wv1, Switchboard, Fisher, Babel); lhotse reads every *.sph file
# through it. Idempotent: does nothing when the program is already built.
# Usage: tools/install_sph2pipe.sh [--url URL]
set -eu
url=https://www.openslr.org/resources/3/sph2pipe_v2.5.tar.gz   # the tarball Kaldi's tools use
if [ "${1:-}" = "--url" ] && [ -n "${2:-}" ]; then url=$2; fi

tools=$(cd "$(dirname "$0")" && pwd)
dest=$tools/sph2pipe
if [ -x "$dest/sph2pipe" ]; then
  echo "sph2pipe already built: $dest/sph2pipe"
  exit 0
fi
command -v gcc >/dev/null || { echo "$0: gcc is needed to build sph2pipe" >&2; exit 1; }

work=$(mktemp -d "$tools/.sph2pipe_build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "downloading $url"
if command -v curl >/dev/null; then
  curl -fsSL "$url" -o "$work/sph2pipe.tar.gz"
else
  wget -q "$url" -O "$work/sph2pipe.tar.gz"
fi
tar -xzf "$work/sph2pipe.tar.gz" -C "$work"
src=$(dirname "$(find "$work" -name sph2pipe.c | head -n 1)")
[ -f "$src/sph2pipe.c" ] || { echo "$0: no sph2pipe.c in the downloaded archive" >&2; exit 1; }
(cd "$src" && gcc -O2 -o sph2pipe ./*.c -lm)
# Move the built tree into place in one rename, so that a killed build leaves nothing trusted.
rm -rf "$dest"
mv "$src" "$dest"
echo "built $dest/sph2pipe"
