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
        summaries=summary_files(),
        per_query=per_query_files(),
    output:
        all_settings=report(
            f"{C}/tables/all_settings.csv",
            caption="../report/all_settings.rst",
            category="Tables",
        ),
        best_settings=report(
            f"{C}/tables/best_settings.csv",
            caption="../report/best_settings.rst",
            category="Tables",
        ),
        models=report(
            f"{C}/tables/models.csv", caption="../report/models.rst", category="Tables"
        ),
        models_md=f"{C}/tables/models.md",
        families=report(
            f"{C}/tables/families.csv",
            caption="../report/families_table.rst",
            category="Tables",
        ),
        labels=f"{C}/tables/labels.csv",
        pairwise=report(
            f"{C}/tables/pairwise.csv",
            caption="../report/pairwise.rst",
            category="Tables",
        ),
    params:
        paper_table2=paper_table2(),
        n_resamples=config["evaluation"]["n_resamples"],
        confidence=config["evaluation"]["confidence"],
        seed=config["evaluation"]["seed"],
    log:
        f"{C}/logs/tables.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/tables.py"


rule figures:
    """Figures, PNG and PDF."""
    input:
        all_settings=f"{C}/tables/all_settings.csv",
        models=f"{C}/tables/models.csv",
        families=f"{C}/tables/families.csv",
        labels=f"{C}/tables/labels.csv",
        pairwise=f"{C}/tables/pairwise.csv",
    output:
        grid=[
            report(
                f"{C}/figures/grid/{n}__{v}.png",
                caption="../report/grid.rst",
                category="Figures",
                subcategory="Processing x search grid (Fig. 1)",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        grid_pdf=[f"{C}/figures/grid/{n}__{v}.pdf" for n, v in WEIGHTS],
        families=report(
            f"{C}/figures/families.png",
            caption="../report/families.rst",
            category="Figures",
            labels={"figure": "families (Fig. 2)"},
        ),
        models=report(
            f"{C}/figures/models.png",
            caption="../report/models_figure.rst",
            category="Figures",
            labels={"figure": "models"},
        ),
        per_label=report(
            f"{C}/figures/per_label.png",
            caption="../report/per_label.rst",
            category="Figures",
            labels={"figure": "per label"},
        ),
        significance=report(
            f"{C}/figures/significance.png",
            caption="../report/significance.rst",
            category="Figures",
            labels={"figure": "significance matrix"},
        ),
        pdfs=[
            f"{C}/figures/{f}.pdf"
            for f in ("families", "models", "per_label", "significance")
        ],
    params:
        confidence=config["evaluation"]["confidence"],
    log:
        f"{C}/logs/figures.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/figures.py"
