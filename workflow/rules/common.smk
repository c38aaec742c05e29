# Config validation and the helpers that turn the config into target lists.

import re
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from soundsim import manifest as manifest_lib
from soundsim import models as registry
from soundsim import provenance
from soundsim.config import load_yaml, validate_config
from soundsim.errors import ConfigError
from soundsim.fingerprint import weights_fingerprint

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

# Enabled models, checked against the registry; weights resolved (and checked) now.
MODELS = {n: m for n, m in config["models"].items() if m.get("enabled", True)}
try:
    registry.check_models_config(MODELS)
    WEIGHTS = registry.resolve_all_weights(MODELS, config.get("weights_dir"))
except ConfigError as e:
    raise WorkflowError(str(e))
SHARDS = config["extraction"]["shards"]
REUSE = config["extraction"]["reuse"]
GRID = config["grid"]
# Code versions (soundsim.provenance) and weights fingerprints are parameters of the rules; a change
# re-runs exactly the jobs it can affect.
MODEL_CODE = {n: provenance.model_code_version(n) for n in MODELS}
WEIGHTS_FP = {nv: weights_fingerprint(p) for nv, p in WEIGHTS.items()}
EVALUATION_CODE = provenance.evaluation_code_version()
N_CLIPS = manifest_lib.expected_clips(COLLECTION, f"{C}/manifest.csv")
SEARCHES = GRID["searches"]
METRIC_FILES = ["per_label.csv", "per_family.csv", "summary.json", "rankings.h5", "per_query.parquet"]


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in sorted(set(values), key=str)) or "(?!)"


wildcard_constraints:
    collection=re.escape(COLLECTION["name"]),
    model=_alternatives(MODELS),
    variation=_alternatives(v for _, v in WEIGHTS),
    shard=r"\d+",
    shards=r"\d+",
    aggregation="mean|median|max|none",
    pca=r"\d+|none",
    search="mips|mcss|nns",


def model_info(name):
    return registry.info(name)


def model_env(name):
    """The environment a model runs in (envs/<env>.yaml, .venvs/<env>)."""
    return registry.info(name).env


def model_weights(name, variation):
    """Local weights path of a model variation ('' when the model ships them)."""
    return WEIGHTS[(name, variation)] or ""


def shard_files(collection, name, variation):
    return [
        f"{RESULTS}/{collection}/embeddings/{name}/{variation}.shard-{k}-of-{SHARDS}.h5"
        for k in range(SHARDS)
    ]


def embedding_files():
    """The merged embeddings of every enabled model/variation."""
    return [f"{C}/embeddings/{n}/{v}.h5" for n, v in WEIGHTS]


_WARNED = set()


def _warn_once(msg):
    if msg not in _WARNED:
        _WARNED.add(msg)
        logger.warning(msg)


def processing_settings(name):
    """(aggregation, PCA) pairs a model is evaluated under: clip-level models use
    'none' only, frame-level models the configured aggregations other than 'none';
    PCA sizes above the model's dimension (PCA cannot add dimensions) or above the
    number of clips (the manifest's, else the collection's size) are left out."""
    inf = registry.info(name)
    aggs = (
        ["none"]
        if inf.level == "clip"
        else [a for a in GRID["aggregations"] if a != "none"]
    )
    pcas = []
    for p in GRID["pca"]:
        if p == "none":
            pcas.append("none")
        elif not all(int(p) <= inf.dim_of(v) for v in inf.variations):
            _warn_once(f"{name}: PCA {p} > its {inf.dim_of(inf.default_variation)} dims: left out")
        elif N_CLIPS is not None and int(p) > N_CLIPS:
            _warn_once(f"{name}: PCA {p} > the collection's {N_CLIPS} clips: left out")
        else:
            pcas.append(str(p))
    return [(a, p) for a in aggs for p in pcas]


def setting_outputs():
    """Output patterns of one evaluate job: every search's metric files."""
    base = f"{RESULTS}/{{collection}}/metrics/{{model}}/{{variation}}"
    return [
        f"{base}/agg-{{aggregation}}_pca-{{pca}}_search-{s}/{f}"
        for s in SEARCHES
        for f in METRIC_FILES
    ]


def summary_files():
    """summary.json of every configured setting of every enabled model/variation."""
    return [
        f"{C}/metrics/{n}/{v}/agg-{a}_pca-{p}_search-{s}/summary.json"
        for n, v in WEIGHTS
        for a, p in processing_settings(n)
        for s in SEARCHES
    ]


def per_query_files():
    """per_query.parquet of every configured setting (what the confidence intervals resample)."""
    return [f[: -len("summary.json")] + "per_query.parquet" for f in summary_files()]


def paper_table2():
    """The paper's Table II (CSV) to print beside soundsim's numbers, or '' (FSD50K only)."""
    path = config["evaluation"].get("paper_table2")
    if not path or COLLECTION["kind"] != "fsd50k":
        return ""
    if not Path(path).is_file():
        logger.warning(f"evaluation.paper_table2: {path} not found; tables without the paper's values")
        return ""
    return path


def table_files():
    return [
        f"{C}/tables/{t}"
        for t in ("all_settings.csv", "best_settings.csv", "models.csv", "models.md", "families.csv",
                  "pairwise.csv")
    ]


def figure_files():
    names = [f"grid/{n}__{v}" for n, v in WEIGHTS] + ["families", "models", "per_label", "significance"]
    return [f"{C}/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]


def all_targets():
    """Everything `rule all` asks for (grows as stages are added)."""
    return [
        f"{C}/manifest.csv",
        f"{C}/bad_audio.csv",
        f"{C}/labels.csv",
        f"{C}/families.json",
        *embedding_files(),
        *summary_files(),
        *(table_files() + figure_files() if WEIGHTS else []),
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
