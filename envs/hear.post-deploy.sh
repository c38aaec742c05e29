#!/usr/bin/env bash
# Run by Snakemake after it creates the 'hear' conda env (--sdm conda), from the workflow's
# working directory: hearbaseline's own pins (numpy==1.19.2, numba==0.48, tensorflow, ...)
# do not install on Python 3.11, and hearbaseline.naive needs only torch and librosa.
set -euo pipefail
python -m pip install --no-deps hearbaseline==2021.1.1
python -m pip install --no-deps -e "${SOUNDSIM_ROOT:-.}"
