#!/usr/bin/env bash
# CPU smoke pretraining on the embedded corpus: sets up .venv on first use, then trains.
# Extra arguments are passed to `bertjax train`, e.g. --config.num_train_steps=200.
# Re-running with the same workdir resumes from the latest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/bertjax ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt -e .
fi
exec .venv/bin/bertjax train --config=configs/cpu_smoke.py --workdir="${WORKDIR:-workdirs/cpu_smoke}" "$@"
