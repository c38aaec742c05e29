"""Training-data metadata: which datasets a model was trained on, and whether an
evaluation on a collection is therefore not zero-shot.

A model declares the datasets its training data included in
``ModelInfo.trained_on`` (canonical names of :data:`DATASETS`, from its paper or
model card; ``()`` = none of them, e.g. hand-made features or random weights;
``None`` = not declared), with an optional note per dataset in
``ModelInfo.trained_on_notes`` (which split, which variations: ``{"FSD50K": "dev
split"}``). A collection's dataset comes from its config
(:func:`soundsim.datasets.collection_dataset`: FSD50K for ``kind: fsd50k``,
``collection.dataset`` for a csv collection, :data:`DEMO_DATASET` for the
synthetic demo).

:func:`training_overlap` decides the flag the tables and the report show
(column :data:`FLAG_COLUMN` = ``true`` / ``false`` / ``unknown``, marker
:data:`MARKER` beside the model's name): ``true`` when the collection's dataset
is among the model's declared training datasets (names compared after
:func:`normalise_dataset`). Only the named dataset counts: a collection drawn
from the same source as a training set (FSD50K's clips are Freesound sounds) is
not flagged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from soundsim.errors import ConfigError

#: canonical dataset name -> other names it goes by (matched after :func:`dataset_key`;
#: the canonical name itself always matches). Audio datasets only: image and text data
#: (ImageNet, CLIP's pairs) never make an audio collection's evaluation not zero-shot.
DATASETS: dict[str, tuple[str, ...]] = {
    "FSD50K": ("Freesound Dataset 50k", "FSD-50K"),
    "FreeSound": ("Freesound", "freesound.org"),
    "AudioSet": ("Audio Set", "AS-2M", "AudioSet-2M", "AS-20K", "AudioSet-20K", "AudioSet-SL"),
    "AudioCaps": ("Audio Caps",),
    "Clotho": ("ClothoV2", "Clotho V2", "Clotho-v2"),
    "ClothoAQA": ("Clotho-AQA", "Clotho AQA"),
    "MACS": ("Multi-Annotator Captioned Soundscapes",),
    "WavCaps": ("Wav Caps",),
    "WavText5K": ("Wav Text5K", "WavText-5K"),
    "SoundDescs": ("Sound Descs",),
    "LAION-Audio-630K": ("LAION 630K", "LAION-630K"),
    "BBC Sound Effects": ("BBC SFX", "BBC Sound Effects Library"),
    "FindSound": ("Find Sound",),
    "VGGSound": ("VGG-Sound",),
    "YouTube-100M": ("YouTube100M", "YT-100M"),
    "YouTube-8M": ("YouTube8M", "YT-8M"),
    "UCS": ("Universal Category System",),
    "ESC-50": ("ESC50",),
    "UrbanSound8K": ("US8K", "UrbanSound 8K"),
    "MagnaTagATune": ("MTT", "Magna Tag A Tune", "MagnaTagATune Dataset"),
    "MSD": ("Million Song Dataset",),
    "NSynth": ("N-Synth",),
    "FMA": ("Free Music Archive",),
    "CochlScene": ("Cochl Scene", "Cochl Acoustic Scene Dataset"),
    "MSP-Podcast": ("MSP Podcast",),
    "CMU-MOSI": ("CMU MOSI", "MOSI"),
    "CMU-MOSEI": ("CMU MOSEI", "MOSEI"),
    "MELD": (),
}

#: the dataset of the synthetic demo collection: in no model's training data
DEMO_DATASET = "soundsim demo (synthetic)"
#: the tables' column: 'true' / 'false' / 'unknown'
FLAG_COLUMN = "trained_on_collection"
#: the marker beside a flagged model's name (models.md, its HTML page, the models figure)
MARKER = "†"

Flag = Literal["true", "false", "unknown"]


def dataset_key(name: str) -> str:
    """The comparison key of a dataset name: lower case, letters and digits only
    (``"ESC-50"``, ``"esc50"`` and ``"ESC 50"`` are one dataset)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _aliases() -> dict[str, str]:
    """:func:`dataset_key` of every canonical name and alias -> canonical name."""
    out: dict[str, str] = {}
    for canonical, aliases in DATASETS.items():
        for n in (canonical, *aliases):
            out[dataset_key(n)] = canonical
    return out


def canonical_dataset(name: str) -> str | None:
    """The canonical :data:`DATASETS` name of ``name`` (any of its aliases), or None if unknown."""
    return _aliases().get(dataset_key(name))


def normalise_dataset(name: str) -> str:
    """``name`` as its canonical :data:`DATASETS` name when known, else stripped and kept
    (a collection of the user's own sounds may name a dataset no model declares)."""
    return canonical_dataset(name) or str(name).strip()


def check_trained_on(value: Any, where: str) -> tuple[str, ...] | None:
    """A ``trained_on:`` value from a config (a list of dataset names, or null) as
    ``ModelInfo.trained_on`` takes it: names normalised (:func:`normalise_dataset`),
    duplicates once, order kept; None stays None (not declared), ``[]`` is ``()``.
    A ConfigError naming ``where`` when it is not a list of non-empty strings."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{where}: {value!r} is not a list of dataset names (e.g. [FSD50K, AudioSet], or [])")
    names = list(value)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ConfigError(f"{where}: {bad[0]!r} is not a dataset name (a non-empty string)")
    return tuple(dict.fromkeys(normalise_dataset(n) for n in names))


def unknown_datasets(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that are not :data:`DATASETS` names or aliases."""
    return [n for n in names if canonical_dataset(n) is None]


def _notes(info: Any) -> Mapping[str, str]:
    return getattr(info, "trained_on_notes", None) or {}


def dataset_text(info: Any, dataset: str) -> str:
    """``"FSD50K (dev split)"``: a training dataset of ``info`` with its note, if any."""
    note = _notes(info).get(dataset)
    return f"{dataset} ({note})" if note else dataset


def describe_training(info: Any) -> str:
    """The training data of a model (a :class:`soundsim.models.ModelInfo`, or None) in words:
    ``"FSD50K (dev split), AudioSet"``, ``"none (no training)"`` for ``()``,
    ``"not declared"`` for None."""
    trained_on = getattr(info, "trained_on", None)
    if trained_on is None:
        return "not declared"
    if not trained_on:
        return "none (no training)"
    return ", ".join(dataset_text(info, d) for d in trained_on)


def short_training(info: Any, n: int = 3) -> str:
    """:func:`describe_training` in brief, names only: the first ``n`` datasets and
    ``+<more>`` (``"FSD50K, Clotho, AudioCaps +2"``), ``none``, ``not declared``."""
    trained_on = getattr(info, "trained_on", None)
    if trained_on is None:
        return "not declared"
    if not trained_on:
        return "none"
    more = len(trained_on) - n
    return ", ".join(trained_on[:n]) + (f" +{more}" if more > 0 else "")


@dataclass(frozen=True)
class TrainingOverlap:
    """Whether a model's training data includes the evaluated collection.

    ``flag``: ``'true'`` (not zero-shot), ``'false'`` or ``'unknown'`` (the model's
    training data or the collection's dataset is not declared); ``note``: one
    readable line for ``true`` and ``unknown`` (empty for ``false``)."""

    flag: Flag
    note: str

    @property
    def trained_on_collection(self) -> bool:
        return self.flag == "true"


def training_overlap(info: Any, dataset: str | None) -> TrainingOverlap:
    """The flag of a model (``info``: its ModelInfo; None for a model the registry does
    not know) evaluated on a collection whose dataset is ``dataset``
    (:func:`soundsim.datasets.collection_dataset`; None = not declared).

    * ``dataset`` None -> unknown (``collection.dataset`` is not declared);
    * ``info`` None or ``info.trained_on`` None -> unknown (training data not declared);
    * ``dataset`` among ``info.trained_on`` (:func:`dataset_key` of
      :func:`normalise_dataset`, so aliases match) -> true, note ``"trained on
      <dataset> (<note>): not zero-shot"``;
    * else false."""
    if dataset is None:
        return TrainingOverlap("unknown", "the collection's dataset is not declared (collection.dataset)")
    trained_on = getattr(info, "trained_on", None)
    if trained_on is None:
        return TrainingOverlap("unknown", "its training data is not declared")
    key = dataset_key(normalise_dataset(dataset))
    for d in trained_on:
        if dataset_key(normalise_dataset(d)) == key:
            return TrainingOverlap("true", f"trained on {dataset_text(info, d)}: not zero-shot")
    return TrainingOverlap("false", "")


def flag_text(dataset: str | None) -> str:
    """The sentence that explains :data:`MARKER` under a models table of a collection of ``dataset``."""
    if dataset is None:
        return ("The collection's dataset is not declared (collection.dataset), so whether a model was trained on "
                "it is unknown.")
    return (f"{MARKER}: the model's training data includes {dataset}, the dataset of this collection "
            "(from its paper / model card): its numbers here are not zero-shot.")
