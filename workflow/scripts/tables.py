"""Rule tables: thin wrapper over soundsim.tables.write_tables."""

from pathlib import Path

from soundsim.logutil import job_log
from soundsim.tables import write_tables

sm = snakemake  # noqa: F821 - injected by Snakemake

collection_dir = Path(sm.output.models).parent.parent  # results/<collection>

with job_log(sm.log[0]):
    write_tables(
        collection_dir / "metrics",
        Path(sm.output.models).parent,
        paper_table2=sm.params.paper_table2 or None,
        collection=collection_dir.name,
        summaries=list(sm.input.summaries),
        n_resamples=sm.params.n_resamples,
        confidence=sm.params.confidence,
        seed=sm.params.seed,
    )
