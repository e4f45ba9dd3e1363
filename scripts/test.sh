#!/usr/bin/env bash
# Set up (idempotent), check the structure, and run the whole test suite (.ci/run calls this).
#   1. lint-imports                  the layers contract in pyproject.toml (imports inside functions too)
#   2. python scripts/import_graph.py  the import graph between packages: no cycle
#   3. mypy autolabel                the type check (settings in pyproject.toml)
#   4. python scripts/check_sizes.py   module, function and parameter-count limits
#   5. pytest "$@"                   fails if no test ran (pytest exit 5)
# Every step runs even when one before it failed; the script fails if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests || exit 1
export AUTOLABEL_LS_BIN="${AUTOLABEL_LS_BIN:-$PWD/.venv-ls/bin/label-studio}"
failed=()
step() {  # step NAME COMMAND...: run it, remember a failure
  echo "== $1" >&2
  "${@:2}" || failed+=("$1")
}
step lint-imports .venv/bin/lint-imports
step import-graph .venv/bin/python scripts/import_graph.py
step mypy .venv/bin/mypy autolabel
step check-sizes .venv/bin/python scripts/check_sizes.py
echo "== pytest" >&2
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "no tests were collected: failing" >&2; rc=1; fi
[ "$rc" -eq 0 ] || failed+=("pytest")
if [ "${#failed[@]}" -gt 0 ]; then echo "failed: ${failed[*]}" >&2; exit 1; fi
exit 0
