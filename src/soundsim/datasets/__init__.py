"""Collection adapters. Each returns a :class:`Collection` with the same table:
fname, audio path, labels (list), plus family -> labels and multi-parent labels.

=========  ==========================================================
kind       source
=========  ==========================================================
``demo``   synthesised by :mod:`soundsim.datasets.demo` (nothing downloaded)
``fsd50k`` FSD50K ground truth + vocabulary + AudioSet ontology
``csv``    any folder of audio + a CSV (fname, labels) [+ families JSON]
=========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundsim.datasets import csv_folder, demo, fsd50k
from soundsim.datasets.common import Collection
from soundsim.errors import ConfigError

__all__ = ["Collection", "collection_dataset", "csv_folder", "demo", "demo_source_dir", "fsd50k", "load_collection"]


def demo_source_dir(results_dir: str | Path, name: str) -> Path:
    """Where the demo collection's generated sources live: ``<results>/<name>/source``
    (:attr:`soundsim.layout.Layout.source_dir`)."""
    from soundsim.layout import Layout

    return Layout(results_dir, name).source_dir


def load_collection(cfg: Mapping[str, Any], demo_dir: str | Path | None = None) -> Collection:
    """Build the collection described by the config's ``collection:`` section.

    For ``demo``, ``demo_dir`` is the folder the generator wrote (the
    ``demo_data`` rule or ``soundsim demo-data``; by default
    :func:`demo_source_dir`).
    """
    kind, name = cfg["kind"], cfg["name"]
    if kind == "demo":
        if demo_dir is None:
            raise ConfigError("collection.kind is 'demo' but no folder with the generated demo sources was given")
        src = Path(demo_dir)
        return csv_folder.load(
            name,
            audio_dir=src / "audio",
            ground_truth=src / "ground_truth.csv",
            vocabulary=src / "vocabulary.csv",
            families=src / "families.json",
        )
    if kind == "fsd50k":
        return fsd50k.load(name, cfg["audio_dir"], cfg["ground_truth"], cfg["vocabulary"], cfg["ontology"])
    if kind == "csv":
        return csv_folder.load(name, cfg["audio_dir"], cfg["ground_truth"], cfg.get("vocabulary"), cfg.get("families"))
    raise ConfigError(f"collection.kind: {kind!r} is not allowed; allowed values: 'demo', 'fsd50k', 'csv'")


def collection_dataset(cfg: Mapping[str, Any]) -> str | None:
    """The dataset the configured collection is (a full config, or its ``collection:``
    section), as :mod:`soundsim.training_data` compares it with the models' ``trained_on``:

    * ``kind: fsd50k`` -> ``"FSD50K"`` (a ``collection.dataset`` other than FSD50K is a ConfigError);
    * ``kind: csv`` -> ``collection.dataset`` (normalised to its canonical name,
      :func:`soundsim.training_data.normalise_dataset`), None when not declared;
    * ``kind: demo`` -> :data:`soundsim.training_data.DEMO_DATASET` (synthetic: in no model's
      training data; a ``collection.dataset`` is a ConfigError).
    """
    from soundsim import training_data as TD

    c = cfg.get("collection", cfg)
    kind, declared = c["kind"], c.get("dataset")
    if declared is not None and (not isinstance(declared, str) or not declared.strip()):
        raise ConfigError(f"collection.dataset: {declared!r} is not a dataset name (a non-empty string)")
    if kind == "fsd50k":
        if declared is not None and TD.normalise_dataset(declared) != "FSD50K":
            raise ConfigError(f"collection.dataset: {declared!r} contradicts collection.kind fsd50k (it is FSD50K; "
                              "leave collection.dataset out)")
        return "FSD50K"
    if kind == "demo":
        if declared is not None:
            raise ConfigError(f"collection.dataset: {declared!r} given for the demo collection, which is synthetic "
                              "(leave collection.dataset out)")
        return TD.DEMO_DATASET
    if kind == "csv":
        return TD.normalise_dataset(declared) if declared is not None else None
    raise ConfigError(f"collection.kind: {kind!r} is not allowed; allowed values: 'demo', 'fsd50k', 'csv'")
