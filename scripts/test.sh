#!/usr/bin/env bash
# Quick start, command 2: set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check src tests benchmarks
.venv/bin/python -m ruff format --check src tests benchmarks
.venv/bin/python -m mypy  # strict on src/corrective (pyproject.toml [tool.mypy])
# the tests in TEST_WORKERS processes (pytest-xdist; each test process runs torch on one thread): 2 by
# default, one a core here (201 s against 533 s in one process, 2026-12-04); TEST_WORKERS=0 runs them in this one
.venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" "$@"
# torchvision and timm models (tests/test_byo_vision.py) need a torch that torchvision imports beside; they
# run in .venv-vision (scripts/vision_env.sh, ~5.5 GB) on CI, or where VISION=1; in .venv they skip.
if [ -n "${CI:-}" ] || [ "${VISION:-0}" = 1 ]; then
  bash scripts/vision_env.sh
  CORRECTIVE_VISION=required .venv-vision/bin/python -m pytest tests/test_byo_vision.py
fi
