#!/usr/bin/env bash
# Create .venv and install LinguaGate with the given extras (default: dev).
# torch is pinned first so that no extra pulls the multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$EXTRAS" != "none" ]; then
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[$EXTRAS]"
else
  python -m pip install -q -e .
fi
