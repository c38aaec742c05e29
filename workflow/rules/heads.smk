# Learned similarity heads (heads:, soundsim.heads): trained on the training collection's clip
# vectors of a frozen base model variation (rule train_head), then applied to the evaluated
# collection's vectors of the same variation (rule apply_head). A head's output is an ordinary
# embeddings file of model head-<base>..., which every later rule treats like any model's.


# a head's embeddings come from its base's and its checkpoint, not from extraction shards
ruleorder: apply_head > merge_embeddings


rule train_head:
    """Train one head on the training collection (refused when it shares clips with the
    evaluated collection); write its checkpoint, head.json and training.csv."""
    input:
        embeddings=head_train_embeddings,
        manifest=TRAIN_OUT.manifest if TRAIN_OUT else [],
        families=TRAIN_OUT.families if TRAIN_OUT else [],
        evaluated_manifest=LAYOUT.manifest,
    output:
        checkpoint=LAYOUT.head_checkpoint("{head}"),
        meta=LAYOUT.head_meta("{head}"),
        training=LAYOUT.head_training_log("{head}"),
    log:
        LAYOUT.train_head_log("{head}"),
    benchmark:
        LAYOUT.train_head_benchmark("{head}")
    wildcard_constraints:
        head=_alternatives(HEADS),
    conda:
        "../../envs/soundsim.yaml"
    threads: 1
    params:
        # the entry (base, variation, aggregation, hyperparameters, class_disjoint) and the
        # code: a change re-trains this head only
        section=head_section,
        code_version=lambda w: MODEL_CODE[w.head],
    script:
        "../scripts/train_head.py"


rule apply_head:
    """Map the evaluated collection's base vectors through a trained head: the head model's embeddings."""
    input:
        embeddings=head_base_embeddings,
        checkpoint=LAYOUT.head_checkpoint("{model}"),
        meta=LAYOUT.head_meta("{model}"),
    output:
        LAYOUT.embeddings("{model}", "{variation}"),
    log:
        LAYOUT.apply_head_log("{model}", "{variation}"),
    benchmark:
        LAYOUT.apply_head_benchmark("{model}", "{variation}")
    wildcard_constraints:
        model=_alternatives(HEADS),
    conda:
        "../../envs/soundsim.yaml"
    params:
        section=head_section,
        code_version=lambda w: MODEL_CODE[w.model],
    script:
        "../scripts/apply_head.py"


localrules:
    heads_report,


rule heads_report:
    """Each head against its frozen base (all, seen and unseen labels): tables/heads.csv, the
    comparison figure, and the heads' training curves."""
    input:
        models=OUT.table("models"),
        # the per-query values of every configured setting (only the heads' and their bases' best are read)
        per_query=metrics_files("per_query"),
        meta=[OUT.head_meta(h) for h in HEADS],
        training=[OUT.head_training_log(h) for h in HEADS],
    output:
        table=report(
            OUT.table("heads"),
            caption=caption("heads_table"),
            category="Tables",
            subcategory="Per model",
            labels={"table": "learned heads vs their bases (tables/heads.csv)"},
        ),
        comparison=report(
            OUT.figure("heads"),
            caption=caption("heads"),
            category="Figures",
            subcategory="Learned similarity heads",
            labels={"figure": "head vs frozen base"},
        ),
        comparison_pdf=OUT.figure("heads", "pdf"),
        training=report(
            OUT.figure("heads_training"),
            caption=caption("heads_training"),
            category="Figures",
            subcategory="Learned similarity heads",
            labels={"figure": "training curves"},
        ),
        training_pdf=OUT.figure("heads_training", "pdf"),
    log:
        OUT.log("heads_report"),
    conda:
        "../../envs/soundsim.yaml"
    params:
        n_resamples=config["evaluation"]["n_resamples"],
        confidence=config["evaluation"]["confidence"],
        seed=config["evaluation"]["seed"],
        collection=OUT.collection,
    script:
        "../scripts/heads_report.py"
