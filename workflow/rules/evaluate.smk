# Evaluation stage: one job per (model, variation, aggregation, PCA): process once, then one
# blockwise pass serves every search. Adding a PCA size or an aggregation adds jobs; it does
# not re-run the existing ones.


rule evaluate:
    """Aggregate, L2-normalise, PCA; exact search, the paper's metrics and the retrieval panel for every search."""
    input:
        embeddings=LAYOUT.embeddings("{model}", "{variation}"),
        manifest=LAYOUT.manifest,
        families=LAYOUT.families,
        relevance=evaluate_relevance,
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
        panel=config["evaluation"]["panel"],
        rprec_full=config["evaluation"]["rprec"] == "full",
        code_version=EVALUATION_CODE,
    script:
        "../scripts/evaluate.py"


rule evaluate_indexes:
    """A model variation's best setting under each vector index of grid.indexes: MAP, mr1@K,
    recall vs exact, memory per sound, query latency (soundsim.index_eval)."""
    input:
        embeddings=LAYOUT.embeddings("{model}", "{variation}"),
        manifest=LAYOUT.manifest,
        families=LAYOUT.families,
        # the variation's settings: the best by macro MAP@15 is the one evaluated
        summaries=variation_summaries,
    output:
        LAYOUT.index_eval("{model}", "{variation}"),
    log:
        LAYOUT.evaluate_indexes_log("{model}", "{variation}"),
    benchmark:
        LAYOUT.evaluate_indexes_benchmark("{model}", "{variation}")
    conda:
        "../../envs/soundsim.yaml"
    threads: 2
    params:
        indexes=INDEXES,
        index_params=GRID["index_params"],
        cutoffs=config["evaluation"]["cutoffs"],
        seed=config["evaluation"]["seed"],
        use_families=config["evaluation"]["families"],
        code_version=INDEX_CODE,
    script:
        "../scripts/evaluate_indexes.py"
