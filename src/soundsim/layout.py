"""The results tree of a collection: every path in it, the setting name, and the one reader of ``summary.json``.

Everything soundsim writes for a collection lives under ``<results>/<collection>/``
(:class:`Layout`; ``results`` and ``collection.name`` come from the config)::

    source/audio/, source/{ground_truth.csv, vocabulary.csv, families.json}   demo collection (rule demo_data)
    manifest.csv, bad_audio.csv, labels.csv, families.json                     rule manifest
    relevance.csv (graded gains between labels)                                 rule relevance
    cache/fingerprints.json                                                    the manifest's fingerprint cache
    embeddings/<model>/<variation>.h5                                          rule merge_embeddings
    embeddings/<model>/<variation>.shard-<k>-of-<n>.h5 (k from 1)              rule extract_shard (temporary)
    processed/<model>/<variation>/<processing>.h5                              rule evaluate
    metrics/<model>/<variation>/<setting>/                                     rule evaluate, one folder per setting:
        per_label.csv, per_family.csv, summary.json, rankings.h5, per_query.parquet
    metrics/<model>/<variation>/indexes.csv                                    rule evaluate_indexes (grid.indexes)
    tables/{all_settings,best_settings,models,families,labels,pairwise}.csv, tables/models.md   rule tables
    tables/indexes.csv, tables/indexes.html                                    rule index_table (grid.indexes)
    tables/heads.csv                                                           learned similarity heads (heads:)
    tables/listening.csv, tables/listening.json                                rule listening_summary
    tables/listening_metrics.csv                                               rule listening_metrics
    tables/<page>.html (each table of TABLE_PAGES as a page of the report)      rule table_pages
    figures/grid/<model>__<variation>.{png,pdf}                                rule figures (Fig. 1, bars)
    figures/grid/<model>__<variation>_heatmap.{png,pdf}                        rule figures (Fig. 1, heatmap)
    figures/maps/<model>__<variation>.{png,pdf}                                rule embedding_maps (t-SNE map)
    figures/{families,models,per_label,significance,precision_at_k,ranks}.{png,pdf}  rule figures
    figures/indexes.{png,pdf}                                                  rule index_figure (grid.indexes)
    figures/{heads,heads_training}.{png,pdf}                                   learned similarity heads (heads:)
    figures/listening.{png,pdf}                                                rule listening_summary
    figures/listening_metrics.{png,pdf}                                        rule listening_metrics
    listening/ratings.sqlite                                                   soundsim listen
    service/index/ (CURRENT, gen-<n>/: soundsim.service.store)                 rule build_index (service.enabled)
    heads/<head>/{head.pt, head.json, training.csv}                            rule train_head (heads:)
    embeddings/<head>/<variation>.h5                                           rule apply_head (a head is a model)
    logs/<rule>.log, logs/extract/<model>/<variation>.{shard-<k>-of-<n>,merge}.log,
    logs/evaluate/<model>/<variation>/<processing>.log, logs/evaluate_indexes/<model>/<variation>.log,
    logs/train_head/<head>.log, logs/apply_head/<head>/<variation>.log
    benchmarks/{extract,merge,evaluate,evaluate_indexes}/...tsv (as the logs), benchmarks/service/index.tsv,
    benchmarks/<rule>.tsv (e.g. embedding_maps)                                Snakemake's benchmark: files
    report.html                                                                snakemake --report

Names of processing and evaluation settings (:func:`processing_name`,
:func:`setting_name`, parsed back by :func:`parse_setting`)::

    <processing> = agg-<aggregation>_pca-<pca>             e.g. agg-mean_pca-100
    <setting>    = <processing>_search-<search>            e.g. agg-mean_pca-100_search-mcss

(``pca`` is a number of components or ``none``; each part is letters and digits.)
A *system* is one setting of one model variation, named ``<model>/<variation>/<setting>``
(:attr:`SettingFiles.id`).

Contract: every path of the tree is built here (the workflow's rule files,
:mod:`soundsim.evaluate`, :mod:`soundsim.tables`, :mod:`soundsim.figures`,
:mod:`soundsim.listen` use these functions); methods only build paths, they
never touch the disk, except :func:`find_settings` (what is on disk, for
interactive tools such as the listening page; workflow rules read their
declared inputs instead) and :func:`read_summary`. Wildcard patterns come out
of the same methods when given Snakemake wildcards as values, e.g.
``Layout("results", "{collection}").embeddings("{model}", "{variation}")``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soundsim.errors import SoundsimError
from soundsim.measures import is_metric

#: the setting-name pattern, as help texts show it
SETTING_PATTERN = "agg-<a>_pca-<p>_search-<s>"
PROCESSING_PATTERN = "agg-<a>_pca-<p>"
_PART = r"[A-Za-z0-9]+"
_SETTING_RE = re.compile(rf"^agg-(?P<aggregation>{_PART})_pca-(?P<pca>{_PART})_search-(?P<search>{_PART})$")
_PROCESSING_RE = re.compile(rf"^agg-(?P<aggregation>{_PART})_pca-(?P<pca>{_PART})$")

#: the files of one setting's folder (rule evaluate), by kind
METRIC_FILES: dict[str, str] = {
    "per_label": "per_label.csv",
    "per_family": "per_family.csv",
    "summary": "summary.json",
    "rankings": "rankings.h5",
    "per_query": "per_query.parquet",
}
#: the tables of ``tables/``, by key (rule tables; ``heads``: the learned similarity heads' table,
#: its own rule; ``indexes``: rule index_table; ``listening``, ``listening_json``: rule listening_summary;
#: ``listening_metrics``: rule listening_metrics)
TABLES: dict[str, str] = {
    "all_settings": "all_settings.csv",
    "best_settings": "best_settings.csv",
    "models": "models.csv",
    "models_md": "models.md",
    "families": "families.csv",
    "labels": "labels.csv",
    "pairwise": "pairwise.csv",
    "heads": "heads.csv",
    "indexes": "indexes.csv",
    "listening": "listening.csv",
    "listening_json": "listening.json",
    "listening_metrics": "listening_metrics.csv",
}
#: the tables the ``tables`` rule writes (keys of :data:`TABLES`)
SUMMARY_TABLES = ("all_settings", "best_settings", "models", "models_md", "families", "labels", "pairwise")
#: the summary figures of ``figures/`` (each ``.png`` and ``.pdf``), besides Fig. 1 per model variation
#: (:func:`grid_figure_name`, :func:`grid_heatmap_name`)
FIGURES = ("families", "models", "per_label", "significance", "precision_at_k", "ranks")
#: the figure of approximate search (rule index_figure, when ``grid.indexes`` is not empty)
INDEX_FIGURE = "indexes"
#: the figures of the learned similarity heads (when ``heads:`` is configured): each head against its
#: base model (:func:`soundsim.figures.heads_comparison`) and the training curves
#: (:func:`soundsim.figures.head_training`)
HEAD_FIGURES = ("heads", "heads_training")
#: the listening test's figure of which metric agrees with listeners (rule listening_metrics;
#: :mod:`soundsim.listen.agreement`), beside ``listening`` (rule listening_summary)
LISTENING_METRICS_FIGURE = "listening_metrics"
#: the per-variation table of approximate search (rule evaluate_indexes), in ``metrics/<model>/<variation>/``
INDEX_EVAL_FILE = "indexes.csv"
#: the HTML pages of ``tables/`` (rule table_pages; what the report shows of each table): the tables
#: of the tables rule (keys of :data:`TABLES`; ``models`` shows models.md's table) and
#: ``collection_labels`` (the collection's ``labels.csv``)
TABLE_PAGES = ("models", "best_settings", "pairwise", "all_settings", "families", "labels", "collection_labels")
FIGURE_FORMATS = ("png", "pdf")
#: the demo collection's generated sources under ``source/`` (besides the ``audio/`` folder)
DEMO_SOURCES: dict[str, str] = {
    "ground_truth": "ground_truth.csv",
    "vocabulary": "vocabulary.csv",
    "families": "families.json",
}


class LayoutError(SoundsimError):
    """A name or path does not follow the results layout (the message names it)."""


class SummaryError(LayoutError):
    """A ``summary.json`` is missing, unreadable or malformed (the message names the file)."""


# --------------------------------------------------------------------------- setting names


def _pca_text(pca: int | str | None) -> str:
    return "none" if pca is None else str(pca)


def processing_name(aggregation: str, pca: int | str | None) -> str:
    """``agg-<aggregation>_pca-<pca>`` (``pca`` None -> ``none``): the name of one
    processing setting (a ``processed/`` file, an evaluate job's log)."""
    return f"agg-{aggregation}_pca-{_pca_text(pca)}"


def setting_name(aggregation: str, pca: int | str | None, search: str) -> str:
    """``agg-<aggregation>_pca-<pca>_search-<search>`` (``pca`` None -> ``none``):
    the name of one evaluated setting, its folder under ``metrics/<model>/<variation>/``."""
    return f"{processing_name(aggregation, pca)}_search-{search}"


@dataclass(frozen=True)
class Setting:
    """One evaluated setting, the parts of its name (all strings; ``pca`` '100' or 'none')."""

    aggregation: str
    pca: str
    search: str

    @property
    def name(self) -> str:
        """``agg-<a>_pca-<p>_search-<s>``."""
        return setting_name(self.aggregation, self.pca, self.search)

    @property
    def processing(self) -> str:
        """``agg-<a>_pca-<p>``."""
        return processing_name(self.aggregation, self.pca)


def parse_setting(name: str) -> Setting:
    """``agg-mean_pca-100_search-mcss`` -> ``Setting('mean', '100', 'mcss')``;
    :class:`LayoutError` when ``name`` is not a setting name."""
    m = _SETTING_RE.match(str(name))
    if not m:
        raise LayoutError(f"{name!r} is not a setting name ({SETTING_PATTERN})")
    return Setting(m["aggregation"], m["pca"], m["search"])


def parse_processing(name: str) -> tuple[str, str]:
    """``agg-mean_pca-100`` -> ``('mean', '100')`` (aggregation, pca as text);
    :class:`LayoutError` when ``name`` is not a processing name."""
    m = _PROCESSING_RE.match(str(name))
    if not m:
        raise LayoutError(f"{name!r} is not a processing name ({PROCESSING_PATTERN})")
    return m["aggregation"], m["pca"]


def is_setting_name(name: str) -> bool:
    """Whether ``name`` is a setting name (:func:`parse_setting` would accept it)."""
    return bool(_SETTING_RE.match(str(name)))


# --------------------------------------------------------------------------- one setting's files


@dataclass(frozen=True)
class SettingFiles:
    """The folder ``metrics/<model>/<variation>/<setting>/`` of one evaluated
    setting and its files (:data:`METRIC_FILES`), as paths (not checked)."""

    model: str
    variation: str
    setting: str
    dir: Path

    @property
    def id(self) -> str:
        """The system id ``<model>/<variation>/<setting>``."""
        return f"{self.model}/{self.variation}/{self.setting}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.variation, self.setting)

    def file(self, kind: str) -> Path:
        """The file of ``kind`` (a key of :data:`METRIC_FILES`)."""
        if kind not in METRIC_FILES:
            raise LayoutError(f"{kind!r} is not a metrics file kind; known kinds: {', '.join(METRIC_FILES)}")
        return self.dir / METRIC_FILES[kind]

    @property
    def summary(self) -> Path:
        return self.file("summary")

    @property
    def per_label(self) -> Path:
        return self.file("per_label")

    @property
    def per_family(self) -> Path:
        return self.file("per_family")

    @property
    def per_query(self) -> Path:
        return self.file("per_query")

    @property
    def rankings(self) -> Path:
        return self.file("rankings")

    @property
    def collection(self) -> str | None:
        """The collection name when the folder sits in a results tree
        (``<results>/<collection>/metrics/<model>/<variation>/<setting>``), else None."""
        parents = self.dir.parents
        return parents[3].name if len(parents) > 3 and parents[2].name == "metrics" else None


def setting_files(metrics_dir: str | Path, model: str, variation: str, setting: str) -> SettingFiles:
    """The files of ``<metrics_dir>/<model>/<variation>/<setting>/``."""
    return SettingFiles(str(model), str(variation), str(setting), Path(metrics_dir) / model / variation / setting)


def setting_files_of(path: str | Path) -> SettingFiles:
    """The setting whose folder holds ``path`` (one of :data:`METRIC_FILES`):
    model, variation and setting are read from the last folders of the path.
    :class:`LayoutError` when the path is not a metrics file of a setting folder."""
    p = Path(path)
    if p.name not in METRIC_FILES.values() or len(p.parts) < 4 or not is_setting_name(p.parent.name):
        raise LayoutError(
            f"{p}: not a metrics file of a setting folder "
            f"(expected <metrics>/<model>/<variation>/{SETTING_PATTERN}/<{'|'.join(METRIC_FILES.values())}>)"
        )
    return SettingFiles(p.parent.parent.parent.name, p.parent.parent.name, p.parent.name, p.parent)


def parse_system_id(sid: str) -> tuple[str, str, str]:
    """``<model>/<variation>/<setting>`` -> its three parts; :class:`LayoutError` when malformed."""
    parts = str(sid).split("/")
    if len(parts) != 3 or not all(parts) or not is_setting_name(parts[2]):
        raise LayoutError(f"system {sid!r} is not of the form <model>/<variation>/{SETTING_PATTERN}")
    return parts[0], parts[1], parts[2]


def settings_from_inputs(**files: Iterable[str | Path]) -> list[SettingFiles]:
    """The settings named by a rule's declared metrics inputs, e.g.
    ``settings_from_inputs(summary=[...], per_query=[...])`` (keyword: a kind of
    :data:`METRIC_FILES`; value: that kind's files). Every setting must come with
    every given kind (so that whoever reads these settings' files of those kinds
    reads declared inputs only); :class:`LayoutError` names the first file
    that is not of its kind or a setting that lacks one. Settings in the order
    of the first kind's files, each once."""
    if not files:
        raise LayoutError("settings_from_inputs: no metrics files given")
    seen: dict[tuple[str, str, str], SettingFiles] = {}
    have: dict[tuple[str, str, str], set[str]] = {}
    for kind, paths in files.items():
        if kind not in METRIC_FILES:
            raise LayoutError(f"{kind!r} is not a metrics file kind; known kinds: {', '.join(METRIC_FILES)}")
        for path in paths:
            s = setting_files_of(path)
            if Path(path).name != METRIC_FILES[kind]:
                raise LayoutError(f"{path}: given as {kind} but is not a {METRIC_FILES[kind]}")
            if s.key in seen and seen[s.key].dir != s.dir:
                raise LayoutError(f"{path}: setting {s.id} given twice, in {seen[s.key].dir} and {s.dir}")
            seen.setdefault(s.key, s)
            have.setdefault(s.key, set()).add(kind)
    for key, kinds in have.items():
        missing = [k for k in files if k not in kinds]
        if missing:
            raise LayoutError(f"{seen[key].dir}: its {', '.join(METRIC_FILES[k] for k in missing)} not given")
    return list(seen.values())


def find_settings(metrics_dir: str | Path, kind: str = "summary") -> list[SettingFiles]:
    """Every setting folder under ``metrics_dir`` that holds a file of ``kind``
    (default ``summary.json``), sorted by path; [] when the folder does not exist.
    For interactive tools that show whatever was evaluated (the listening page)
    and for tests; workflow rules read their declared inputs instead."""
    d = Path(metrics_dir)
    if not d.is_dir():
        return []
    name = METRIC_FILES[kind] if kind in METRIC_FILES else kind
    return [setting_files_of(p) for p in sorted(d.glob(f"*/*/*/{name}")) if is_setting_name(p.parent.name)]


# --------------------------------------------------------------------------- the tree


def _safe(name: Any) -> str:
    """A file-name-safe version of a model or variation name."""
    return re.sub(r"[^0-9A-Za-z._+-]+", "_", str(name))


@dataclass(frozen=True)
class Layout:
    """The results tree ``<results>/<collection>/`` of one collection (see the module docstring).

    Every method returns a :class:`~pathlib.Path` below :attr:`dir`; values may be
    Snakemake wildcards (``"{model}"``) to get a rule's pattern."""

    results: Path
    collection: str

    def __init__(self, results: str | Path, collection: str) -> None:
        object.__setattr__(self, "results", Path(results))
        object.__setattr__(self, "collection", str(collection))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Layout:
        """The layout of a (validated) config: ``results`` and ``collection.name``."""
        return cls(config.get("results", "results"), config["collection"]["name"])

    @classmethod
    def at(cls, collection_dir: str | Path) -> Layout:
        """The layout whose :attr:`dir` is ``collection_dir`` (``<results>/<collection>``)."""
        d = Path(collection_dir)
        return cls(d.parent, d.name)

    @property
    def dir(self) -> Path:
        """``<results>/<collection>``."""
        return self.results / self.collection

    # collection and manifest
    @property
    def source_dir(self) -> Path:
        """``source/``: the demo collection's generated sources."""
        return self.dir / "source"

    @property
    def source_audio(self) -> Path:
        return self.source_dir / "audio"

    def source(self, key: str) -> Path:
        """``source/<file>`` of the demo collection (key of :data:`DEMO_SOURCES`)."""
        return self.source_dir / DEMO_SOURCES[key]

    @property
    def manifest(self) -> Path:
        return self.dir / "manifest.csv"

    @property
    def bad_audio(self) -> Path:
        return self.dir / "bad_audio.csv"

    @property
    def labels(self) -> Path:
        return self.dir / "labels.csv"

    @property
    def families(self) -> Path:
        return self.dir / "families.json"

    @property
    def relevance(self) -> Path:
        """``relevance.csv``: graded gains between labels (:mod:`soundsim.relevance`)."""
        return self.dir / "relevance.csv"

    @property
    def cache_dir(self) -> Path:
        return self.dir / "cache"

    @property
    def fingerprint_cache(self) -> Path:
        return self.cache_dir / "fingerprints.json"

    # embeddings and processing
    def embeddings(self, model: str, variation: str) -> Path:
        """``embeddings/<model>/<variation>.h5``."""
        return self.dir / "embeddings" / model / f"{variation}.h5"

    def shard(self, model: str, variation: str, item: str) -> Path:
        """``embeddings/<model>/<variation>.shard-<item>.h5``; ``item`` is Snakemake's
        ``{scatteritem}``, ``<k>-of-<n>`` with ``k`` from 1 (:func:`shard_item`)."""
        return self.dir / "embeddings" / model / shard_file_name(variation, item)

    def shards(self, model: str, variation: str, n: int) -> list[Path]:
        """The ``n`` shard files of one model variation, in manifest order."""
        return [self.shard(model, variation, shard_item(k, n)) for k in range(n)]

    def processed(self, model: str, variation: str, aggregation: str, pca: int | str | None) -> Path:
        """``processed/<model>/<variation>/agg-<a>_pca-<p>.h5``."""
        return processed_file(self.processed_dir(model, variation), aggregation, pca)

    def processed_dir(self, model: str, variation: str) -> Path:
        return self.dir / "processed" / model / variation

    # metrics
    @property
    def metrics_dir(self) -> Path:
        return self.dir / "metrics"

    def metrics_variation_dir(self, model: str, variation: str) -> Path:
        """``metrics/<model>/<variation>``: where the settings of one model variation go."""
        return self.metrics_dir / model / variation

    def index_eval(self, model: str, variation: str) -> Path:
        """``metrics/<model>/<variation>/indexes.csv``: the variation's best setting under
        each vector index of ``grid.indexes`` (:mod:`soundsim.index_eval`)."""
        return self.metrics_variation_dir(model, variation) / INDEX_EVAL_FILE

    def setting_files(self, model: str, variation: str, setting: str) -> SettingFiles:
        """The files of ``metrics/<model>/<variation>/<setting>/``."""
        return setting_files(self.metrics_dir, model, variation, setting)

    def system_files(self, sid: str) -> SettingFiles:
        """The files of the system ``<model>/<variation>/<setting>``."""
        return self.setting_files(*parse_system_id(sid))

    def find_settings(self, kind: str = "summary") -> list[SettingFiles]:
        """:func:`find_settings` of this tree's ``metrics/``."""
        return find_settings(self.metrics_dir, kind)

    # tables and figures
    @property
    def tables_dir(self) -> Path:
        return self.dir / "tables"

    def table(self, key: str) -> Path:
        """``tables/<file>`` (key of :data:`TABLES`, e.g. ``best_settings``)."""
        if key not in TABLES:
            raise LayoutError(f"{key!r} is not a table; known tables: {', '.join(TABLES)}")
        return self.tables_dir / TABLES[key]

    @property
    def figures_dir(self) -> Path:
        return self.dir / "figures"

    def figure(self, name: str, fmt: str = "png") -> Path:
        """``figures/<name>.<fmt>`` (``name`` e.g. ``families`` or :meth:`grid_figure_name`)."""
        return self.figures_dir / f"{name}.{fmt}"

    def figure_files(self, name: str) -> list[Path]:
        """``figures/<name>.png`` and ``.pdf``."""
        return [self.figure(name, fmt) for fmt in FIGURE_FORMATS]

    def table_page(self, name: str) -> Path:
        """``tables/<name>.html``: the report's page of a table (name of :data:`TABLE_PAGES`)."""
        if name not in TABLE_PAGES:
            raise LayoutError(f"{name!r} is not a table page; known pages: {', '.join(TABLE_PAGES)}")
        return self.tables_dir / f"{name}.html"

    @property
    def index_table_page(self) -> Path:
        """``tables/indexes.html``: the report's page of ``tables/indexes.csv`` (rule index_table)."""
        return self.tables_dir / "indexes.html"

    def table_page_source(self, name: str) -> Path:
        """The CSV that page ``name`` shows: ``labels.csv`` for ``collection_labels``,
        else :meth:`table` (``models``: ``tables/models.csv``)."""
        return self.labels if name == "collection_labels" else self.table(self.table_page(name).stem)

    # listening, logs, report
    @property
    def listening_db(self) -> Path:
        return self.dir / "listening" / "ratings.sqlite"

    def log(self, rule: str) -> Path:
        """``logs/<rule>.log``."""
        return self.dir / "logs" / f"{rule}.log"

    def benchmark(self, rule: str) -> Path:
        """``benchmarks/<rule>.tsv``: the benchmark of a rule with one job (beside :meth:`log`)."""
        return self.dir / "benchmarks" / f"{rule}.tsv"

    def extract_log(self, model: str, variation: str, item: str) -> Path:
        """``logs/extract/<model>/<variation>.shard-<item>.log`` (``item``: ``<k>-of-<n>``)."""
        return self.dir / "logs" / "extract" / model / f"{variation}.shard-{item}.log"

    def merge_log(self, model: str, variation: str) -> Path:
        return self.dir / "logs" / "extract" / model / f"{variation}.merge.log"

    def import_log(self, model: str, variation: str) -> Path:
        """``logs/extract/<model>/<variation>.import.log``: a precomputed model's import."""
        return self.dir / "logs" / "extract" / model / f"{variation}.import.log"

    def evaluate_indexes_log(self, model: str, variation: str) -> Path:
        """``logs/evaluate_indexes/<model>/<variation>.log``."""
        return self.dir / "logs" / "evaluate_indexes" / model / f"{variation}.log"

    def evaluate_indexes_benchmark(self, model: str, variation: str) -> Path:
        """``benchmarks/evaluate_indexes/<model>/<variation>.tsv``."""
        return self.dir / "benchmarks" / "evaluate_indexes" / model / f"{variation}.tsv"

    def evaluate_log(self, model: str, variation: str, aggregation: str, pca: int | str | None) -> Path:
        return self.dir / "logs" / "evaluate" / model / variation / f"{processing_name(aggregation, pca)}.log"

    # benchmarks (Snakemake's benchmark: files, TSV: wall time s, max_rss MB, ...), beside the logs
    def extract_benchmark(self, model: str, variation: str, item: str) -> Path:
        """``benchmarks/extract/<model>/<variation>.shard-<item>.tsv``."""
        return self.dir / "benchmarks" / "extract" / model / f"{variation}.shard-{item}.tsv"

    def merge_benchmark(self, model: str, variation: str) -> Path:
        """``benchmarks/merge/<model>/<variation>.tsv``."""
        return self.dir / "benchmarks" / "merge" / model / f"{variation}.tsv"

    def import_benchmark(self, model: str, variation: str) -> Path:
        """``benchmarks/import/<model>/<variation>.tsv``."""
        return self.dir / "benchmarks" / "import" / model / f"{variation}.tsv"

    def evaluate_benchmark(self, model: str, variation: str, aggregation: str, pca: int | str | None) -> Path:
        """``benchmarks/evaluate/<model>/<variation>/<processing>.tsv``."""
        return self.dir / "benchmarks" / "evaluate" / model / variation / f"{processing_name(aggregation, pca)}.tsv"

    @property
    def report(self) -> Path:
        return self.dir / "report.html"

    # the similarity service (soundsim.service)
    @property
    def service_index(self) -> Path:
        """``service/index/``: the index directory rule ``build_index`` writes (soundsim.service.store)."""
        return self.dir / "service" / "index"

    @property
    def service_index_benchmark(self) -> Path:
        """``benchmarks/service/index.tsv``."""
        return self.dir / "benchmarks" / "service" / "index.tsv"

    # learned similarity heads (soundsim.heads): trained here, on the train collection's vectors
    def head_dir(self, head: str) -> Path:
        """``heads/<head>/``: one head's checkpoint, metadata and training log (rule train_head)."""
        return self.dir / "heads" / head

    def head_checkpoint(self, head: str) -> Path:
        """``heads/<head>/head.pt``: the trained head (:meth:`soundsim.head.TrainedHead.save`)."""
        return self.head_dir(head) / "head.pt"

    def head_meta(self, head: str) -> Path:
        """``heads/<head>/head.json``: what the head was trained on and how (:func:`soundsim.heads.head_meta`)."""
        return self.head_dir(head) / "head.json"

    def head_training_log(self, head: str) -> Path:
        """``heads/<head>/training.csv``: one row per epoch (train_loss, val_map@15, seconds, best)."""
        return self.head_dir(head) / "training.csv"

    def train_head_log(self, head: str) -> Path:
        """``logs/train_head/<head>.log``."""
        return self.dir / "logs" / "train_head" / f"{head}.log"

    def train_head_benchmark(self, head: str) -> Path:
        """``benchmarks/train_head/<head>.tsv``."""
        return self.dir / "benchmarks" / "train_head" / f"{head}.tsv"

    def apply_head_log(self, head: str, variation: str) -> Path:
        """``logs/apply_head/<head>/<variation>.log``."""
        return self.dir / "logs" / "apply_head" / head / f"{variation}.log"

    def apply_head_benchmark(self, head: str, variation: str) -> Path:
        """``benchmarks/apply_head/<head>/<variation>.tsv``."""
        return self.dir / "benchmarks" / "apply_head" / head / f"{variation}.tsv"


def processed_file(processed_dir: str | Path, aggregation: str, pca: int | str | None) -> Path:
    """``<processed_dir>/agg-<a>_pca-<p>.h5``: one processing setting's matrix."""
    return Path(processed_dir) / f"{processing_name(aggregation, pca)}.h5"


def shard_file_name(variation: str, item: str) -> str:
    """``<variation>.shard-<item>.h5``: the file of one shard (``item``: :func:`shard_item`)."""
    return f"{variation}.shard-{item}.h5"


def shard_item(k: int, n: int) -> str:
    """The name of shard ``k`` (0-based) of ``n``: ``<k+1>-of-<n>``, as Snakemake's
    ``scattergather`` names its ``{scatteritem}`` (1-based)."""
    if not 0 <= k < n:
        raise LayoutError(f"shard {k} is not in 0..{n - 1}")
    return f"{k + 1}-of-{n}"


def parse_shard_item(item: str) -> tuple[int, int]:
    """``"<k>-of-<n>"`` (1-based ``k``) -> ``(k - 1, n)``: the 0-based shard index and the count."""
    m = re.fullmatch(r"(\d+)-of-(\d+)", str(item))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise LayoutError(f"{item!r} is not a shard name <k>-of-<n> with 1 <= k <= n")
    return int(m.group(1)) - 1, int(m.group(2))


def grid_figure_name(model: str, variation: str) -> str:
    """``grid/<model>__<variation>`` (names made file-safe): Fig. 1 of one model variation."""
    return f"grid/{_safe(model)}__{_safe(variation)}"


def grid_heatmap_name(model: str, variation: str) -> str:
    """``grid/<model>__<variation>_heatmap``: Fig. 1 of one model variation as a heatmap."""
    return f"{grid_figure_name(model, variation)}_heatmap"


def map_figure_name(model: str, variation: str) -> str:
    """``maps/<model>__<variation>`` (names made file-safe): the t-SNE map of one model
    variation's processed clip vectors (:mod:`soundsim.maps`)."""
    return f"maps/{_safe(model)}__{_safe(variation)}"


def processed_key(path: str | Path) -> tuple[str, str, str]:
    """``.../processed/<model>/<variation>/agg-<a>_pca-<p>.h5`` -> ``(model, variation,
    processing)``, read from the last folders of the path (:meth:`Layout.processed`);
    :class:`LayoutError` when the path is not a processed file."""
    p = Path(path)
    if p.suffix != ".h5" or len(p.parts) < 3 or not _PROCESSING_RE.match(p.stem):
        raise LayoutError(f"{p}: not a processed file (expected <processed>/<model>/<variation>/"
                          f"{PROCESSING_PATTERN}.h5)")
    return p.parent.parent.name, p.parent.name, p.stem


def table_file(tables_dir: str | Path, key: str) -> Path:
    """``<tables_dir>/<file>`` of table ``key`` (:data:`TABLES`), for writers given a folder."""
    if key not in TABLES:
        raise LayoutError(f"{key!r} is not a table; known tables: {', '.join(TABLES)}")
    return Path(tables_dir) / TABLES[key]


# --------------------------------------------------------------------------- summary.json


@dataclass(frozen=True)
class Summary:
    """A validated ``summary.json`` (written by :mod:`soundsim.evaluate`).

    ``macro``, ``family_mean``, ``micro``: metric name (``map@<N>``, ``mr1``, the panel's:
    :mod:`soundsim.measures`) -> value
    (NaN where the file has null; keys other than metrics left out; ``macro`` has at
    least one); ``counts`` (has ``n_clips``), ``embeddings`` ({} when absent):
    the file's objects as they are; ``data``: the whole file."""

    path: Path
    setting: Setting
    macro: dict[str, float]
    family_mean: dict[str, float]
    micro: dict[str, float]
    counts: dict[str, Any]
    embeddings: dict[str, Any]
    data: dict[str, Any]


def _bad(path: Path, why: str) -> SummaryError:
    return SummaryError(f"{path}: malformed summary.json ({why})")


def _metrics(path: Path, s: Mapping[str, Any], key: str, required: bool) -> dict[str, float]:
    block = s.get(key)
    if block is None and not required:
        return {}
    if not isinstance(block, dict):
        raise _bad(path, f"no '{key}' object" if block is None else f"'{key}' is not an object")
    out: dict[str, float] = {}
    for k, v in block.items():
        if not is_metric(str(k)):
            continue
        if v is None:
            out[k] = math.nan
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _bad(path, f"'{key}.{k}': expected a number, got {v!r}")
        else:
            out[k] = float(v)
    if required and not out:
        raise _bad(path, f"'{key}' has no map@N / mr1 values")
    return out


def read_summary(path: str | Path) -> Summary:
    """Read and check the ``summary.json`` at ``path``: a JSON object with a
    ``setting`` object (``aggregation``, ``pca``, ``search``) whose name equals
    the folder it sits in, a ``macro`` object with at least one ``map@<N>`` /
    ``mr1`` number (null = NaN), a ``counts`` object with ``n_clips``, and
    optional ``family_mean`` / ``micro`` objects of numbers. Any problem raises
    :class:`SummaryError` naming the file (a missing file too)."""
    p = Path(path)
    try:
        s = json.loads(p.read_text())
    except FileNotFoundError:
        raise SummaryError(f"{p}: summary.json not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(p, str(e)) from None
    if not isinstance(s, dict):
        raise _bad(p, f"expected a JSON object, got {type(s).__name__}")
    for key, sub in (("setting", ("aggregation", "pca", "search")), ("macro", ()), ("counts", ("n_clips",))):
        if not isinstance(s.get(key), dict):
            raise _bad(p, f"no '{key}' object")
        missing = [k for k in sub if k not in s[key]]
        if missing:
            raise _bad(p, f"'{key}' lacks {', '.join(missing)}")
    st = s["setting"]
    setting = Setting(str(st["aggregation"]), str(st["pca"]), str(st["search"]))
    if not is_setting_name(setting.name):
        raise _bad(p, f"its setting {setting.name!r} is not a setting name ({SETTING_PATTERN})")
    if p.parent.name != setting.name:
        raise _bad(p, f"its setting {setting.name} does not match its folder {p.parent.name}")
    emb = s.get("embeddings")
    return Summary(
        path=p,
        setting=setting,
        macro=_metrics(p, s, "macro", required=True),
        family_mean=_metrics(p, s, "family_mean", required=False),
        micro=_metrics(p, s, "micro", required=False),
        counts=dict(s["counts"]),
        embeddings=dict(emb) if isinstance(emb, dict) else {},
        data=s,
    )


def missing_files(paths: Sequence[str | Path]) -> list[Path]:
    """The paths of ``paths`` that are not files (in order)."""
    return [Path(p) for p in paths if not Path(p).is_file()]
