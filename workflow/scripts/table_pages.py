"""Rule table_pages: thin wrapper over soundsim.table_pages.write_table_pages."""

from soundsim.logutil import job_log
from soundsim.table_pages import write_table_pages

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    write_table_pages(
        {k: sm.input[k] for k in sm.output.keys()},
        {k: sm.output[k] for k in sm.output.keys()},
        collection=sm.params.collection,
        confidence=sm.params.confidence,
    )
