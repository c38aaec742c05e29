# Listening stage (on request only): `snakemake listening` turns the ratings that
# `soundsim listen` recorded in results/<collection>/listening/ratings.sqlite into
# tables/listening.csv (+ .json: Spearman correlations) and figures/listening.png/.pdf, and
# which metric agrees with listeners: tables/listening_metrics.csv, figures/listening_metrics.png/.pdf.
# `rule all` never asks for it: without a ratings database the default DAG is unchanged.


localrules:
    listening,
    listening_summary,
    listening_metrics,


rule listening_summary:
    """Mean rating with 95 % CI per system next to its MAP@15; Spearman rank correlation."""
    input:
        ratings=LAYOUT.listening_db,
        # MAP@15 of every rated system: its summary.json
        summaries=rated_summaries,
    output:
        table=report(
            LAYOUT.table("listening"),
            caption=caption("listening_table"),
            category="Listening test",
            subcategory="Ratings per system (table)",
        ),
        correlations=LAYOUT.table("listening_json"),
        figure=report(
            LAYOUT.figure("listening"),
            caption=caption("listening"),
            category="Listening test",
            subcategory="Ratings against MAP@15",
        ),
        pdf=LAYOUT.figure("listening", "pdf"),
    log:
        LAYOUT.log("listening"),
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/listening.py"


rule listening_metrics:
    """Which metric agrees with listeners: Spearman rho (bootstrap interval over judgements) between
    ratings and every metric of the rated systems' per_query.parquet, per system and per query.
    """
    input:
        ratings=LAYOUT.listening_db,
        # the metrics of every rated system: its per_query.parquet
        per_query=rated_per_query,
    output:
        table=report(
            LAYOUT.table("listening_metrics"),
            caption=caption("listening_metrics_table"),
            category="Listening test",
            subcategory="Which metric agrees with listeners (table)",
        ),
        figure=report(
            LAYOUT.figure(LISTENING_METRICS_FIGURE),
            caption=caption("listening_metrics"),
            category="Listening test",
            subcategory="Which metric agrees with listeners",
        ),
        pdf=LAYOUT.figure(LISTENING_METRICS_FIGURE, "pdf"),
    log:
        LAYOUT.log("listening_metrics"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        n_resamples=config["evaluation"]["n_resamples"],
        confidence=config["evaluation"]["confidence"],
        seed=config["evaluation"]["seed"],
    script:
        "../scripts/listening_metrics.py"


rule listening:
    """Target: the listening summary of the configured collection and which metric agrees with
    listeners (needs its ratings database)."""
    input:
        OUT.table("listening"),
        OUT.figure("listening"),
        OUT.table("listening_metrics"),
        OUT.figure(LISTENING_METRICS_FIGURE),
