#!/usr/bin/env bash
# frugal's one command: set up the environment if it is missing, then run a recipe end to end.
#
#   ./run.sh                                 # egs/mini, all stages
#   ./run.sh --recipe yesno --stage 2        # another recipe, from a stage
#   ./run.sh --recipe mini --stop-stage 3 --nj 2
#
# Every option other than --recipe is passed to egs/<recipe>/run.sh (see its --help).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

recipe=mini
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --recipe) [ $# -ge 2 ] || { echo "run.sh: --recipe needs a name" >&2; exit 1; }; recipe=$2; shift 2 ;;
    --recipe=*) recipe=${1#--recipe=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ ! -x "$top/egs/$recipe/run.sh" ]; then
  echo "run.sh: no recipe '$recipe'; recipes: $(cd "$top/egs" && ls -d */ | tr -d / | tr '\n' ' ')" >&2
  exit 1
fi
if [ ! -x "$top/.venv/bin/python" ] || ! "$top/.venv/bin/python" -c 'import frugal, numba' 2>/dev/null; then
  echo "run.sh: setting up $top/.venv with tools/install.sh"
  "$top/tools/install.sh"
fi
cd "$top/egs/$recipe"
exec ./run.sh "${args[@]+"${args[@]}"}"
