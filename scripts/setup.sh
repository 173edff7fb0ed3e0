#!/usr/bin/env bash
# Create .venv with everything DTPM Studio needs. PyTorch is pinned to the CPU-capable
# build this project is tested with; a CUDA machine gets the same wheel with CUDA support.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "DTPM Studio is installed in $(pwd)/.venv"
