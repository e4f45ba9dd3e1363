#!/usr/bin/env bash
# Set up everything on a fresh machine: .venv with autolabel and all backends (+ test tools).
#   bash scripts/setup.sh            # main venv
#   bash scripts/setup.sh --tests    # also the Label Studio server venv used by the tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[all,test]"
if [ "${1:-}" = "--tests" ]; then
  # Label Studio pins many packages: it runs from its own venv, as a separate server process.
  [ -x .venv-ls/bin/label-studio ] || { "$PY" -m venv .venv-ls && .venv-ls/bin/python -m pip install -q "label-studio==1.23.2"; }
fi
echo "setup done: $(.venv/bin/python -c 'import autolabel, sys; print("autolabel", autolabel.__version__, "python", sys.version.split()[0])')"
