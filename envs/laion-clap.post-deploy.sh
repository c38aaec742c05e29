#!/usr/bin/env bash
# Run by Snakemake after it creates the 'laion-clap' conda env (--sdm conda), from the
# workflow's working directory. laion-clap's declared dependencies (transformers, wandb,
# webdataset, torchvision through its training code, ...) are not needed for the audio
# branch soundsim uses, so it goes in with --no-deps; soundsim itself comes from this checkout.
set -euo pipefail
python -m pip install --no-deps laion-clap==1.1.7
python -m pip install --no-deps -e "${SOUNDSIM_ROOT:-.}"
