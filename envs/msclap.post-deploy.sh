#!/usr/bin/env bash
# Run by Snakemake after it creates the 'msclap' conda env (--sdm conda), from the
# workflow's working directory: msclap's own requirements (torchaudio, transformers,
# huggingface_hub) are not needed by soundsim and torchaudio does not load beside torch 2.13.
set -euo pipefail
python -m pip install --no-deps msclap==1.3.4
python -m pip install --no-deps -e "${SOUNDSIM_ROOT:-.}"
