# Precomputed embeddings (models.<name>.kind: precomputed): vectors computed elsewhere are
# imported once into the embeddings format (soundsim.precomputed), in manifest order, then
# evaluated like any model's. The source's content fingerprint is a parameter: a changed
# source re-imports (and re-evaluates) that model; an unchanged one does nothing.


# a precomputed model's embeddings come from its source, not from extraction shards
ruleorder: import_embeddings > merge_embeddings


rule import_embeddings:
    """Import a precomputed model's vectors (folder of .npy, .npz, .npy + fnames, parquet,
    CSV/TSV, soundsim HDF5) into its embeddings file, in manifest order."""
    input:
        unpack(precomputed_inputs),
    output:
        LAYOUT.embeddings("{model}", "{variation}"),
    log:
        LAYOUT.import_log("{model}", "{variation}"),
    benchmark:
        LAYOUT.import_benchmark("{model}", "{variation}")
    wildcard_constraints:
        model=_alternatives(PRECOMPUTED),
    conda:
        "../../envs/soundsim.yaml"
    params:
        format=lambda w: PRECOMPUTED_SOURCE[w.model].format,
        level=lambda w: PRECOMPUTED[w.model].get("level") or "",
        fingerprint=lambda w: PRECOMPUTED_FP[w.model],
        code_version=lambda w: MODEL_CODE[w.model],
        on_missing=config["extraction"]["on_bad_audio"],
    script:
        "../scripts/import_embeddings.py"
