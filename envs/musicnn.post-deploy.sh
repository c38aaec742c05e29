#!/usr/bin/env bash
# Run by Snakemake after it creates the 'musicnn' conda env (--sdm conda), from the
# workflow's working directory: musicnn's own pins do not install on Python 3.11.
set -euo pipefail
python -m pip install --no-deps musicnn==0.1.0
python -m pip install --no-deps -e "${SOUNDSIM_ROOT:-.}"
