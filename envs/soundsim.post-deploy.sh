#!/usr/bin/env bash
# Run by Snakemake after it creates the 'soundsim' conda env (--sdm conda), from the
# workflow's working directory. aisfx's own pins do not install on Python 3.11, so it
# goes in with --no-deps; soundsim itself comes from this checkout.
set -euo pipefail
python -m pip install --no-deps aisfx==0.1.2
python -m pip install --no-deps -e "${SOUNDSIM_ROOT:-.}"
