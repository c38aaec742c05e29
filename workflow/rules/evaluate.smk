# Evaluation stage: one job per (model, variation, aggregation, PCA): process once, then one
# blockwise pass serves every search. Adding a PCA size or an aggregation adds jobs; it does
# not re-run the existing ones.


rule evaluate:
    """Aggregate, L2-normalise, PCA; exact search and the paper's metrics for every search."""
    input:
        embeddings=f"{RESULTS}/{{collection}}/embeddings/{{model}}/{{variation}}.h5",
        manifest=f"{RESULTS}/{{collection}}/manifest.csv",
        families=f"{RESULTS}/{{collection}}/families.json",
    output:
        processed=f"{RESULTS}/{{collection}}/processed/{{model}}/{{variation}}/agg-{{aggregation}}_pca-{{pca}}.h5",
        metrics=setting_outputs(),
    params:
        metrics_dir=lambda w: f"{RESULTS}/{w.collection}/metrics/{w.model}/{w.variation}",
        searches=SEARCHES,
        cutoffs=config["evaluation"]["cutoffs"],
        seed=config["evaluation"]["seed"],
        use_families=config["evaluation"]["families"],
        code_version=EVALUATION_CODE,
    threads: 2
    group:
        "evaluate"
    log:
        f"{RESULTS}/{{collection}}/logs/evaluate/{{model}}/{{variation}}/agg-{{aggregation}}_pca-{{pca}}.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/evaluate.py"
