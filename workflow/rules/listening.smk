# Listening stage (on request only): `snakemake listening` turns the ratings that
# `soundsim listen` recorded in results/<collection>/listening/ratings.sqlite into
# tables/listening.csv (+ .json: Spearman correlations) and figures/listening.png/.pdf.
# `rule all` never asks for it: without a ratings database the default DAG is unchanged.


localrules:
    listening,
    listening_summary,


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


rule listening:
    """Target: the listening summary of the configured collection (needs its ratings database)."""
    input:
        OUT.table("listening"),
        OUT.figure("listening"),
