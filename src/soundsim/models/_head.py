"""Model kind ``head``: a learned similarity head on a frozen base model (:mod:`soundsim.heads`).

The config does not write this kind under ``models:``: every enabled entry of ``heads:``
becomes a model section of kind ``head`` (:func:`soundsim.heads.head_sections`, through
:func:`soundsim.plan.enabled_models`), so a head is planned, evaluated and tabulated like
any model. Its embeddings are written by the workflow's ``apply_head`` rule, never by
extraction: the kind has no ``load`` (:func:`soundsim.models.load` says it embeds no
audio). The model's :class:`~soundsim.models.ModelInfo`: clip level (the head maps one
aggregated clip vector to one output vector), the head's output dimension, one variation
(the base's), the main environment; its training data is the base's plus the training
collection's dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo


def _spec(name: str, cfg: Mapping[str, Any]) -> Any:
    from soundsim.head import HeadSpec

    return HeadSpec.from_config(cfg.get("spec") or {}, f"heads.{name}")


def model_info(name: str, cfg: Mapping[str, Any]) -> ModelInfo:
    """The ModelInfo of head ``name`` (its section from :func:`soundsim.heads.head_sections`)."""
    from soundsim import models as registry

    spec = _spec(name, cfg)
    base, variation = cfg["base"], cfg["variation"]
    trained_on: tuple[str, ...] | None = None
    notes: dict[str, str] = {}
    if cfg.get("base_config") is not None:
        binfo = registry.info(base, cfg["base_config"])
        notes = dict(binfo.trained_on_notes)
        train = cfg.get("train_dataset")
        if binfo.trained_on is not None:
            trained_on = tuple(dict.fromkeys((*binfo.trained_on, *([train] if train else []))))
            if train:
                notes[train] = f"the head's training collection {cfg.get('train_collection')}"
    return ModelInfo(
        name=name,
        variations=(variation,),
        default_variation=variation,
        sample_rate=-1,
        level="clip",
        hop=None,
        dim=spec.dim,
        env="soundsim",
        description=(f"learned similarity head ({spec.architecture}, {spec.loss}, {spec.dim} dims) on "
                     f"{base}/{variation} ({cfg['aggregation']}), trained on {cfg.get('train_collection')}"),
        weights="bundled",
        weights_hint="none: trained by the workflow (rule train_head)",
        long_clips="as the base model",
        packages=("torch",),
        trained_on=trained_on,
        trained_on_notes=notes,
    )


def config_problems(name: str, cfg: Mapping[str, Any]) -> list[str]:
    """What is wrong with head ``name``: a base that is not an enabled model (or is a head),
    a name that does not start with ``head-<base>``, a variation the base is not configured
    with, an aggregation the base's level does not take, a hyperparameter HeadSpec refuses."""
    from soundsim import models as registry
    from soundsim.heads import HEAD_PREFIX

    base, where = cfg["base"], f"heads.{name}"
    problems = []
    if not (name == f"{HEAD_PREFIX}{base}" or name.startswith(f"{HEAD_PREFIX}{base}-")):
        problems.append(f"{where}: a head's name is {HEAD_PREFIX}{base} or {HEAD_PREFIX}{base}-<anything> "
                        f"(it names its base, {base})")
    bcfg = cfg.get("base_config")
    if bcfg is None:
        problems.append(f"{where}.base: {base!r} is not an enabled model of models:")
    elif registry.kind_of(bcfg) == "head":
        problems.append(f"{where}.base: {base!r} is a head; a head's base is a frozen model")
    else:
        try:
            binfo = registry.info(base, bcfg)
        except ConfigError as e:
            problems.append(f"{where}.base: {e}")
        else:
            configured = [str(v) for v in (bcfg.get("variations") or [binfo.default_variation])]
            if cfg["variation"] not in configured:
                problems.append(f"{where}.variation: {cfg['variation']!r} is not a configured variation of {base}; "
                                f"allowed values: {', '.join(configured)}")
            agg = cfg["aggregation"]
            if binfo.level == "clip" and agg != "none":
                problems.append(f"{where}.aggregation: {base} is clip-level; allowed value: 'none'")
            if binfo.level == "frame" and agg == "none":
                problems.append(f"{where}.aggregation: {base} is frame-level; allowed values: mean, median, max")
    try:
        _spec(name, cfg)
    except ConfigError as e:
        problems.append(str(e))
    return problems


def load_arguments(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Nothing: a head is applied by the workflow (rule apply_head), never loaded to embed audio."""
    return {}


def code_parts(name: str, cfg: Mapping[str, Any], root: Path | None = None) -> dict[str, object]:
    """The code a head's embeddings depend on: the network and its training, the workflow
    glue, aggregation, and the store it writes."""
    from soundsim.provenance import module_digest

    return {m: module_digest(m) for m in ("soundsim.head", "soundsim.heads", "soundsim.process", "soundsim.store")}
