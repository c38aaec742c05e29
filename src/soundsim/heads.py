"""Learned similarity heads in the workflow: the ``heads:`` config as models, the training
collection, the held-out labels of a class-disjoint head, and a head's files.

A head (:mod:`soundsim.head`: the network, its loss and training) is trained on the
``train_collection:``'s clip vectors of a frozen *base* model variation and applied to the
evaluated ``collection:``'s vectors of the same variation. What it writes there is an
ordinary embeddings file of a model named after the head (``head-<base>...``, level
``clip``), so the grid, tables, intervals, paired tests, figures, listening page and
service treat it like any model. In the config::

    train_collection: {name: demo-train, kind: demo, seed: 1, fname_prefix: train}
    heads:
      head-aisfx: {base: aisfx, aggregation: mean}            # HeadSpec's defaults
      head-aisfx-disjoint: {base: aisfx, class_disjoint: true, epochs: 60, seed: 1}

Each enabled head becomes a model section of kind ``head`` (:func:`head_sections`,
read by :func:`soundsim.plan.enabled_models`; the kind module
:mod:`soundsim.models._head` checks it and builds its ModelInfo).

**Input of a head** (:func:`head_inputs`): the base's frame rows aggregated as
``aggregation`` says (:func:`soundsim.process.aggregate`), then, for bases whose
processing order is ``l2-pca`` (every deep model), L2-normalised, as the evaluation
normalises them before PCA. (Freesound's min-max scaling is fitted per collection, so
it is not applied; the head standardises its inputs with the training split's mean and
standard deviation anyway.)

**Training clips**: every clip of the training collection's base embeddings that has a
label in the manifest; for a ``class_disjoint`` head, a seeded share
(``heldout_fraction``) of the labels is held out (:func:`heldout_labels`, per family)
and every clip carrying one of them is left out of training, so the head never sees a
held-out class. The candidates are the clips' primary labels (each clip's rarest label,
:func:`soundsim.head.primary_labels`: the most specific one), so a parent label such as
Music over Piano and Organ is never held out and stays in training with its other
children (a vocabulary with parents cannot be split more cleanly); ``tables/heads.csv`` then reports the evaluated collection's queries of
seen and of unseen labels apart.

**No shared clips** (:func:`check_disjoint`): the training and evaluated collections
may share no fname and no audio content (the manifests' ``fingerprint``, xxh3-128 of the
file's bytes); otherwise training stops with an :class:`OverlapError` listing the clips.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundsim.errors import ConfigError, SoundsimError
from soundsim.fileutil import atomic_path

log = logging.getLogger(__name__)

#: every head's name starts with this (then the base's name)
HEAD_PREFIX = "head-"
#: keys of a ``heads.<name>`` entry that are not the network's hyperparameters (HeadSpec's fields)
WORKFLOW_KEYS = ("enabled", "base", "variation", "aggregation", "class_disjoint", "heldout_fraction")
#: the model kind a head's section gets (soundsim.models.KINDS)
KIND = "head"
#: the validation metric the training log and early stopping use
VAL_METRIC = "val_map@15"


class HeadsError(SoundsimError):
    """A head cannot be trained or applied (the message names the file or key)."""


class OverlapError(HeadsError):
    """The training and evaluated collections share clips (the message lists them)."""


# --------------------------------------------------------------------------- config


def spec_keys() -> tuple[str, ...]:
    """The hyperparameter keys of a ``heads.<name>`` entry: :class:`soundsim.head.HeadSpec`'s fields."""
    from soundsim.head import HeadSpec

    return tuple(f.name for f in fields(HeadSpec))


def enabled_heads(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Head name -> its ``heads:`` entry, for every entry not disabled, in config order."""
    return {n: h for n, h in (config.get("heads") or {}).items() if (h or {}).get("enabled", True)}


def head_spec_config(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters given in a ``heads:`` entry (the keys that are not :data:`WORKFLOW_KEYS`)."""
    return {k: v for k, v in entry.items() if k not in WORKFLOW_KEYS}


def _base_variation(base: str, base_cfg: Mapping[str, Any] | None) -> str:
    from soundsim import models as registry

    if base_cfg is None:
        return ""
    if base_cfg.get("variations"):
        return str(base_cfg["variations"][0])
    try:
        return registry.info(base, base_cfg).default_variation
    except ConfigError:
        return ""


def _default_aggregation(base: str, base_cfg: Mapping[str, Any] | None) -> str:
    from soundsim import models as registry

    try:
        return "none" if base_cfg is not None and registry.info(base, base_cfg).level == "clip" else "mean"
    except ConfigError:
        return "mean"


def head_sections(config: Mapping[str, Any], models_cfg: Mapping[str, Mapping[str, Any]]
                  ) -> dict[str, dict[str, Any]]:
    """Head name -> its model section (kind :data:`KIND`) for every enabled head:
    ``base``, ``variation`` (default: the base's first configured variation),
    ``aggregation`` (default: ``mean``, ``none`` for a clip-level base), ``spec`` (the
    given hyperparameters), ``class_disjoint``, ``heldout_fraction``, ``variations``
    (``[variation]``: the head model's one variation is its base's), ``base_config``
    (the base's section of ``models_cfg``, None when it is not an enabled model),
    ``train_collection`` (its name) and ``train_dataset``
    (:func:`soundsim.datasets.collection_dataset` of it, None when undeclared)."""
    from soundsim.datasets import collection_dataset

    train = config.get("train_collection")
    try:
        train_dataset = collection_dataset({"collection": train}) if train else None
    except ConfigError:
        train_dataset = None
    out = {}
    for name, entry in enabled_heads(config).items():
        base = str(entry["base"])
        base_cfg = models_cfg.get(base)
        variation = str(entry.get("variation") or _base_variation(base, base_cfg))
        out[name] = {
            "kind": KIND,
            "base": base,
            "variation": variation,
            "aggregation": entry.get("aggregation") or _default_aggregation(base, base_cfg),
            "spec": head_spec_config(entry),
            "class_disjoint": bool(entry.get("class_disjoint", False)),
            "heldout_fraction": float(entry.get("heldout_fraction", 0.5)),
            "variations": [variation],
            "base_config": dict(base_cfg) if base_cfg is not None else None,
            "train_collection": (train or {}).get("name"),
            "train_dataset": train_dataset,
        }
    return out


def _same_source(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Why two collection sections name the same clips, or None."""
    if a["kind"] == "demo" and b["kind"] == "demo":
        if a.get("fname_prefix", "demo") == b.get("fname_prefix", "demo"):
            return (f"both are demo collections with fname_prefix {a.get('fname_prefix', 'demo')!r}, so they share "
                    "fnames; give train_collection its own fname_prefix (and seed)")
        return None
    ga, gb = a.get("ground_truth"), b.get("ground_truth")
    if ga and gb and Path(ga).resolve() == Path(gb).resolve():
        return f"both read the ground truth {ga} (the same clips)"
    return None


def collection_problems(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``train_collection:`` beside ``heads:`` (one line each): heads
    without a training collection, a head named like a model of ``models:``, a training
    collection with the evaluated one's name,
    or one that names the same clips (two demo collections with one ``fname_prefix``,
    one ground-truth file). That they share no clip is checked on the manifests
    (:func:`check_disjoint`) when a head is trained."""
    heads = enabled_heads(config)
    train = config.get("train_collection")
    if not heads:
        return []
    if not train:
        return [f"heads: {', '.join(heads)} need a train_collection: (the labelled clips they are trained on)"]
    problems = [f"heads.{n}: {n!r} is also a model of models:; a head needs a name of its own"
                for n in heads if n in (config.get("models") or {})]
    if train["name"] == config["collection"]["name"]:
        problems.append(f"train_collection.name: {train['name']!r} is the evaluated collection's name; "
                        "the training collection needs its own results folder")
    same = _same_source(train, config["collection"])
    if same:
        problems.append(f"train_collection: the same clips as collection: ({same})")
    return problems


def check_config(config: Mapping[str, Any]) -> None:
    """:func:`collection_problems` as one ConfigError (the heads' own entries are checked
    with the models, :func:`soundsim.models.check_models_config`)."""
    problems = collection_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------- labels


def heldout_labels(labels: Sequence[str], families: Mapping[str, Sequence[str]] | None, fraction: float,
                   seed: int) -> list[str]:
    """The labels a class-disjoint head does not train on, sorted.

    Labels are grouped by family (a label in several families counts in the first one, in
    sorted family order; labels in none form one group); in each group, sorted by name, a
    permutation drawn from ``numpy.random.default_rng(seed)`` (one generator, groups in
    sorted order) picks ``round(fraction * n)`` labels, at least one and at most
    ``n - 1`` when the group has two or more, none of a group of one. So both halves
    cover every family that has two labels or more, and one seed gives one split."""
    if not 0 < fraction < 1:
        raise ConfigError(f"heldout_fraction: {fraction!r} is not in (0, 1)")
    pool = sorted(set(map(str, labels)))
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for fam in sorted(families or {}):
        members = [lab for lab in sorted(set(map(str, families[fam]))) if lab in pool and lab not in seen]
        seen.update(members)
        if members:
            groups[fam] = members
    rest = [lab for lab in pool if lab not in seen]
    if rest:
        groups["\uffff(no family)"] = rest
    from soundsim.head import draw_per_group

    return sorted(draw_per_group(groups, fraction, seed, at_least=1, leave=1))


def _labels_of(value: Any) -> list[str]:
    """A manifest's ``labels`` cell as a list: a list as :func:`soundsim.manifest.read_manifest`
    gives it, or the comma-joined text of ``manifest.csv``."""
    if isinstance(value, (list, tuple)):
        return [str(lab) for lab in value if str(lab)]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [lab for lab in str(value).split(",") if lab]


def _label_lists(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """fname -> its labels (the manifest's ``labels`` column, :func:`_labels_of`)."""
    return {str(f): _labels_of(ls) for f, ls in zip(manifest["fname"], manifest["labels"], strict=True)}


# --------------------------------------------------------------------------- overlap


def check_disjoint(train: pd.DataFrame, evaluated: pd.DataFrame, train_name: str = "train_collection",
                   evaluated_name: str = "collection", shown: int = 20) -> None:
    """Raise :class:`OverlapError` when the two manifests share a clip: the same ``fname``,
    or the same audio content (the ``fingerprint`` column, when both have it; empty
    fingerprints are ignored). The message gives the number of shared clips and lists
    up to ``shown`` of them (``fname`` pairs, with the reason)."""
    lines = []
    same_name = sorted(set(map(str, train["fname"])) & set(map(str, evaluated["fname"])))
    lines += [f"{f} (same fname)" for f in same_name]
    if "fingerprint" in train.columns and "fingerprint" in evaluated.columns:
        ev = {}
        for f, fp in zip(evaluated["fname"], evaluated["fingerprint"], strict=True):
            if isinstance(fp, str) and fp:
                ev.setdefault(fp, str(f))
        named = set(same_name)
        for f, fp in zip(train["fname"], train["fingerprint"], strict=True):
            if isinstance(fp, str) and fp in ev and str(f) not in named:
                lines.append(f"{train_name} {f} = {evaluated_name} {ev[fp]} (same audio content, {fp})")
    if lines:
        more = f"\n  ... and {len(lines) - shown} more" if len(lines) > shown else ""
        raise OverlapError(
            f"{train_name} and {evaluated_name} share {len(lines)} clip(s); a head must not be trained on clips "
            f"it is evaluated on:\n  " + "\n  ".join(lines[:shown]) + more
        )


# --------------------------------------------------------------------------- inputs


def head_inputs(emb: Any, aggregation: str, order: str) -> np.ndarray:
    """A head's input: the clip vectors of embeddings ``emb`` (:class:`soundsim.store.Embeddings`)
    aggregated by ``aggregation``, L2-normalised when ``order`` is ``l2-pca`` (float64)."""
    from soundsim import process as P

    X = P.aggregate(emb.embeddings, emb.offsets, aggregation, emb.fnames)
    return P.l2_normalize(X, emb.fnames, "base clip vectors") if order == "l2-pca" else X


def training_set(emb: Any, manifest: pd.DataFrame, aggregation: str, order: str,
                 heldout: Sequence[str] = ()) -> tuple[np.ndarray, list[list[str]], list[str]]:
    """(X, labels, fnames) of the clips a head trains on: every clip of ``emb`` with labels in
    ``manifest``, minus the clips with a label in ``heldout``."""
    lab = _label_lists(manifest)
    drop = set(heldout)
    keep = [i for i, f in enumerate(emb.fnames) if lab.get(f) and not drop.intersection(lab[f])]
    if not keep:
        raise HeadsError(f"{emb.path}: no clip to train on (none with labels in the manifest"
                         + (", once the held-out labels' clips are left out)" if drop else ")"))
    X = head_inputs(emb, aggregation, order)[keep]
    return X, [lab[emb.fnames[i]] for i in keep], [emb.fnames[i] for i in keep]


def base_order(section: Mapping[str, Any]) -> str:
    """The processing order of a head's base (``l2-pca`` / ``minmax-pca``, its ModelInfo)."""
    from soundsim import models as registry

    return registry.info(section["base"], section["base_config"]).processing


# --------------------------------------------------------------------------- train, apply


def _families(path: str | Path | None) -> dict[str, list[str]]:
    if not path:
        return {}
    try:
        return {str(k): list(v) for k, v in json.loads(Path(path).read_text()).items()}
    except (OSError, ValueError, AttributeError) as e:
        raise HeadsError(f"{path}: not a families file (JSON object family -> labels): {e}") from e


def train_from_files(
    name: str,
    section: Mapping[str, Any],
    train_embeddings: str | Path,
    train_manifest: str | Path,
    evaluated_manifest: str | Path,
    train_families: str | Path | None,
    checkpoint: str | Path,
    meta_path: str | Path,
    training_log: str | Path,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train head ``name`` (its model section, :func:`head_sections`) on the training
    collection's base embeddings and write its checkpoint, ``head.json`` (:func:`head_meta`)
    and ``training.csv``; returns the metadata. Refuses (:class:`OverlapError`) when the
    two manifests share clips, before anything is trained."""
    import time

    from soundsim.head import HeadSpec, primary_labels, train_head
    from soundsim.manifest import read_manifest
    from soundsim.store import read_embeddings

    say = say or log.info
    tm, em = read_manifest(train_manifest), read_manifest(evaluated_manifest)
    check_disjoint(tm, em, f"train_collection ({train_manifest})", f"collection ({evaluated_manifest})")
    spec = HeadSpec.from_config(section["spec"], f"heads.{name}")
    emb = read_embeddings(train_embeddings)
    clip_labels = [ls for ls in _label_lists(tm).values() if ls]
    labels_present = sorted({lab for ls in clip_labels for lab in ls})
    # held out: chosen among the clips' primary (rarest, i.e. most specific) labels, so that a
    # parent label (Music over Piano and Organ) stays in training with its other children
    heldout = (heldout_labels(sorted(set(primary_labels(clip_labels))), _families(train_families),
                              section["heldout_fraction"], spec.seed)
               if section["class_disjoint"] else [])
    X, labels, fnames = training_set(emb, tm, section["aggregation"], base_order(section), heldout)
    say(f"{name}: training on {len(fnames)} clips x {X.shape[1]} dims of {section['base']}/{section['variation']} "
        f"({section['aggregation']}), {len(labels_present) - len(heldout)} labels"
        + (f", {len(heldout)} held out" if heldout else ""))
    t0 = time.perf_counter()
    head = train_head(X, labels, spec, fnames=fnames, progress=progress, log=say)
    seconds = time.perf_counter() - t0
    head.save(checkpoint)
    meta = head_meta(name, section, head, heldout, seconds, train_embeddings)
    with atomic_path(training_log) as tmp:
        head.history.to_csv(tmp, index=False)
    with atomic_path(meta_path) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2) + "\n")
    say(f"{name}: best epoch {head.best_epoch} of {len(head.history)}, validation MAP@15 "
        f"{float(head.history[VAL_METRIC].max()):.4f}, {seconds:.1f} s")
    return meta


def head_meta(name: str, section: Mapping[str, Any], head: Any, heldout: Sequence[str], seconds: float,
              train_embeddings: str | Path) -> dict[str, Any]:
    """``head.json``: ``name, base, variation, aggregation, train_collection, train_embeddings,
    class_disjoint, train_labels`` (the labels it trained on), ``heldout_labels`` (empty
    unless class-disjoint), ``spec`` (every hyperparameter), ``fingerprint``
    (:attr:`soundsim.head.TrainedHead.fingerprint`), ``n_train, n_val, best_epoch, epochs_run,
    best_val_map@15, seconds``."""
    return {
        "name": name,
        "base": section["base"],
        "variation": section["variation"],
        "aggregation": section["aggregation"],
        "train_collection": section.get("train_collection"),
        "train_embeddings": str(train_embeddings),
        "class_disjoint": bool(section["class_disjoint"]),
        "train_labels": sorted(head.labels),
        "heldout_labels": sorted(heldout),
        "spec": head.spec.as_dict(),
        "fingerprint": head.fingerprint,
        "n_train": int(head.n_train),
        "n_val": int(head.n_val),
        "best_epoch": int(head.best_epoch),
        "epochs_run": int(len(head.history)),
        "best_" + VAL_METRIC: float(head.history[VAL_METRIC].max()),
        "seconds": round(float(seconds), 3),
    }


def read_meta(path: str | Path) -> dict[str, Any]:
    """A head's ``head.json``; :class:`HeadsError` naming the file when unreadable."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise HeadsError(f"{path}: not a head's metadata (head.json): {e}") from e
    if not isinstance(meta, dict) or "fingerprint" not in meta:
        raise HeadsError(f"{path}: not a head's metadata (head.json): no fingerprint")
    return meta


def apply_to_file(name: str, section: Mapping[str, Any], base_embeddings: str | Path, checkpoint: str | Path,
                  meta_path: str | Path, out: str | Path) -> Path:
    """Map the evaluated collection's base embeddings through head ``name`` and write the
    result as an embeddings file of model ``name``, variation ``section['variation']``
    (clip level), whose attributes name the base model, variation and aggregation, the
    head's fingerprint, hyperparameters and training collection. Clips the base could not
    embed stay in ``/failed``. The checkpoint must be the one ``head.json`` describes."""
    from soundsim.head import TrainedHead
    from soundsim.store import read_embeddings, write_embeddings

    head = TrainedHead.load(checkpoint)
    meta = read_meta(meta_path)
    if head.fingerprint != meta["fingerprint"]:
        raise HeadsError(f"{checkpoint}: fingerprint {head.fingerprint} is not the one {meta_path} records "
                         f"({meta['fingerprint']}); train the head again")
    emb = read_embeddings(base_embeddings)
    X = head_inputs(emb, section["aggregation"], base_order(section))
    if X.shape[1] != head.input_dim:
        raise HeadsError(f"{base_embeddings}: {X.shape[1]} dims, but head {name} ({checkpoint}) takes "
                         f"{head.input_dim}")
    Z = head.apply(X)
    attrs = {
        "model": name,
        "variation": section["variation"],
        "level": "clip",
        "sample_rate": emb.attrs.get("sample_rate", -1),
        "base_model": section["base"],
        "base_variation": section["variation"],
        "base_aggregation": section["aggregation"],
        "base_embeddings": str(base_embeddings),
        "head_fingerprint": head.fingerprint,
        "head_spec": head.spec.as_dict(),
        "train_collection": meta.get("train_collection") or "",
        "class_disjoint": bool(meta.get("class_disjoint", False)),
    }
    return write_embeddings(out, emb.fnames, (Z.astype(np.float32), np.arange(len(emb.fnames) + 1)), attrs,
                            failed=emb.failed or None)



# --------------------------------------------------------------------------- report


def write_report(models: str | Path, per_query: Sequence[str | Path], metas: Sequence[str | Path],
                 training_logs: Sequence[str | Path], table: str | Path, comparison: str | Path,
                 training: str | Path, n_resamples: int, confidence: float, seed: int,
                 collection: str | None = None) -> None:
    """``tables/heads.csv`` (:func:`soundsim.tables.heads_table` over the given settings'
    per-query files and the heads' ``head.json``), its figure
    (:func:`soundsim.figures.heads_comparison`) and the training curves
    (:func:`soundsim.figures.head_training`, from each head's ``training.csv``)."""
    from soundsim import figures as F
    from soundsim import layout as L
    from soundsim import tables as T

    heads_meta = {m["name"]: m for m in map(read_meta, metas)}
    settings = L.settings_from_inputs(per_query=per_query)
    df = T.heads_table(settings, T.read_table(models), heads_meta, n_resamples, confidence, seed)
    with atomic_path(table) as tmp:
        df.to_csv(tmp, index=False)
    F.heads_comparison(df, comparison, collection=collection)
    logs = {Path(p).parent.name: pd.read_csv(p) for p in training_logs}
    F.head_training(logs, training, collection=collection)
