# Config validation and the helpers that turn the config into target lists.

from pathlib import Path

from snakemake.utils import validate

from soundsim.config import load_yaml, validate_config
from soundsim.errors import ConfigError

# 1. soundsim's check: every problem, each naming the key and the allowed values.
try:
    validate_config(
        config, load_yaml(workflow.source_path("../schemas/config.schema.yaml"))
    )
except ConfigError as e:
    raise WorkflowError(str(e))
# 2. Snakemake's own validation (fills defaults the same way).
validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
COLLECTION = config["collection"]
C = f"{RESULTS}/{COLLECTION['name']}"


wildcard_constraints:
    collection=COLLECTION["name"],


def all_targets():
    """Everything `rule all` asks for (grows as stages are added)."""
    return [
        f"{C}/manifest.csv",
        f"{C}/bad_audio.csv",
        f"{C}/labels.csv",
        f"{C}/families.json",
    ]


def collection_inputs(wildcards):
    """The files the manifest depends on, by collection kind."""
    kind = COLLECTION["kind"]
    if kind == "demo":
        src = f"{RESULTS}/{wildcards.collection}/source"
        return {
            "audio": f"{src}/audio",
            "ground_truth": f"{src}/ground_truth.csv",
            "vocabulary": f"{src}/vocabulary.csv",
            "families": f"{src}/families.json",
        }
    keys = ["ground_truth", "vocabulary", "ontology", "families"]
    return {k: COLLECTION[k] for k in keys if COLLECTION.get(k)}
