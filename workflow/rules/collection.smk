# Collection stage: (demo generation) -> manifest, for the evaluated collection and, when heads
# are configured, the training collection (wildcard collection: either name).


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
        seed=lambda w: collection_config(w)["seed"],
        clips_per_class=lambda w: collection_config(w)["clips_per_class"],
        fname_prefix=lambda w: collection_config(w)["fname_prefix"],
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
        collection=lambda w: collection_config(w),
        on_bad_audio=config["extraction"]["on_bad_audio"],
        # sizes and mtimes of the audio files: a changed clip re-makes the manifest (its fingerprints)
        audio_state=lambda w: AUDIO_STATE[w.collection],
    script:
        "../scripts/manifest.py"


rule relevance:
    """Graded gains between the collection's labels for the panel's nDCG (soundsim.relevance)."""
    input:
        unpack(relevance_inputs),
    output:
        LAYOUT.relevance,
    log:
        LAYOUT.log("relevance"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        kind=relevance_kind,
        family_gain=config["evaluation"]["family_gain"],
    script:
        "../scripts/relevance.py"
