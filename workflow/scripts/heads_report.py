"""Rule heads_report: thin wrapper over soundsim.heads.write_report, on the declared inputs only."""

from soundsim import heads
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    heads.write_report(
        models=sm.input.models,
        per_query=list(sm.input.per_query),
        metas=list(sm.input.meta),
        training_logs=list(sm.input.training),
        table=sm.output.table,
        comparison=sm.output.comparison,
        training=sm.output.training,
        n_resamples=sm.params.n_resamples,
        confidence=sm.params.confidence,
        seed=sm.params.seed,
        collection=sm.params.collection,
    )
