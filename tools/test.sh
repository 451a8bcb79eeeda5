#!/usr/bin/env bash
# The test command of README.md: sets up .venv when it is missing, then runs the suite.
# Extra arguments go to pytest (e.g. tools/test.sh tests/test_runner.py -x).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import frugal, numba' 2>/dev/null; then
  tools/install.sh
fi
export LC_ALL=C PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest "$@"
