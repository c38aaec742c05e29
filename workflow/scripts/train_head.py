"""Rule train_head: thin wrapper over soundsim.heads.train_from_files."""

from soundsim import heads
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]) as log:
    heads.train_from_files(
        sm.wildcards.head,
        sm.params.section,
        train_embeddings=sm.input.embeddings,
        train_manifest=sm.input.manifest,
        evaluated_manifest=sm.input.evaluated_manifest,
        train_families=sm.input.families,
        checkpoint=sm.output.checkpoint,
        meta_path=sm.output.meta,
        training_log=sm.output.training,
        say=log.info,
    )
