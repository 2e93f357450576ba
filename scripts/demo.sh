#!/usr/bin/env bash
# Quick start, command 1: set up, run the default benchmark (digits, three manipulations, every method,
# alpha 0.1..1.0, the oracle) into results/default (re-running resumes it); the bench ends by writing
# its report, results/default/report/report.html (and report.md, figures/*.png).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA=report bash scripts/setup.sh  # the benchmark and its report: matplotlib, no test tools
.venv/bin/corrective bench --out results/default
