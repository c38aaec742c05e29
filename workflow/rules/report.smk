# Report stage: tables (the paper's Tables I and II, all settings, families, pairwise tests),
# their HTML pages for the report, and figures (the paper's Fig. 1 per model/variation, as bars
# and as heatmaps, Fig. 2, model comparison with confidence intervals, significance matrix,
# precision@k curves, per-label MAP@15, rank stability). Short local jobs: they read small
# CSV/JSON/Parquet/HDF5 files; the bootstrap resamples the per-query values (no search re-runs).


localrules:
    tables,
    table_pages,
    figures,
    index_table,
    index_figure,


rule tables:
    """All settings, best settings (Table I), models (Table II), families, labels, pairwise tests."""
    input:
        # the files of every configured setting, and nothing else in the tree
        summaries=metrics_files("summary"),
        per_label=metrics_files("per_label"),
        per_family=metrics_files("per_family"),
        per_query=metrics_files("per_query"),
    output:
        # in the report as HTML pages (rule table_pages): Snakemake shows CSV only as a download
        all_settings=OUT.table("all_settings"),
        best_settings=OUT.table("best_settings"),
        models=OUT.table("models"),
        models_md=OUT.table("models_md"),
        families=OUT.table("families"),
        labels=OUT.table("labels"),
        pairwise=OUT.table("pairwise"),
    log:
        OUT.log("tables"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        paper_table2=paper_table2(),
        n_resamples=config["evaluation"]["n_resamples"],
        confidence=config["evaluation"]["confidence"],
        seed=config["evaluation"]["seed"],
        collection=OUT.collection,
        # the collection's dataset ('' when not declared) and each model's declared training
        # data: the training-data flag of every table; a change re-runs the tables
        dataset=DATASET or "",
        training_data=plan.training_declarations(config),
        # the enabled models' sections: the ModelInfo of each (soundsim.models.configured)
        models=MODELS,
        code_version=REPORT_CODE,
    script:
        "../scripts/tables.py"


# page (soundsim.layout.TABLE_PAGES) -> (caption, subcategory, label) in the report (category Tables)
TABLE_PAGE_REPORT = {
    "models": ("models", "Per model", "models (Table II; models.md)"),
    "best_settings": ("best_settings", "Per model", "best settings (Table I)"),
    "pairwise": ("pairwise", "Per model", "paired tests"),
    "all_settings": ("all_settings", "Per setting", "all settings (Fig. 1 data)"),
    "families": ("families_table", "Per family and label", "families (Fig. 2 data)"),
    "labels": ("labels_table", "Per family and label", "labels (tables/labels.csv)"),
    "collection_labels": ("labels", "Collection", "labels of the collection"),
}


rule table_pages:
    """Every table as an HTML page for the report (Snakemake renders HTML inside the report)."""
    input:
        # each page's CSV (models: models.csv, shown as models.md shows it)
        **{n: OUT.table_page_source(n) for n in TABLE_PAGES},
    output:
        **{
            n: report(
                OUT.table_page(n),
                caption=caption(TABLE_PAGE_REPORT[n][0]),
                category="Tables",
                subcategory=TABLE_PAGE_REPORT[n][1],
                labels={"table": TABLE_PAGE_REPORT[n][2]},
            )
            for n in TABLE_PAGES
        },
    log:
        OUT.log("table_pages"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        collection=OUT.collection,
        confidence=config["evaluation"]["confidence"],
    script:
        "../scripts/table_pages.py"


rule figures:
    """Figures, PNG and PDF, drawn from the tables."""
    input:
        all_settings=OUT.table("all_settings"),
        best_settings=OUT.table("best_settings"),
        models=OUT.table("models"),
        families=OUT.table("families"),
        labels=OUT.table("labels"),
        pairwise=OUT.table("pairwise"),
        # precision@k: the top-K lists of each model's best and fixed setting (chosen from models.csv)
        rankings=metrics_files("rankings"),
        manifest=OUT.manifest,
    output:
        grid=[
            report(
                OUT.figure(grid_figure_name(n, v)),
                caption=caption("grid"),
                category="Figures",
                subcategory="Fig. 1: MAP@15 per setting, per model",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        grid_pdf=[OUT.figure(grid_figure_name(n, v), "pdf") for n, v in WEIGHTS],
        grid_heatmap=[
            report(
                OUT.figure(grid_heatmap_name(n, v)),
                caption=caption("grid_heatmap"),
                category="Figures",
                subcategory="Fig. 1 as heatmaps (one colour range)",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        grid_heatmap_pdf=[
            OUT.figure(grid_heatmap_name(n, v), "pdf") for n, v in WEIGHTS
        ],
        models=report(
            OUT.figure("models"),
            caption=caption("models_figure"),
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "MAP and MR1 per model"},
        ),
        significance=report(
            OUT.figure("significance"),
            caption=caption("significance"),
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "significance matrix"},
        ),
        precision_at_k=report(
            OUT.figure("precision_at_k"),
            caption=caption("precision_at_k"),
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "precision@k curves"},
        ),
        ranks=report(
            OUT.figure("ranks"),
            caption=caption("ranks"),
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "rank stability"},
        ),
        families=report(
            OUT.figure("families"),
            caption=caption("families"),
            category="Figures",
            subcategory="Families and labels",
            labels={"figure": "families (Fig. 2)"},
        ),
        per_label=report(
            OUT.figure("per_label"),
            caption=caption("per_label"),
            category="Figures",
            subcategory="Families and labels",
            labels={"figure": "per label"},
        ),
        pdfs=[OUT.figure(f, "pdf") for f in FIGURES],
    log:
        OUT.log("figures"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        confidence=config["evaluation"]["confidence"],
        collection=OUT.collection,
        code_version=REPORT_CODE,
    script:
        "../scripts/figures.py"


rule index_table:
    """Approximate search (grid.indexes): the variations' indexes.csv gathered, and its report page."""
    input:
        index_eval_files(),
    output:
        table=OUT.table("indexes"),
        page=report(
            OUT.index_table_page,
            caption=caption("indexes_table"),
            category="Tables",
            subcategory="Per model",
            labels={"table": "approximate search (tables/indexes.csv)"},
        ),
    log:
        OUT.log("index_table"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        collection=OUT.collection,
    script:
        "../scripts/index_table.py"


rule index_figure:
    """Approximate search: MAP@15 vs memory per sound vs query latency, per model and index."""
    input:
        OUT.table("indexes"),
    output:
        png=report(
            OUT.figure(INDEX_FIGURE),
            caption=caption("indexes"),
            category="Figures",
            subcategory="Approximate search",
            labels={"figure": "quality vs memory vs latency"},
        ),
        pdf=OUT.figure(INDEX_FIGURE, "pdf"),
    log:
        OUT.log("index_figure"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        collection=OUT.collection,
    script:
        "../scripts/index_figure.py"
