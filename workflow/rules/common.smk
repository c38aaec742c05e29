# Config validation and the helpers that turn the config into target lists.

import re

from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

from soundsim import envs
from soundsim import heads as heads_lib
from soundsim import index_eval

from soundsim import manifest as manifest_lib
from soundsim import models as registry
from soundsim import plan
from soundsim import precomputed
from soundsim import provenance
from soundsim import relevance
from soundsim.config import find_schema, load_yaml, validate_config
from soundsim.data import report_file
from soundsim.datasets import collection_dataset
from soundsim.errors import ConfigError
from soundsim.fingerprint import weights_fingerprint
from soundsim.layout import (
    Layout,
    SUMMARY_TABLES,
    FIGURES,
    INDEX_FIGURE,
    HEAD_FIGURES,
    LISTENING_METRICS_FIGURE,
    TABLE_PAGES,
    grid_figure_name,
    grid_heatmap_name,
    map_figure_name,
    parse_processing,
    parse_setting,
    parse_shard_item,
    setting_name,
)
from soundsim.listen.db import rated_systems


def config_error(e):
    """Stop the workflow at start with soundsim's message (naming the key and the allowed
    values) and exit status 2, as `soundsim check-config` does for the same config."""
    logger.error(f"soundsim: {e}")
    raise SystemExit(2)


# The config is validated once, by soundsim (the schema, defaults filled in, every problem
# naming the key and the allowed values); then the models: section against the registry.
try:
    validate_config(config, load_yaml(find_schema()))
    heads_lib.check_config(config)
except ConfigError as e:
    config_error(e)


def caption(name):
    """The report caption ``name`` (e.g. ``grid``): package data, src/soundsim/data/report/<name>.rst,
    the same file an installed soundsim has."""
    return str(report_file(name))


# Shards of the manifest per (model, variation): extraction.shards, or --set-scatter shard=N.
scattergather:
    shard=config["extraction"]["shards"],


RESULTS = config["results"]
COLLECTION = config["collection"]
# The collection the heads (heads:) are trained on: its own results folder, made by the same
# rules (demo_data, manifest, extract_shard, merge_embeddings) as the evaluated collection's.
TRAIN_COLLECTION = config.get("train_collection")
COLLECTIONS = {c["name"]: c for c in (COLLECTION, TRAIN_COLLECTION) if c is not None}
# Every path of the results tree comes from soundsim.layout: LAYOUT gives the rules'
# patterns (wildcard {collection}), OUT the configured collection's own files, TRAIN_OUT
# the training collection's.
LAYOUT = Layout(RESULTS, "{collection}")
OUT = Layout.from_config(config)
TRAIN_OUT = Layout(RESULTS, TRAIN_COLLECTION["name"]) if TRAIN_COLLECTION else None

# Enabled models, checked against the registry; weights resolved (and checked) now. The
# learned similarity heads (heads:) are models too (kind head, soundsim.heads).
MODELS = plan.enabled_models(config)
HEADS = plan.head_models(config)
try:
    registry.check_models_config(MODELS)
    WEIGHTS = registry.resolve_all_weights(MODELS, config.get("weights_dir"))
except ConfigError as e:
    config_error(e)
# The collection's dataset (FSD50K, collection.dataset, the synthetic demo): the tables flag
# models whose declared training data includes it.
try:
    DATASET = collection_dataset(config)
except ConfigError as e:
    config_error(e)
REUSE = config["extraction"]["reuse"]
# `snakemake --sdm conda`: each model's rule runs in its envs/<env>.yaml, else in .venvs/<env>
USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
GRID = config["grid"]
# Code versions (soundsim.provenance) and weights fingerprints are parameters of the rules; a change
# re-runs exactly the jobs it can affect.
MODEL_CODE = {n: provenance.model_code_version(n, cfg=c) for n, c in MODELS.items()}
WEIGHTS_FP = {nv: weights_fingerprint(p) for nv, p in WEIGHTS.items()}
EVALUATION_CODE = provenance.evaluation_code_version()
REPORT_CODE = provenance.report_code_version()
N_CLIPS = plan.expected_clips(config)
SEARCHES = GRID["searches"]
# Approximate search in the evaluation (grid.indexes; soundsim.index_eval): the index types,
# exact first ([] = none), checked now as soundsim.ann checks them; the code they depend on.
try:
    INDEXES = index_eval.check_index_config(GRID, N_CLIPS)
except ConfigError as e:
    config_error(e)
INDEX_CODE = {
    "evaluation": EVALUATION_CODE,
    **{m: provenance.module_digest(m) for m in ("soundsim.ann", "soundsim.index_eval")},
}


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in sorted(set(values), key=str)) or "(?!)"


wildcard_constraints:
    collection=_alternatives(COLLECTIONS),
    model=_alternatives(MODELS),
    variation=_alternatives(v for _, v in WEIGHTS),
    aggregation="mean|median|max|none",
    pca=r"\d+|none",
    search="mips|mcss|nns",


def model_info(name):
    """The registry's ModelInfo of an enabled model (built from its section for a kind)."""
    return registry.info(name, MODELS[name])


def model_env(name):
    """The environment a model runs in (envs/<env>.yaml, .venvs/<env>)."""
    return model_info(name).env


def model_weights(name, variation):
    """Local weights path of a model variation ('' when the model ships them)."""
    return WEIGHTS[(name, variation)] or ""


def model_python(name):
    """The interpreter of the model's environment (soundsim.envs.model_python)."""
    return envs.model_python(model_env(name), USE_CONDA)


def extract_flags(w):
    """soundsim extract's optional flags for a job: weights, the embeddings to reuse, options."""
    reuse = (
        Layout(RESULTS, w.collection).embeddings(w.model, w.variation)
        if REUSE
        else None
    )
    return envs.extract_flags(
        model_weights(w.model, w.variation),
        str(reuse) if reuse else None,
        MODELS[w.model].get("options") or {},
        MODELS[w.model],
    )


def embedding_files():
    """The merged embeddings of every enabled model/variation."""
    return [OUT.embeddings(n, v) for n, v in WEIGHTS]


_WARNED = set()


def _warn_once(msg):
    if msg not in _WARNED:
        _WARNED.add(msg)
        logger.warning(msg)


def processing_settings(name):
    """(aggregation, PCA) pairs a model is evaluated under (soundsim.plan.processing_settings):
    PCA sizes above the model's dimension or the number of clips are left out, with a warning.
    """
    return plan.processing_settings(name, GRID, N_CLIPS, _warn_once, MODELS[name])


def setting_outputs():
    """Output patterns of one evaluate job: every search's metric files."""
    return [
        LAYOUT.setting_files(
            "{model}", "{variation}", setting_name("{aggregation}", "{pca}", s)
        ).file(kind)
        for s in SEARCHES
        for kind in ("per_label", "per_family", "summary", "rankings", "per_query")
    ]


def configured_settings():
    """The files of every configured setting of every enabled model/variation
    (soundsim.plan.configured_settings: the same settings `soundsim tables` reads)."""
    return plan.configured_settings(config, N_CLIPS, _warn_once)


def metrics_files(kind):
    """The file of ``kind`` (summary, per_label, per_family, per_query, rankings) of every configured setting."""
    return [s.file(kind) for s in configured_settings()]


def summary_files():
    """summary.json of every configured setting of every enabled model/variation."""
    return metrics_files("summary")


def paper_table2():
    """The paper's Table II (CSV) to print beside soundsim's numbers, or '' (FSD50K only)."""
    return plan.paper_table2(config, lambda msg: logger.warning(msg)) or ""


def table_files():
    return [OUT.table(t) for t in SUMMARY_TABLES]


def table_page_files():
    """The tables' HTML pages (written by table_pages), what the report shows of each table."""
    return [OUT.table_page(n) for n in TABLE_PAGES]


def figure_files():
    names = [
        name
        for n, v in WEIGHTS
        for name in (grid_figure_name(n, v), grid_heatmap_name(n, v))
    ]
    return [f for n in names + list(FIGURES) for f in OUT.figure_files(n)]


def processed_files():
    """The processed matrix (rule evaluate) of every configured processing setting of every
    enabled model/variation, each once: what rule embedding_maps chooses from."""
    keys = dict.fromkeys(
        (s.model, s.variation, parse_setting(s.setting).processing)
        for s in configured_settings()
    )
    return [OUT.processed(m, v, *parse_processing(p)) for m, v, p in keys]


def map_files():
    """figures/maps/<model>__<variation>.{png,pdf} of every enabled model/variation."""
    return [f for n, v in WEIGHTS for f in OUT.figure_files(map_figure_name(n, v))]


def variation_summaries(w):
    """summary.json of every configured setting of one model variation (wildcards model,
    variation): what rule evaluate_indexes chooses the best setting from."""
    return [
        s.summary
        for s in configured_settings()
        if (s.model, s.variation) == (w.model, w.variation)
    ]


def index_eval_files():
    """metrics/<model>/<variation>/indexes.csv of every enabled model/variation ([] without grid.indexes)."""
    return [OUT.index_eval(n, v) for n, v in WEIGHTS] if INDEXES else []


def index_targets():
    """tables/indexes.csv, its HTML page and figures/indexes.{png,pdf} ([] without grid.indexes)."""
    if not (INDEXES and WEIGHTS):
        return []
    return [
        OUT.table("indexes"),
        OUT.index_table_page,
        *OUT.figure_files(INDEX_FIGURE),
    ]


def all_targets():
    """Everything `rule all` asks for (grows as stages are added)."""
    return [
        OUT.manifest,
        OUT.bad_audio,
        OUT.labels,
        OUT.families,
        *embedding_files(),
        *summary_files(),
        *(
            table_files() + table_page_files() + figure_files() + map_files()
            if WEIGHTS
            else []
        ),
        *index_targets(),
        *([OUT.service_index] if config["service"]["enabled"] and WEIGHTS else []),
        *head_files(),
    ]


def rated_summaries(wildcards):
    """summary.json of every system rated in the collection's ratings database (its MAP@15)."""
    lay = Layout(RESULTS, wildcards.collection)
    return [lay.system_files(s).summary for s in rated_systems(lay.listening_db)]


def rated_per_query(wildcards):
    """per_query.parquet of every system rated in the collection's ratings database (its metrics)."""
    lay = Layout(RESULTS, wildcards.collection)
    return [lay.system_files(s).per_query for s in rated_systems(lay.listening_db)]


def collection_config(w):
    """The config section of the collection of wildcard ``collection`` (evaluated or training)."""
    return COLLECTIONS[w.collection]


def relevance_kind(w):
    """'ontology' or 'families': where the collection's graded gains come from (soundsim.relevance)."""
    return relevance.resolve_kind(
        config["evaluation"]["relevance"], collection_config(w)
    )


def relevance_inputs(w):
    """The relevance rule's inputs: labels.csv, and the ontology (+ vocabulary) when used."""
    col = collection_config(w)
    out = {"labels": Layout(RESULTS, w.collection).labels}
    if relevance_kind(w) == "ontology":
        out["ontology"] = col["ontology"]
        if col.get("vocabulary"):
            out["vocabulary"] = col["vocabulary"]
    return out


def evaluate_relevance(w):
    """relevance.csv when the panel is computed (evaluation.panel), else nothing."""
    return (
        Layout(RESULTS, w.collection).relevance if config["evaluation"]["panel"] else []
    )


def collection_inputs(wildcards):
    """The files the manifest depends on, by collection kind."""
    col = collection_config(wildcards)
    if col["kind"] == "demo":
        lay = Layout(RESULTS, wildcards.collection)
        return {
            "audio": lay.source_audio,
            "ground_truth": lay.source("ground_truth"),
            "vocabulary": lay.source("vocabulary"),
            "families": lay.source("families"),
        }
    keys = ["ground_truth", "vocabulary", "ontology", "families"]
    return {k: col[k] for k in keys if col.get(k)}


# Audio state (sizes, mtimes) of each collection's audio files: a parameter of its manifest.
AUDIO_STATE = {n: manifest_lib.audio_state(c) for n, c in COLLECTIONS.items()}


def head_section(w):
    """The model section of head ``w.head`` (or ``w.model``; soundsim.heads.head_sections): a
    parameter of its rules, so that a changed entry re-trains (and re-applies) that head only.
    """
    return HEADS[getattr(w, "head", None) or w.model]


def head_train_embeddings(w):
    """The training collection's embeddings of head ``w.head``'s base variation."""
    h = HEADS[w.head]
    return TRAIN_OUT.embeddings(h["base"], h["variation"])


def head_base_embeddings(w):
    """The evaluated collection's embeddings of head ``w.model``'s base variation."""
    h = HEADS[w.model]
    return Layout(RESULTS, w.collection).embeddings(h["base"], w.variation)


def head_files():
    """Every head's checkpoint, head.json and training.csv, tables/heads.csv and the heads'
    figures ([] without heads)."""
    if not HEADS:
        return []
    return [
        *(
            f
            for h in HEADS
            for f in (
                OUT.head_checkpoint(h),
                OUT.head_meta(h),
                OUT.head_training_log(h),
            )
        ),
        OUT.table("heads"),
        *(f for name in HEAD_FIGURES for f in OUT.figure_files(name)),
    ]


# Precomputed models (kind precomputed, imported by import_embeddings): their sources and the sources'
# content fingerprints (a parameter of the import: a changed vector re-imports that model).
PRECOMPUTED = {n: c for n, c in MODELS.items() if registry.kind_of(c) == "precomputed"}
PRECOMPUTED_SOURCE = {
    n: precomputed.source_of_config(c) for n, c in PRECOMPUTED.items()
}
PRECOMPUTED_FP = {
    n: precomputed.source_fingerprint(s) for n, s in PRECOMPUTED_SOURCE.items()
}


def precomputed_inputs(w):
    """The import's inputs: the manifest, its bad-audio list, the source (and its fnames list)."""
    lay = Layout(RESULTS, w.collection)
    src = PRECOMPUTED_SOURCE[w.model]
    files = {"manifest": lay.manifest, "bad_audio": lay.bad_audio, "source": src.path}
    return files | ({"fnames": src.fnames} if src.fnames is not None else {})
