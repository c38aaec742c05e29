# Collection stage: (demo generation) -> manifest.


rule demo_data:
    """Synthesise the demo collection (deterministic from the seed)."""
    output:
        audio=directory(LAYOUT.source_audio),
        ground_truth=LAYOUT.source("ground_truth"),
        vocabulary=LAYOUT.source("vocabulary"),
        families=LAYOUT.source("families"),
    log:
        LAYOUT.log("demo_data"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        seed=COLLECTION.get("seed", 0),
        clips_per_class=COLLECTION.get("clips_per_class", 16),
    script:
        "../scripts/demo_data.py"


rule manifest:
    """Check every clip (labels, files, audio) and write the manifest the later stages read."""
    input:
        unpack(collection_inputs),
    output:
        manifest=LAYOUT.manifest,
        bad_audio=LAYOUT.bad_audio,
        # in the report as tables/collection_labels.html (rule table_pages)
        labels=LAYOUT.labels,
        families=LAYOUT.families,
    log:
        LAYOUT.log("manifest"),
    conda:
        "../../envs/soundsim.yaml"
    threads: 4
    params:
        collection=COLLECTION,
        on_bad_audio=config["extraction"]["on_bad_audio"],
        # sizes and mtimes of the audio files: a changed clip re-makes the manifest (its fingerprints)
        audio_state=manifest_lib.audio_state(COLLECTION),
    script:
        "../scripts/manifest.py"
