"""Model kind ``precomputed``: embeddings computed elsewhere, imported instead of extracted.

Config (``models.<name>``, the name is the user's)::

    my-vectors:
      kind: precomputed
      path: vectors/              # a folder of <fname>.npy, an .npz, an .npy (+ fnames:),
                                  # a .parquet/.csv/.tsv with fname + vector columns, or a soundsim .h5
      fnames: vectors/fnames.txt  # only with a single .npy: one fname per row
      format: npz                 # optional: when the path's ending does not say
      level: frame                # optional: clip | frame (default: from the data)
      variations: [v1]            # optional: the one variation's name (default 'precomputed')
      trained_on: [AudioSet]      # optional: the datasets its training data included

The formats, how source names match the collection's fnames, what is checked
and what happens to clips without a vector: :mod:`soundsim.precomputed`. The
model's :class:`~soundsim.models.ModelInfo` takes the dimension and the level
from the source's headers (:func:`soundsim.precomputed.describe`), so planning
leaves out PCA sizes above the dimension as for any model. The kind has no
``load``: the workflow's ``import_embeddings`` rule (and ``soundsim
import-embeddings``) writes the embeddings file; ``soundsim.models.load``
raises a ConfigError saying the model embeds no audio.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundsim import precomputed
from soundsim.errors import ConfigError
from soundsim.models import ModelInfo
from soundsim.training_data import check_trained_on

#: keys of a model's section that a precomputed model does not use (they configure audio models)
UNUSED_KEYS = ("module", "env", "weights")


def _source(name: str, cfg: Mapping[str, Any]) -> precomputed.Source:
    try:
        return precomputed.source_of_config(cfg)
    except precomputed.SourceError as e:
        raise ConfigError(f"models.{name}.path: {e}") from e


def variation_of(cfg: Mapping[str, Any]) -> str:
    """The model's one variation: ``variations[0]`` when given, else ``'precomputed'``."""
    return str((cfg.get("variations") or [precomputed.DEFAULT_VARIATION])[0])


def model_info(name: str, cfg: Mapping[str, Any]) -> ModelInfo:
    """The ModelInfo of precomputed model ``name``: dimension and level from the source
    (``level:`` overrides the level), one variation (:func:`variation_of`), main env."""
    src = _source(name, cfg)
    try:
        summary = precomputed.describe(src)
    except precomputed.SourceError as e:
        raise ConfigError(f"models.{name}.path: {e}") from e
    variation = variation_of(cfg)
    trained_on = check_trained_on(cfg.get("trained_on"), f"models.{name}.trained_on")
    return ModelInfo(
        name=name,
        variations=(variation,),
        default_variation=variation,
        sample_rate=-1,
        level=cfg.get("level") or summary.level,
        hop=None,
        dim=summary.dim,
        env="soundsim",
        description=f"precomputed embeddings ({summary.format}) from {src.path}",
        weights="bundled",
        weights_hint="none: the vectors were computed elsewhere",
        long_clips="as computed elsewhere",
        packages=("pandas", "pyarrow", "h5py"),
        trained_on=trained_on,
    )


def config_problems(name: str, cfg: Mapping[str, Any]) -> list[str]:
    """What is wrong with the section beyond the schema: a missing, unreadable or
    unknown-format source, an fnames list where it does not apply (or missing), more
    than one variation, keys of audio models (``module``, ``env``, ``weights``, ``options``)."""
    problems = [f"models.{name}.{k}: not used by kind precomputed (it embeds no audio); remove it"
                for k in UNUSED_KEYS if cfg.get(k) is not None]
    if cfg.get("options"):
        problems.append(f"models.{name}.options: a precomputed model takes no options; remove them")
    if len(cfg.get("variations") or []) > 1:
        problems.append(f"models.{name}.variations: a precomputed model has one variation (one path); "
                        "configure another model for other vectors")
    try:
        src = _source(name, cfg)
        precomputed.describe(src)
    except ConfigError as e:
        problems.append(str(e))
    except precomputed.SourceError as e:
        problems.append(f"models.{name}.path: {e}")
    return problems


def load_arguments(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Nothing: a precomputed model is never loaded."""
    return {}


def code_parts(name: str, cfg: Mapping[str, Any], root: Path | None = None) -> dict[str, object]:
    """The import's code (``soundsim.precomputed``) and the store it writes, for the code version."""
    from soundsim.provenance import module_digest

    return {m: module_digest(m) for m in ("soundsim.precomputed", "soundsim.store")}
