#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite. Fails if no test ran (pytest exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests || exit 1
export AUTOLABEL_LS_BIN="${AUTOLABEL_LS_BIN:-$PWD/.venv-ls/bin/label-studio}"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "no tests were collected: failing" >&2; exit 1; fi
exit "$rc"
