# Listening stage (on request only): `snakemake listening` turns the ratings that
# `soundsim listen` recorded in results/<collection>/listening/ratings.sqlite into
# tables/listening.csv (+ .json: Spearman correlations) and figures/listening.png/.pdf.
# `rule all` never asks for it: without a ratings database the default DAG is unchanged.

from soundsim.listen.db import rated_systems


localrules:
    listening,
    listening_summary,


rule listening_summary:
    """Mean rating with 95 % CI per system next to its MAP@15; Spearman rank correlation."""
    input:
        ratings=f"{RESULTS}/{{collection}}/listening/ratings.sqlite",
        # MAP@15 of every rated system: its summary.json
        summaries=lambda w: [
            f"{RESULTS}/{w.collection}/metrics/{s}/summary.json"
            for s in rated_systems(
                f"{RESULTS}/{w.collection}/listening/ratings.sqlite"
            )
        ],
    output:
        table=report(
            f"{RESULTS}/{{collection}}/tables/listening.csv",
            caption="../report/listening_table.rst",
            category="Listening test",
            subcategory="Ratings per system (table)",
        ),
        correlations=f"{RESULTS}/{{collection}}/tables/listening.json",
        figure=report(
            f"{RESULTS}/{{collection}}/figures/listening.png",
            caption="../report/listening.rst",
            category="Listening test",
            subcategory="Ratings against MAP@15",
        ),
        pdf=f"{RESULTS}/{{collection}}/figures/listening.pdf",
    params:
        metrics_dir=lambda w: f"{RESULTS}/{w.collection}/metrics",
    log:
        f"{RESULTS}/{{collection}}/logs/listening.log",
    conda:
        "../../envs/soundsim.yaml"
    script:
        "../scripts/listening.py"


rule listening:
    """Target: the listening summary of the configured collection (needs its ratings database)."""
    input:
        f"{C}/tables/listening.csv",
        f"{C}/figures/listening.png",
