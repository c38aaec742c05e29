# Embedding maps: a 2-D t-SNE map of each model variation's processed clip vectors (the
# matrices rule evaluate writes) at its model's setting of tables/models.csv, coloured by
# sound family (soundsim.maps). One job for all models; seeded (evaluation.seed).


rule embedding_maps:
    """A t-SNE map per model variation at its model's models.csv setting, coloured by family."""
    input:
        models=OUT.table("models"),
        # the processed matrices of every configured processing setting (rule evaluate); of
        # each model variation, the script reads the one its model's best_setting names
        processed=processed_files(),
        manifest=OUT.manifest,
        families=OUT.families,
    output:
        maps=[
            report(
                OUT.figure(map_figure_name(n, v)),
                caption=caption("maps"),
                category="Figures",
                subcategory="Embedding maps (t-SNE)",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        maps_pdf=[OUT.figure(map_figure_name(n, v), "pdf") for n, v in WEIGHTS],
    log:
        OUT.log("embedding_maps"),
    benchmark:
        OUT.benchmark("embedding_maps")
    conda:
        "../../envs/soundsim.yaml"
    params:
        variations=[[n, v] for n, v in WEIGHTS],
        seed=config["evaluation"]["seed"],
        collection=OUT.collection,
        code_version=REPORT_CODE,
    script:
        "../scripts/embedding_maps.py"
