"""Rule demo_data: thin wrapper over soundsim.datasets.demo.generate."""

from pathlib import Path

from soundsim.datasets import demo
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]) as log:
    paths = demo.generate(
        Path(sm.output.ground_truth).parent,
        seed=sm.params.seed,
        clips_per_class=sm.params.clips_per_class,
        fname_prefix=sm.params.fname_prefix,
    )
    log.info("demo collection written: %s", {k: str(v) for k, v in paths.items()})
