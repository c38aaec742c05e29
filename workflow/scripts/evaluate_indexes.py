"""Rule evaluate_indexes: thin wrapper over soundsim.index_eval.evaluate_indexes_job."""

from soundsim.index_eval import evaluate_indexes_job
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    evaluate_indexes_job(
        sm.input.embeddings,
        sm.input.manifest,
        sm.input.families if sm.params.use_families else None,
        list(sm.input.summaries),
        sm.params.cutoffs,
        sm.params.indexes,
        sm.params.index_params,
        out=sm.output[0],
        seed=sm.params.seed,
    )
