"""Rule embedding_maps: thin wrapper over soundsim.maps.write_maps, drawn from the declared
models.csv, processed matrices (the models.csv setting of each model variation is read),
manifest and families.json."""

from pathlib import Path

from soundsim.layout import Layout
from soundsim.logutil import job_log
from soundsim.maps import write_maps

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    write_maps(
        sm.input.models,
        list(sm.input.processed),
        sm.input.manifest,
        sm.input.families,
        # figures/ of the collection whose manifest.csv this is (soundsim.layout)
        Layout.at(Path(sm.input.manifest).parent).figures_dir,
        seed=sm.params.seed,
        variations=[tuple(nv) for nv in sm.params.variations],
        collection=sm.params.collection,
    )
