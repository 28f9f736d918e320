#!/usr/bin/env bash
# Set up a virtual environment for the tests and run them (the README's test command).
# Keras 3 and PyTorch (CPU) are installed here only, for the parity tests; they are not
# dependencies of graphc.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
python -m pip install -q torch==2.13.0 keras || echo "warning: keras/torch not installed; parity tests will skip"
python -m pytest -q "$@"
