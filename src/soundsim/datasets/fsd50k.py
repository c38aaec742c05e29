"""``fsd50k`` collections: the FSD50K eval set (or dev set) as distributed on Zenodo.

Config keys (``collection:``): ``audio_dir`` (``FSD50K.eval_audio/``),
``ground_truth`` (``FSD50K.ground_truth/eval.csv``: fname,labels,mids),
``vocabulary`` (``FSD50K.ground_truth/vocabulary.csv``: index,label,mid, no
header) and ``ontology`` (AudioSet ontology JSON, e.g. FSD50K's
``ontology_crowd.json``). Families are derived from the ontology
(:func:`soundsim.datasets.ontology.derive_families`): 6 families and 22
multi-parent labels on FSD50K, as in the paper.
"""

from __future__ import annotations

from pathlib import Path

from soundsim.datasets.common import Collection, locate_audio, read_ground_truth, read_vocabulary
from soundsim.datasets.ontology import derive_families, load_ontology


def load(
    name: str,
    audio_dir: str | Path,
    ground_truth: str | Path,
    vocabulary: str | Path,
    ontology: str | Path,
) -> Collection:
    """Read FSD50K's ground truth, vocabulary and audio folder; derive families."""
    df = read_ground_truth(ground_truth)
    df["path"] = locate_audio(audio_dir, df["fname"].tolist())
    labels, mids = read_vocabulary(vocabulary)
    families, multi = derive_families(load_ontology(ontology), labels, mids)
    return Collection(
        name=name,
        clips=df[["fname", "path", "labels"]].copy(),
        vocabulary=labels,
        families=families,
        multi_parent=multi,
        source=str(ground_truth),
    )
