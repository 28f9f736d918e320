#!/usr/bin/env bash
# Set up and run the main job: train a small model on real data (scikit-learn's handwritten
# digits), compile it, export it as an artifact, and run the artifact without graphc.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q -e . scikit-learn
python examples/digits_end_to_end.py "$@"
