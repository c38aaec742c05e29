# Report stage: tables (the paper's Tables I and II, all settings, families, pairwise tests),
# their HTML pages for the report, and figures (the paper's Fig. 1 per model/variation, as bars
# and as heatmaps, Fig. 2, model comparison with confidence intervals, significance matrix,
# precision@k curves, per-label MAP@15). Short local jobs: they read small CSV/JSON/Parquet/HDF5
# files; the bootstrap resamples the per-query values (no search re-runs).


localrules:
    tables,
    table_pages,
    figures,


rule tables:
    """All settings, best settings (Table I), models (Table II), families, labels, pairwise tests."""
    input:
        summaries=summary_files(),
        per_query=per_query_files(),
    output:
        # in the report as HTML pages (rule table_pages): Snakemake shows CSV only as a download
        all_settings=f"{C}/tables/all_settings.csv",
        best_settings=f"{C}/tables/best_settings.csv",
        models=f"{C}/tables/models.csv",
        models_md=f"{C}/tables/models.md",
        families=f"{C}/tables/families.csv",
        labels=f"{C}/tables/labels.csv",
        pairwise=f"{C}/tables/pairwise.csv",
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


# name -> (caption, subcategory, label) of each table page (category Tables)
TABLE_PAGES = {
    "models": ("models", "Per model", "models (Table II; models.md)"),
    "best_settings": ("best_settings", "Per model", "best settings (Table I)"),
    "pairwise": ("pairwise", "Per model", "paired tests"),
    "all_settings": ("all_settings", "Per setting", "all settings (Fig. 1 data)"),
    "families": ("families_table", "Per family and label", "families (Fig. 2 data)"),
    "labels": ("labels_table", "Per family and label", "labels (tables/labels.csv)"),
    "collection_labels": ("labels", "Collection", "labels of the collection"),
}
# what the report needs beyond rule all's tables and figures (asked for by rule all)
REPORT_TARGETS = [f"{C}/tables/{n}.html" for n in TABLE_PAGES] if WEIGHTS else []


rule table_pages:
    """Every table as an HTML page for the report (Snakemake renders HTML inside the report)."""
    input:
        collection_labels=f"{C}/labels.csv",
        models=f"{C}/tables/models.csv",
        best_settings=f"{C}/tables/best_settings.csv",
        pairwise=f"{C}/tables/pairwise.csv",
        all_settings=f"{C}/tables/all_settings.csv",
        families=f"{C}/tables/families.csv",
        labels=f"{C}/tables/labels.csv",
    output:
        **{
            n: report(
                f"{C}/tables/{n}.html",
                caption=f"../report/{caption}.rst",
                category="Tables",
                subcategory=sub,
                labels={"table": label},
            )
            for n, (caption, sub, label) in TABLE_PAGES.items()
        },
    params:
        collection=COLLECTION["name"],
        confidence=config["evaluation"]["confidence"],
    log:
        f"{C}/logs/table_pages.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/table_pages.py"


rule figures:
    """Figures, PNG and PDF."""
    input:
        all_settings=f"{C}/tables/all_settings.csv",
        models=f"{C}/tables/models.csv",
        families=f"{C}/tables/families.csv",
        labels=f"{C}/tables/labels.csv",
        pairwise=f"{C}/tables/pairwise.csv",
        # precision@k: the top-K lists of each model's best and fixed setting (chosen from models.csv)
        rankings=[f[: -len("summary.json")] + "rankings.h5" for f in summary_files()],
        manifest=f"{C}/manifest.csv",
    output:
        grid=[
            report(
                f"{C}/figures/grid/{n}__{v}.png",
                caption="../report/grid.rst",
                category="Figures",
                subcategory="Fig. 1: MAP@15 per setting, per model",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        grid_pdf=[f"{C}/figures/grid/{n}__{v}.pdf" for n, v in WEIGHTS],
        grid_heatmap=[
            report(
                f"{C}/figures/grid/{n}__{v}_heatmap.png",
                caption="../report/grid_heatmap.rst",
                category="Figures",
                subcategory="Fig. 1 as heatmaps (one colour range)",
                labels={"model": n, "variation": v},
            )
            for n, v in WEIGHTS
        ],
        grid_heatmap_pdf=[f"{C}/figures/grid/{n}__{v}_heatmap.pdf" for n, v in WEIGHTS],
        models=report(
            f"{C}/figures/models.png",
            caption="../report/models_figure.rst",
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "MAP and MR1 per model"},
        ),
        significance=report(
            f"{C}/figures/significance.png",
            caption="../report/significance.rst",
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "significance matrix"},
        ),
        precision_at_k=report(
            f"{C}/figures/precision_at_k.png",
            caption="../report/precision_at_k.rst",
            category="Figures",
            subcategory="Models compared",
            labels={"figure": "precision@k curves"},
        ),
        families=report(
            f"{C}/figures/families.png",
            caption="../report/families.rst",
            category="Figures",
            subcategory="Families and labels",
            labels={"figure": "families (Fig. 2)"},
        ),
        per_label=report(
            f"{C}/figures/per_label.png",
            caption="../report/per_label.rst",
            category="Figures",
            subcategory="Families and labels",
            labels={"figure": "per label"},
        ),
        pdfs=[
            f"{C}/figures/{f}.pdf"
            for f in (
                "families",
                "models",
                "per_label",
                "significance",
                "precision_at_k",
            )
        ],
    params:
        confidence=config["evaluation"]["confidence"],
    log:
        f"{C}/logs/figures.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/figures.py"
