# Extraction stage: manifest -> one HDF5 per (model, variation, shard) -> merged HDF5.
# Each model runs in its own environment (see soundsim.envs): .venvs/<env> locally,
# envs/<env>.yaml with --sdm conda. Shards are temporary: the merged file is the result.


rule extract_shard:
    """Embed one shard of the manifest with one model/variation (resumable after a crash)."""
    input:
        manifest=LAYOUT.manifest,
    output:
        temp(LAYOUT.shard("{model}", "{variation}", "{shard}", "{shards}")),
    params:
        env=lambda w: model_env(w.model),
        weights=lambda w: model_weights(w.model, w.variation),
        weights_fingerprint=lambda w: WEIGHTS_FP[(w.model, w.variation)],
        code_version=lambda w: MODEL_CODE[w.model],
        options=lambda w: MODELS[w.model].get("options", {}),
        on_bad_audio=config["extraction"]["on_bad_audio"],
        # the previous merged embeddings: clips whose key is unchanged are copied from it
        reuse=lambda w: (
            str(Layout(RESULTS, w.collection).embeddings(w.model, w.variation))
            if REUSE
            else ""
        ),
    threads: 1
    resources:
        gpu=lambda w: 1 if model_info(w.model).needs_gpu else 0,
    log:
        LAYOUT.extract_log("{model}", "{variation}", "{shard}", "{shards}"),
    conda:
        lambda w: f"../../envs/{model_env(w.model)}.yaml"
    script:
        "../scripts/extract_shard.py"


rule merge_embeddings:
    """Join a model/variation's shards, in manifest order, into one embeddings file."""
    input:
        shards=lambda w: shard_files(w.collection, w.model, w.variation),
    output:
        LAYOUT.embeddings("{model}", "{variation}"),
    log:
        LAYOUT.merge_log("{model}", "{variation}"),
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/merge_embeddings.py"
