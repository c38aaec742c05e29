#!/usr/bin/env bash
# Run by Snakemake after it creates the 'essentia-tf' conda env (--sdm conda), from the
# workflow's working directory: soundsim itself comes from this checkout.
set -euo pipefail
python -m pip install --no-deps -e "${SOUNDSIM_ROOT:-.}"
