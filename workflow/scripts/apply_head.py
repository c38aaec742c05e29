"""Rule apply_head: thin wrapper over soundsim.heads.apply_to_file."""

from soundsim import heads
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]) as log:
    out = heads.apply_to_file(
        sm.wildcards.model,
        sm.params.section,
        base_embeddings=sm.input.embeddings,
        checkpoint=sm.input.checkpoint,
        meta_path=sm.input.meta,
        out=sm.output[0],
    )
    log.info("head %s applied: %s", sm.wildcards.model, out)
