"""Rule index_table: thin wrapper over soundsim.index_eval.write_index_table, on the declared inputs only."""

from soundsim.index_eval import write_index_table
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    write_index_table(list(sm.input), sm.output.table, sm.output.page, collection=sm.params.collection)
