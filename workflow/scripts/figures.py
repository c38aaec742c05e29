"""Rule figures: thin wrapper over soundsim.figures.make_figures."""

from pathlib import Path

from soundsim.figures import make_figures
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

collection_dir = Path(sm.input.models).parent.parent  # results/<collection>

with job_log(sm.log[0]):
    make_figures(
        collection_dir / "metrics",
        {k: sm.input[k] for k in ("all_settings", "models", "families", "labels", "pairwise")},
        Path(sm.output.models).parent,
        collection=collection_dir.name,
        confidence=sm.params.confidence,
        rankings=list(sm.input.rankings),
        manifest=sm.input.manifest,
    )
