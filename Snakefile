# soundsim workflow: collection -> manifest -> (extract -> process -> search + metrics -> tables, figures, maps)
# Run:  snakemake --cores all            (profiles/default is picked up automatically)
#       snakemake --profile profiles/slurm   (cluster)
# What to run is in config.yaml; see README.md.

from snakemake.utils import min_version

from soundsim.data import report_file

min_version("9.0")


configfile: "config.yaml"


# the landing page and the captions are package data: src/soundsim/data/report/
report: str(report_file("workflow.rst"))


include: "workflow/rules/common.smk"
include: "workflow/rules/collection.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/precomputed.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/listening.smk"
include: "workflow/rules/service.smk"
include: "workflow/rules/heads.smk"


rule all:
    default_target: True
    input:
        all_targets(),
