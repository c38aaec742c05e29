"""Rule listening_summary: thin wrapper over soundsim.listen.summary.write_listening."""

from soundsim.listen.summary import write_listening
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    write_listening(
        sm.input.ratings,
        sm.output.table,
        sm.output.correlations,
        sm.output.figure[: -len(".png")],
        summaries=list(sm.input.summaries),
        collection=sm.wildcards.collection,
    )
