# Extraction stage: manifest -> one HDF5 per (model, variation, shard) -> merged HDF5.
# Each model runs in its own environment (see soundsim.envs): .venvs/<env> locally,
# envs/<env>.yaml with --sdm conda. Shards are temporary: the merged file is the result.


rule extract_shard:
    """Embed one shard of the manifest with one model/variation (resumable after a crash)."""
    input:
        manifest=f"{RESULTS}/{{collection}}/manifest.csv",
    output:
        temp(
            f"{RESULTS}/{{collection}}/embeddings/{{model}}/{{variation}}.shard-{{shard}}-of-{{shards}}.h5"
        ),
    params:
        env=lambda w: model_env(w.model),
        weights=lambda w: model_weights(w.model, w.variation),
        weights_fingerprint=lambda w: WEIGHTS_FP[(w.model, w.variation)],
        code_version=lambda w: MODEL_CODE[w.model],
        options=lambda w: MODELS[w.model].get("options", {}),
        on_bad_audio=config["extraction"]["on_bad_audio"],
        # the previous merged embeddings: clips whose key is unchanged are copied from it
        reuse=lambda w: (
            f"{RESULTS}/{w.collection}/embeddings/{w.model}/{w.variation}.h5" if REUSE else ""
        ),
    threads: 1
    resources:
        gpu=lambda w: 1 if model_info(w.model).needs_gpu else 0,
    log:
        f"{RESULTS}/{{collection}}/logs/extract/{{model}}/{{variation}}.shard-{{shard}}-of-{{shards}}.log",
    conda:
        lambda w: f"../../envs/{model_env(w.model)}.yaml"
    script:
        "../scripts/extract_shard.py"


rule merge_embeddings:
    """Join a model/variation's shards, in manifest order, into one embeddings file."""
    input:
        shards=lambda w: shard_files(w.collection, w.model, w.variation),
    output:
        f"{RESULTS}/{{collection}}/embeddings/{{model}}/{{variation}}.h5",
    log:
        f"{RESULTS}/{{collection}}/logs/extract/{{model}}/{{variation}}.merge.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/merge_embeddings.py"
