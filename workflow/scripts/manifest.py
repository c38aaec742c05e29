"""Rule manifest: thin wrapper over soundsim.manifest.run."""

from pathlib import Path

from soundsim import manifest
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    manifest.run(
        sm.params.collection,
        out_dir=Path(sm.output.manifest).parent,
        on_bad_audio=sm.params.on_bad_audio,
        threads=sm.threads,
        demo_dir=Path(sm.input.ground_truth).parent if sm.params.collection["kind"] == "demo" else None,
    )
