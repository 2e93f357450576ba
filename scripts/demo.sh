#!/usr/bin/env bash
# Quick start, command 1: set up, then train a poisoned model on the embedded digits data and print its metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/corrective train --dataset digits --manipulation poison --size 0.05 --seed 0 --out runs/demo --overwrite "$@"
