"""Rule tables: thin wrapper over soundsim.tables.write_tables, on the rule's declared inputs only."""

from pathlib import Path

from soundsim import models
from soundsim.layout import settings_from_inputs
from soundsim.logutil import job_log
from soundsim.tables import write_tables

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    settings = settings_from_inputs(
        summary=sm.input.summaries,
        per_label=sm.input.per_label,
        per_family=sm.input.per_family,
        per_query=sm.input.per_query,
    )
    write_tables(
        settings,
        Path(sm.output.models).parent,
        paper_table2=sm.params.paper_table2 or None,
        collection=sm.params.collection,
        n_resamples=sm.params.n_resamples,
        confidence=sm.params.confidence,
        seed=sm.params.seed,
        dataset=sm.params.dataset or None,
        registry=models.configured(sm.params.models),
    )
