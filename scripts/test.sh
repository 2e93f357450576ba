#!/usr/bin/env bash
# Quick start, command 2: set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check src tests benchmarks
.venv/bin/python -m ruff format --check src tests benchmarks
.venv/bin/python -m mypy  # strict on src/corrective (pyproject.toml [tool.mypy])
.venv/bin/python -m pytest "$@"
