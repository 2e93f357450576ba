#!/usr/bin/env bash
# A second environment for the tests of torchvision and timm models (tests/test_byo_vision.py): .venv-vision
# (or $VISION_VENV) with the `vision` extra (torch 2.14.1 + torchvision 0.29.1, a pair that imports together,
# and timm), the `hf` and `data` extras and pytest, the project installed editable. .venv keeps its CPU torch
# 2.13.0, beside which PyPI's torchvision does not import. Idempotent: installs nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VISION_VENV:-.venv-vision}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
HERE=$(pwd -P)
# Installed already: every package imports, and corrective from this checkout.
if ! "$VPY" - "$HERE" 2>/dev/null <<'PYEOF'; then
import pathlib, sys
import datasets, pytest, timm, torch, torchvision, PIL  # noqa: F401
import corrective
sys.exit(0 if pathlib.Path(corrective.__file__).resolve().is_relative_to(pathlib.Path(sys.argv[1])) else 1)
PYEOF
  "$VPY" -m pip install -q -e ".[vision,hf,data]" "pytest>=8" 2>&1 | { grep -v "^WARNING: Location" || true; }
fi
"$VPY" -c "import corrective, torch, torchvision, timm; print(f'vision env: corrective {corrective.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}')"
