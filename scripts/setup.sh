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
# Real data on every machine: Fashion-MNIST from Debian's package (the loader finds it without --root).
FASHION=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FASHION" ] && [ "${SKIP_FASHION:-0}" != 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist; } \
      >/dev/null 2>&1 || echo "setup: could not install dataset-fashion-mnist with apt-get; Fashion-MNIST needs its files in data/fashion_mnist"
  else
    echo "setup: Fashion-MNIST not installed; put its four IDX files in data/fashion_mnist (or apt-get install dataset-fashion-mnist as root)"
  fi
fi
"$VPY" -c "import corrective, torch; print(f'corrective {corrective.__version__}, torch {torch.__version__}')"
