# Sourced by every recipe (egs/*/run.sh): the environment frugal's tools run in.
# shellcheck shell=bash
FRUGAL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export FRUGAL_ROOT
if [ ! -f "$FRUGAL_ROOT/.venv/bin/activate" ]; then
  echo "path.sh: $FRUGAL_ROOT/.venv is missing: run $FRUGAL_ROOT/tools/install.sh (or ./run.sh)" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$FRUGAL_ROOT/.venv/bin/activate"
export PATH="$FRUGAL_ROOT/tools:$FRUGAL_ROOT/tools/sph2pipe:$PATH"
# Byte-order sorting and number formats, as Kaldi's scripts expect.
export LC_ALL=C
export PYTHONUNBUFFERED=1
