# Similarity service (issue 15): the index of one evaluated system, by default the best row
# (MAP@15) of tables/best_settings.csv, for `soundsim query` and `soundsim serve`. Built by
# `rule all` when service.enabled is true, else on request: `snakemake --cores 1 build_index`.


rule build_index:
    """The similarity index (soundsim.service.index.build_index) of service.system."""
    input:
        # the system is chosen from the tables (then its summary.json and embeddings are read):
        # the tables, every configured setting's summary and every enabled model's embeddings
        manifest=OUT.manifest,
        best_settings=OUT.table("best_settings"),
        all_settings=OUT.table("all_settings"),
        summaries=metrics_files("summary"),
        embeddings=embedding_files(),
    output:
        index=directory(OUT.service_index),
    log:
        OUT.log("build_index"),
    benchmark:
        OUT.service_index_benchmark
    conda:
        "../../envs/soundsim.yaml"
    params:
        system=config["service"]["system"] or "",
        type=config["service"]["type"],
        index_params=config["service"]["params"],
        code_version=EVALUATION_CODE,
    script:
        "../scripts/build_index.py"
