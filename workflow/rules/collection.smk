# Collection stage: (demo generation) -> manifest.


rule demo_data:
    """Synthesise the demo collection (deterministic from the seed)."""
    output:
        audio=directory(f"{RESULTS}/{{collection}}/source/audio"),
        ground_truth=f"{RESULTS}/{{collection}}/source/ground_truth.csv",
        vocabulary=f"{RESULTS}/{{collection}}/source/vocabulary.csv",
        families=f"{RESULTS}/{{collection}}/source/families.json",
    params:
        seed=COLLECTION.get("seed", 0),
        clips_per_class=COLLECTION.get("clips_per_class", 16),
    log:
        f"{RESULTS}/{{collection}}/logs/demo_data.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/demo_data.py"


rule manifest:
    """Check every clip (labels, files, audio) and write the manifest the later stages read."""
    input:
        unpack(collection_inputs),
    output:
        manifest=f"{RESULTS}/{{collection}}/manifest.csv",
        bad_audio=f"{RESULTS}/{{collection}}/bad_audio.csv",
        # in the report as tables/collection_labels.html (rule table_pages)
        labels=f"{RESULTS}/{{collection}}/labels.csv",
        families=f"{RESULTS}/{{collection}}/families.json",
    params:
        collection=COLLECTION,
        on_bad_audio=config["extraction"]["on_bad_audio"],
        # sizes and mtimes of the audio files: a changed clip re-makes the manifest (its fingerprints)
        audio_state=manifest_lib.audio_state(COLLECTION),
    threads: 4
    log:
        f"{RESULTS}/{{collection}}/logs/manifest.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/manifest.py"
