# Extraction stage: manifest -> one HDF5 per (model, variation, shard) -> merged HDF5.
# Each model runs in its own environment (see soundsim.envs): .venvs/<env> locally,
# envs/<env>.yaml with --sdm conda. Shards are Snakemake's scattergather items
# (extraction.shards, or --set-scatter shard=N); they are temporary: the merged file is the result.


rule extract_shard:
    """Embed one shard of the manifest with one model/variation (resumable after a crash).
    Runs `soundsim extract` directly with the model environment's interpreter."""
    input:
        manifest=LAYOUT.manifest,
    output:
        temp(LAYOUT.shard("{model}", "{variation}", "{scatteritem}")),
    log:
        LAYOUT.extract_log("{model}", "{variation}", "{scatteritem}"),
    benchmark:
        LAYOUT.extract_benchmark("{model}", "{variation}", "{scatteritem}")
    conda:
        lambda w: f"../../envs/{model_env(w.model)}.yaml"
    threads: 1
    resources:
        gpu=lambda w: 1 if model_info(w.model).needs_gpu else 0,
    params:
        python=lambda w: model_python(w.model),
        shard=lambda w: parse_shard_item(w.scatteritem)[0],
        shards=lambda w: parse_shard_item(w.scatteritem)[1],
        weights_fingerprint=lambda w: WEIGHTS_FP[(w.model, w.variation)],
        code_version=lambda w: MODEL_CODE[w.model],
        on_bad_audio=config["extraction"]["on_bad_audio"],
        # --weights, --reuse (the previous merged embeddings: clips whose key is unchanged
        # are copied from it) and the model's options
        flags=lambda w: extract_flags(w),
    shell:
        "{params.python} -m soundsim.cli extract --manifest {input.manifest:q}"
        " --model {wildcards.model:q} --variation {wildcards.variation:q}"
        " --shard {params.shard} --shards {params.shards} --out {output:q}"
        " --on-bad-audio {params.on_bad_audio} --device auto --threads {threads}"
        " --code-version {params.code_version} --weights-fingerprint {params.weights_fingerprint}"
        " {params.flags} > {log:q} 2>&1"


rule merge_embeddings:
    """Join a model/variation's shards, in manifest order, into one embeddings file."""
    input:
        shards=gather.shard(
            LAYOUT.shard("{model}", "{variation}", "{scatteritem}"), allow_missing=True
        ),
    output:
        LAYOUT.embeddings("{model}", "{variation}"),
    log:
        LAYOUT.merge_log("{model}", "{variation}"),
    benchmark:
        LAYOUT.merge_benchmark("{model}", "{variation}")
    conda:
        "../../envs/soundsim.yaml"
    params:
        # what keys the shards, again here: the shards are temporary, so once they are gone
        # only the merged file's own params can tell that its code, weights or options changed
        code_version=lambda w: MODEL_CODE[w.model],
        weights_fingerprint=lambda w: WEIGHTS_FP[(w.model, w.variation)],
        flags=lambda w: extract_flags(w),
    script:
        "../scripts/merge_embeddings.py"
