"""Rule extract_shard: run `soundsim extract` in the model's environment."""

import json

from soundsim.envs import run_in_env
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    run_in_env(
        sm.params.env,
        ["extract", "--manifest", sm.input.manifest, "--model", sm.wildcards.model,
         "--variation", sm.wildcards.variation, "--shard", sm.wildcards.shard, "--shards", sm.wildcards.shards,
         "--out", sm.output[0], "--on-bad-audio", sm.params.on_bad_audio, "--device", "auto",
         "--code-version", sm.params.code_version, "--weights-fingerprint", sm.params.weights_fingerprint]
        + (["--weights", sm.params.weights] if sm.params.weights else [])
        + (["--reuse", sm.params.reuse] if sm.params.reuse else [])
        + [f"--option={k}={json.dumps(v)}" for k, v in sm.params.options.items()],
        log_path=sm.log[0],
        threads=sm.threads,
    )
