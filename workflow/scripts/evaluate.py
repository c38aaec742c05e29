"""Rule evaluate: thin wrapper over soundsim.evaluate.evaluate_job."""

from pathlib import Path

from soundsim.evaluate import evaluate_job
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    evaluate_job(
        sm.input.embeddings,
        sm.input.manifest,
        sm.input.families if sm.params.use_families else None,
        sm.wildcards.aggregation,
        sm.wildcards.pca,
        sm.params.searches,
        sm.params.cutoffs,
        metrics_dir=sm.params.metrics_dir,
        processed_dir=Path(sm.output.processed).parent,
        seed=sm.params.seed,
        panel=sm.params.panel,
        relevance_path=sm.input.relevance if sm.params.panel else None,
        rprec_full=sm.params.rprec_full,
    )
