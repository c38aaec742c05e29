"""Rule figures: thin wrapper over soundsim.figures.make_figures, drawn from the declared tables."""

from pathlib import Path

from soundsim.figures import FIGURE_TABLES, make_figures
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    make_figures(
        {k: sm.input[k] for k in FIGURE_TABLES},
        Path(sm.output.models).parent,
        collection=sm.params.collection,
        confidence=sm.params.confidence,
    )
