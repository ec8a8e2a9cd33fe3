#!/usr/bin/env bash
# Install everything the tests need, then run lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
. .venv/bin/activate
ruff check proxy policies onnx_export tests bench
ruff format --check proxy policies onnx_export tests bench
mypy
python -m pytest -q "$@"
