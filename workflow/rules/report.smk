# Report stage: tables (the paper's Tables I and II, all settings, families, pairwise tests)
# and figures (the paper's Fig. 1 per model/variation, Fig. 2, model comparison with confidence
# intervals, per-label MAP@15, significance matrix). Short local jobs: they read small
# CSV/JSON/Parquet files; the bootstrap resamples the per-query values (no search re-runs).


localrules:
    tables,
    figures,


rule tables:
    """All settings, best settings (Table I), models (Table II), families, labels, pairwise tests."""
    input:
        # the files of every configured setting, and nothing else in the tree
        summaries=metrics_files("summary"),
        per_label=metrics_files("per_label"),
        per_family=metrics_files("per_family"),
        per_query=metrics_files("per_query"),
    output:
        all_settings=report(
            OUT.table("all_settings"),
            caption="../report/all_settings.rst",
            category="Tables",
        ),
        best_settings=report(
            OUT.table("best_settings"),
            caption="../report/best_settings.rst",
            category="Tables",
        ),
        models=report(
            OUT.table("models"), caption="../report/models.rst", category="Tables"
        ),
        models_md=OUT.table("models_md"),
        families=report(
            OUT.table("families"),
            caption="../report/families_table.rst",
            category="Tables",
        ),
        labels=OUT.table("labels"),
        pairwise=report(
            OUT.table("pairwise"),
            caption="../report/pairwise.rst",
            category="Tables",
        ),
    params:
        paper_table2=paper_table2(),
        n_resamples=config["evaluation"]["n_resamples"],
        confidence=config["evaluation"]["confidence"],
        seed=config["evaluation"]["seed"],
        collection=OUT.collection,
    log:
        OUT.log("tables"),
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/tables.py"


rule figures:
    """Figures, PNG and PDF, drawn from the tables."""
    input:
        all_settings=OUT.table("all_settings"),
        best_settings=OUT.table("best_settings"),
        models=OUT.table("models"),
        families=OUT.table("families"),
        labels=OUT.table("labels"),
        pairwise=OUT.table("pairwise"),
    output:
        grid=[
            report(
                OUT.figure(grid_figure_name(n, v)),
                caption="../report/grid.rst",
                category="Figures",
                subcategory="Processing x search grid (Fig. 1)",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        grid_pdf=[OUT.figure(grid_figure_name(n, v), "pdf") for n, v in WEIGHTS],
        families=report(
            OUT.figure("families"),
            caption="../report/families.rst",
            category="Figures",
            labels={"figure": "families (Fig. 2)"},
        ),
        models=report(
            OUT.figure("models"),
            caption="../report/models_figure.rst",
            category="Figures",
            labels={"figure": "models"},
        ),
        per_label=report(
            OUT.figure("per_label"),
            caption="../report/per_label.rst",
            category="Figures",
            labels={"figure": "per label"},
        ),
        significance=report(
            OUT.figure("significance"),
            caption="../report/significance.rst",
            category="Figures",
            labels={"figure": "significance matrix"},
        ),
        pdfs=[OUT.figure(f, "pdf") for f in FIGURES],
    params:
        confidence=config["evaluation"]["confidence"],
        collection=OUT.collection,
    log:
        OUT.log("figures"),
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/figures.py"
