"""Rule relevance: thin wrapper over soundsim.relevance.run."""

from soundsim import relevance
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    relevance.run(
        sm.input.labels,
        sm.output[0],
        kind=sm.params.kind,
        ontology=sm.input.get("ontology"),
        vocabulary=sm.input.get("vocabulary"),
        family_gain=sm.params.family_gain,
    )
