# Evaluation stage: one job per (model, variation, aggregation, PCA): process once, then one
# blockwise pass serves every search. Adding a PCA size or an aggregation adds jobs; it does
# not re-run the existing ones.


rule evaluate:
    """Aggregate, L2-normalise, PCA; exact search and the paper's metrics for every search."""
    input:
        embeddings=LAYOUT.embeddings("{model}", "{variation}"),
        manifest=LAYOUT.manifest,
        families=LAYOUT.families,
    output:
        processed=LAYOUT.processed("{model}", "{variation}", "{aggregation}", "{pca}"),
        metrics=setting_outputs(),
    log:
        LAYOUT.evaluate_log("{model}", "{variation}", "{aggregation}", "{pca}"),
    benchmark:
        LAYOUT.evaluate_benchmark("{model}", "{variation}", "{aggregation}", "{pca}")
    group:
        "evaluate"
    conda:
        "../../envs/soundsim.yaml"
    threads: 2
    params:
        metrics_dir=lambda w: str(
            Layout(RESULTS, w.collection).metrics_variation_dir(w.model, w.variation)
        ),
        searches=SEARCHES,
        cutoffs=config["evaluation"]["cutoffs"],
        seed=config["evaluation"]["seed"],
        use_families=config["evaluation"]["families"],
        code_version=EVALUATION_CODE,
    script:
        "../scripts/evaluate.py"
