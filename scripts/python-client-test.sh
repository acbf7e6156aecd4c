#!/bin/sh
# Runs the Python client's tests (clients/python/tests, pytest) against the live daemon EARSHOT_BIN
# (default .build/debug/earshot), from a virtual environment under .build/ (git-ignored):
#   - created once with --system-site-packages, so numpy, pytest and jsonschema come from Debian
#     (python3-numpy, python3-pytest, python3-jsonschema; python3-venv provides `python3 -m venv`);
#   - the client is installed into it from the checkout with pip (`pip install ./clients/python`; pip fetches
#     setuptools and wheel for the isolated build), which proves the package installs;
#   - onnx and onnxruntime (examples/onnx_live.py) are installed from PyPI by pip when missing.
#     EARSHOT_SKIP_ONNX=1 skips them (an offline machine: the example's test then skips, or fails under
#     CI=true). pip is the only network access.
# Extra arguments go to pytest.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${EARSHOT_PY_VENV:-$root/.build/python-client-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv --system-site-packages "$venv"
fi
# From a copy: setuptools builds in the source tree (build/, *.egg-info), and the checkout stays clean.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -R "$root/clients/python/." "$src/"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$src"
if [ "${EARSHOT_SKIP_ONNX:-}" != 1 ] && ! "$venv/bin/python" -c 'import onnx, onnxruntime' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check onnx onnxruntime
fi
export EARSHOT_BIN="${EARSHOT_BIN:-$root/.build/debug/earshot}"
cd "$root/clients/python/tests"
# -p no:cacheprovider: nothing written into the checkout.
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
