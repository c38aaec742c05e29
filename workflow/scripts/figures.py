"""Rule figures: thin wrapper over soundsim.figures.make_figures, drawn from the declared tables,
the declared rankings.h5 of the configured settings and the manifest."""

from pathlib import Path

from soundsim.figures import FIGURE_TABLES, make_figures
from soundsim.layout import settings_from_inputs
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    make_figures(
        {k: sm.input[k] for k in FIGURE_TABLES},
        Path(sm.output.models).parent,
        collection=sm.params.collection,
        confidence=sm.params.confidence,
        rankings={s.key: s.rankings for s in settings_from_inputs(rankings=sm.input.rankings)},
        manifest=sm.input.manifest,
    )
