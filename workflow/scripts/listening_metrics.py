"""Rule listening_metrics: thin wrapper over soundsim.listen.agreement.write_agreement."""

from soundsim.listen.agreement import write_agreement
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    write_agreement(
        sm.input.ratings,
        list(sm.input.per_query),
        sm.output.table,
        sm.output.figure[: -len(".png")],
        collection=sm.wildcards.collection,
        n_resamples=sm.params.n_resamples,
        confidence=sm.params.confidence,
        seed=sm.params.seed,
    )
