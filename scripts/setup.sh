#!/usr/bin/env bash
# Create .venv (if needed) and install the package with an extra: dev (tests, lint, Ray, Playwright) unless
# EXTRA names another (the demo needs only `report`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
  # A CPU build is enough for everything here; 2.13.0 is the build known to work on Python 3.11.
  { "$VPY" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" || "$VPY" -m pip install -q torch; } 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
fi
"$VPY" -m pip install -q -e ".[${EXTRA:-dev}]" 2>&1 | { grep -v "^WARNING: Location" || true; }
"$VPY" -c "import corrective, torch; print(f'corrective {corrective.__version__}, torch {torch.__version__}')"
