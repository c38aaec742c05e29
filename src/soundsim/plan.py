"""What a (validated) config asks for: the enabled models, their variations, and the
settings each variation is evaluated under.

The workflow plans its jobs with these functions (``workflow/rules/common.smk``) and
``soundsim tables`` reads the same settings' files, so both see exactly the configured
settings and nothing else that may lie in the results tree. Paths come from
:mod:`soundsim.layout`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from soundsim import layout as L

log = logging.getLogger(__name__)

Warn = Callable[[str], None]


def enabled_models(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Model name -> its config section, for every model of ``models:`` not disabled
    (``enabled: false``), in config order, then every enabled head of ``heads:`` as a
    section of kind ``head`` (:func:`soundsim.heads.head_sections`): a head is a model."""
    from soundsim import heads

    models = {n: m for n, m in (config.get("models") or {}).items() if (m or {}).get("enabled", True)}
    return {**models, **heads.head_sections(config, models)}


def head_models(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Head name -> its model section (kind ``head``), the heads among :func:`enabled_models`."""
    from soundsim import heads

    return {n: m for n, m in enabled_models(config).items() if (m or {}).get("kind") == heads.KIND}


def model_variations(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(model, variation) of every enabled model's configured variations (its
    default variation when none are listed), in config order. Unknown models
    raise :class:`soundsim.errors.ConfigError` (from the registry)."""
    from soundsim import models as registry

    out = []
    for name, mcfg in enabled_models(config).items():
        variations = (mcfg or {}).get("variations") or [registry.info(name, mcfg).default_variation]
        out += [(name, str(v)) for v in variations]
    return out


def processing_settings(model: str, grid: Mapping[str, Any], n_clips: int | None,
                        warn: Warn | None = None, cfg: Mapping[str, Any] | None = None
                        ) -> list[tuple[str, str]]:
    """(aggregation, PCA) pairs ``model`` is evaluated under, PCA as in names ('100', 'none'):
    clip-level models use aggregation 'none' only, frame-level models the configured
    aggregations other than 'none'; PCA sizes above the model's dimension (PCA cannot
    add dimensions) or above ``n_clips`` (when known) are left out, each saying so
    through ``warn`` (default: the log). ``cfg``: the model's config section (for a model
    of a kind, :func:`soundsim.models.info`)."""
    from soundsim import models as registry

    say = warn or log.warning
    inf = registry.info(model, cfg)
    aggs = ["none"] if inf.level == "clip" else [a for a in grid["aggregations"] if a != "none"]
    pcas = []
    for p in grid["pca"]:
        if p == "none":
            pcas.append("none")
        elif not all(int(p) <= inf.dim_of(v) for v in inf.variations):
            say(f"{model}: PCA {p} > its {inf.dim_of(inf.default_variation)} dims: left out")
        elif n_clips is not None and int(p) > n_clips:
            say(f"{model}: PCA {p} > the collection's {n_clips} clips: left out")
        else:
            pcas.append(str(p))
    return [(a, p) for a in aggs for p in pcas]


def expected_clips(config: Mapping[str, Any]) -> int | None:
    """The clips evaluation can expect (:func:`soundsim.manifest.expected_clips` for
    the configured collection's manifest)."""
    from soundsim import manifest

    return manifest.expected_clips(dict(config["collection"]), L.Layout.from_config(config).manifest)


def configured_settings(config: Mapping[str, Any], n_clips: int | None, warn: Warn | None = None
                        ) -> list[L.SettingFiles]:
    """The files of every configured setting: each enabled model variation x its
    :func:`processing_settings` x ``grid.searches``, in that order, under the
    config's results tree (:class:`soundsim.layout.Layout`)."""
    lay = L.Layout.from_config(config)
    grid = config["grid"]
    out = []
    models_cfg = enabled_models(config)
    for model, variation in model_variations(config):
        for agg, pca in processing_settings(model, grid, n_clips, warn, models_cfg[model]):
            out += [lay.setting_files(model, variation, L.setting_name(agg, pca, s)) for s in grid["searches"]]
    return out


def training_declarations(config: Mapping[str, Any]) -> dict[str, str]:
    """Enabled model -> its declared training data in words
    (:func:`soundsim.training_data.describe_training`), in config order: a parameter
    of the tables rule, so that a change in a declaration re-runs the tables."""
    from soundsim import models as registry
    from soundsim import training_data as TD

    return {name: TD.describe_training(registry.info(name, cfg)) for name, cfg in enabled_models(config).items()}


def paper_table2(config: Mapping[str, Any], warn: Warn | None = None) -> str | None:
    """The paper's Table II (CSV) to print beside soundsim's numbers: the path of
    ``evaluation.paper_table2`` when the collection is FSD50K and the file exists,
    else None (a configured but missing file is said through ``warn``)."""
    path = (config.get("evaluation") or {}).get("paper_table2")
    if not path or config["collection"]["kind"] != "fsd50k":
        return None
    if not Path(path).is_file():
        (warn or log.warning)(f"evaluation.paper_table2: {path} not found; tables without the paper's values")
        return None
    return str(path)
