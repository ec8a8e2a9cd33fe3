.PHONY: setup test lint format typecheck serve bench-overhead bench-engine bench-quality

setup:
	bash scripts/setup.sh dev

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check proxy policies onnx_export tests bench

format:
	.venv/bin/ruff format proxy policies onnx_export tests bench

typecheck:
	.venv/bin/mypy

serve:
	.venv/bin/linguagate serve
