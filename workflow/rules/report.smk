# Report stage: tables (the paper's Tables I and II, all settings, families) and figures
# (the paper's Fig. 1 per model/variation, Fig. 2, model comparison, per-label MAP@15).
# Short local jobs: they read small CSV/JSON files.


localrules:
    tables,
    figures,


rule tables:
    """All settings, best settings (Table I), models (Table II), families, labels."""
    input:
        summaries=summary_files(),
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
    params:
        paper_table2=paper_table2(),
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
        pdfs=[f"{C}/figures/{f}.pdf" for f in ("families", "models", "per_label")],
    log:
        f"{C}/logs/figures.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/figures.py"
