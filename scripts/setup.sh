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
# One cv2, headless. `trackers`, `trackeval` and `ultralytics` require opencv-python (the GUI
# build); autolabel requires opencv-python-headless. Both wheels install the same `cv2/`
# folder, so whichever pip installed last wins and uninstalling either breaks the other.
# Remove both, reinstall headless alone (--no-deps: it needs only numpy, already there),
# then check. `pip check` will name opencv-python as missing for those three: expected,
# they import cv2, which headless provides (none of them opens a window here).
# (pip reinstalls opencv-python on every `pip install -e`, since those three require it:
# the fix runs whenever it is there.)
if .venv/bin/python -m pip show -q opencv-python >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y opencv-python opencv-python-headless
  .venv/bin/python -m pip install -q --no-deps "opencv-python-headless>=4.9,<6"
fi
.venv/bin/python - <<'PY'
import importlib.metadata as md
import cv2
dists = sorted({(d.metadata["Name"] or "").lower() for d in md.distributions()} & {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"})
assert dists == ["opencv-python-headless"], f"expected only opencv-python-headless, found {dists}"
assert cv2.imdecode is not None and cv2.VideoCapture is not None
print("cv2", cv2.__version__, "from", dists[0])
PY
if [ "${1:-}" = "--tests" ]; then
  # Label Studio pins many packages: it runs from its own venv, as a separate server process.
  [ -x .venv-ls/bin/label-studio ] || { "$PY" -m venv .venv-ls && .venv-ls/bin/python -m pip install -q "label-studio==1.23.2"; }
fi
echo "setup done: $(.venv/bin/python -c 'import autolabel, sys; print("autolabel", autolabel.__version__, "python", sys.version.split()[0])')"
