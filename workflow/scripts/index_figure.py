"""Rule index_figure: thin wrapper over soundsim.figures.index_plot, drawn from tables/indexes.csv."""

from pathlib import Path

from soundsim.figures import index_plot
from soundsim.index_eval import read_index_table
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    index_plot(read_index_table(sm.input[0]), Path(sm.output.png), collection=sm.params.collection)
