"""Embedding maps: a 2-D t-SNE picture of each model's processed clip vectors, coloured by sound family.

For every mapped model variation (rule ``embedding_maps``; :func:`write_maps`):

1. the setting is the model's row of ``tables/models.csv``: its ``best_setting``
   (``agg-<a>_pca-<p>_search-<s>``; the tables rule chose it, the maps choose
   nothing). Every variation of a model is drawn at that one setting, so the
   variations' maps compare like with like; the title says which variation is the
   model's best (models.csv's ``variation``);
2. the vectors are that setting's processed matrix,
   ``processed/<model>/<variation>/agg-<a>_pca-<p>.h5`` (rule evaluate; read with
   :func:`soundsim.store.read_embeddings`), made final for the setting's search by
   :func:`soundsim.process.normalize_for_search` (MCSS: re-normalised to unit length,
   so Euclidean distance on the map's input orders pairs as the cosine does;
   MIPS, NNS: as they are);
3. :func:`embedding_map`: t-SNE (openTSNE) with Euclidean distances,
   perplexity ``min(30, (n - 1) / 3)`` for ``n`` clips (:func:`perplexity_for`,
   so that the ``3 * perplexity`` neighbours openTSNE uses exist in small
   collections), PCA initialisation, ``random_state`` = the config's
   ``evaluation.seed``, one thread: the same vectors and seed give the same
   coordinates, bit for bit;
4. :func:`clip_families`: a clip's colour is the family (``families.json``: family
   -> labels) of its labels (``manifest.csv``); labels in no family are not
   counted; a clip whose labels fall in two or more families, or in none, is
   :data:`MIXED` (grey);
5. :func:`plot_map` draws one scatter per family and :func:`write_maps` saves it as
   ``figures/maps/<model>__<variation>.{png,pdf}``
   (:func:`soundsim.layout.map_figure_name`).

A t-SNE map shows neighbourhoods, not distances: clusters that sit apart hold
clips the model finds dissimilar, but the gaps between clusters and the clusters'
sizes carry little meaning (Wattenberg et al. 2016, "How to use t-SNE
effectively").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from soundsim import layout as L
from soundsim.errors import SoundsimError

log = logging.getLogger(__name__)

#: the group of clips whose labels fall in several families or in none
MIXED = "mixed/none"
MIXED_COLOUR = "#b0b0b0"
#: the fewest clips a map is drawn for (perplexity (n - 1) / 3 >= 1)
MIN_CLIPS = 4
MAX_PERPLEXITY = 30.0


class MapError(SoundsimError):
    """A map cannot be made from the given input (the message names what is wrong)."""


def perplexity_for(n: int, max_perplexity: float = MAX_PERPLEXITY) -> float:
    """``min(max_perplexity, (n - 1) / 3)``: the t-SNE perplexity for ``n`` clips.
    openTSNE uses the ``3 * perplexity`` nearest neighbours of each point, so
    ``(n - 1) / 3`` is the largest perplexity ``n`` points allow."""
    if n < MIN_CLIPS:
        raise MapError(f"a map needs at least {MIN_CLIPS} clips, got {n}")
    return float(min(max_perplexity, (n - 1) / 3))


def embedding_map(
    X: np.ndarray,
    seed: int,
    perplexity: float | None = None,
    n_jobs: int = 1,
) -> np.ndarray:
    """The t-SNE map of the rows of ``X`` (n x D, finite): an (n, 2) float64 array.

    openTSNE's ``TSNE`` with Euclidean distances, ``perplexity`` (default
    :func:`perplexity_for` of n), PCA initialisation and ``random_state=seed``;
    ``n_jobs=1`` (the default) keeps the result identical from run to run for
    the same ``X`` and ``seed``; another seed jitters the initialisation and
    gives another (equally valid) picture. :class:`MapError` when ``X`` is not
    2-D, has fewer than :data:`MIN_CLIPS` rows, a value that is not finite, or
    the map comes out not finite (e.g. every row the same)."""
    from openTSNE import TSNE

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise MapError(f"expected an (n, D) matrix, got shape {X.shape}")
    n = X.shape[0]
    p = perplexity_for(n) if perplexity is None else float(perplexity)
    if not 0 < p <= (n - 1) / 3:
        raise MapError(f"perplexity {p} is not in (0, (n - 1) / 3 = {(n - 1) / 3:g}] for {n} clips")
    if not np.all(np.isfinite(X)):
        raise MapError("the vectors have values that are not finite")
    Y = np.asarray(TSNE(n_components=2, perplexity=p, metric="euclidean", initialization="pca",
                        random_state=int(seed), n_jobs=n_jobs).fit(X), dtype=np.float64)
    if not np.all(np.isfinite(Y)):
        raise MapError(f"the t-SNE map of {n} clips is not finite (are the vectors all alike?)")
    return Y


def clip_families(labels: Sequence[Sequence[str]], families: Mapping[str, Sequence[str]]) -> list[str]:
    """The family of each clip (one entry per clip of ``labels``): the one family
    (a key of ``families``, family -> member labels) its labels belong to; labels in
    no family are not counted; :data:`MIXED` when they belong to two or more
    families or to none (a label listed under two families counts as both)."""
    of: dict[str, set[str]] = {}
    for fam, members in families.items():
        for lab in members:
            of.setdefault(str(lab), set()).add(str(fam))
    out = []
    for labs in labels:
        fams = set().union(*(of.get(str(lab), set()) for lab in labs))
        out.append(next(iter(fams)) if len(fams) == 1 else MIXED)
    return out


def family_colours(groups: Sequence[str]) -> dict[str, str]:
    """Group -> colour: the families (sorted) on the tab10 palette (tab20 beyond 10
    families, cycled beyond 20), :data:`MIXED` grey."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    fams = sorted({g for g in groups if g != MIXED})
    cmap = colormaps["tab10" if len(fams) <= 10 else "tab20"]
    out = {f: to_hex(cmap(i % cmap.N)) for i, f in enumerate(fams)}
    out[MIXED] = MIXED_COLOUR
    return out


def plot_map(coords: np.ndarray, groups: Sequence[str], title: str) -> Figure:
    """The map drawn (not saved): one scatter per group of ``groups`` (one entry per
    row of ``coords``, n x 2), :data:`MIXED` first and underneath in grey, the
    families on top in :func:`family_colours`; a legend naming each group and its
    number of clips; no axis ticks (t-SNE axes have no units); ``title`` on top."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] != len(groups):
        raise MapError(f"plot_map: expected ({len(groups)}, 2) coordinates, got {coords.shape}")
    g = np.asarray(groups, dtype=object)
    colours = family_colours(list(groups))
    order = ([MIXED] if MIXED in set(groups) else []) + sorted(set(groups) - {MIXED})
    fig = Figure(figsize=(7.2, 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    size = float(np.clip(3000.0 / max(len(groups), 1), 4.0, 40.0))
    for name in order:
        sel = g == name
        mixed = name == MIXED
        ax.scatter(coords[sel, 0], coords[sel, 1], s=size * (0.7 if mixed else 1.0), c=colours[name],
                   alpha=0.5 if mixed else 0.85, linewidths=0, label=f"{name} ({int(sel.sum())})",
                   zorder=1 if mixed else 2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(title, fontsize=10)
    ax.legend(title="sound family (clips)", fontsize=8, title_fontsize=8, loc="center left",
              bbox_to_anchor=(1.01, 0.5), frameon=False, markerscale=max(1.0, 6.0 / np.sqrt(size)))
    return fig


def map_title(model: str, variation: str, setting: str, n: int, *, best_variation: bool,
              perplexity: float, seed: int, collection: str | None = None) -> str:
    """``<model> / <variation> (best variation)`` on the first line, then the setting
    (:func:`soundsim.tables.setting_label`), the number of clips, the collection and
    the t-SNE parameters."""
    from soundsim.tables import setting_label

    head = f"{model} / {variation}" + (" (best variation)" if best_variation else "")
    where = f" of {collection}" if collection else ""
    return (f"{head}\n{setting_label(setting)} ({setting}), {n} clips{where}\n"
            f"t-SNE, perplexity {perplexity:.3g}, seed {seed}")


def processed_index(processed: Sequence[str | Path]) -> dict[tuple[str, str, str], Path]:
    """(model, variation, processing) -> path of each processed file given
    (:func:`soundsim.layout.processed_key`); :class:`MapError` when one is given twice."""
    out: dict[tuple[str, str, str], Path] = {}
    for p in processed:
        key = L.processed_key(p)
        if key in out and out[key] != Path(p):
            raise MapError(f"{p}: processed file of {'/'.join(key)} given twice (also {out[key]})")
        out[key] = Path(p)
    return out


def model_setting(models_df: pd.DataFrame, model: str) -> tuple[str, str]:
    """(best variation, best setting) of ``model`` in models.csv; :class:`MapError`
    when the model has no row or its ``best_setting`` is not a setting name."""
    for c in ("model", "variation", "best_setting"):
        if c not in models_df.columns:
            raise MapError(f"models.csv lacks the column {c!r}")
    rows = models_df[models_df["model"].astype(str) == str(model)]
    if len(rows) != 1:
        raise MapError(f"models.csv has {len(rows)} rows for model {model!r} (expected 1)")
    r = rows.iloc[0]
    setting = str(r["best_setting"])
    if not L.is_setting_name(setting):
        raise MapError(f"models.csv: best_setting {setting!r} of {model} is not a setting name "
                       f"({L.SETTING_PATTERN})")
    return str(r["variation"]), setting


def map_vectors(path: str | Path, setting: str) -> tuple[list[str], np.ndarray]:
    """The clip ids and final vectors of ``setting`` from its processed file ``path``
    (a clip-level embeddings file, :func:`soundsim.store.write_processed`): the
    matrix through :func:`soundsim.process.normalize_for_search` of the setting's search."""
    from soundsim.process import normalize_for_search
    from soundsim.store import read_embeddings

    emb = read_embeddings(path)
    if len(emb.offsets) != emb.n_clips + 1 or np.any(np.diff(emb.offsets) != 1):
        raise MapError(f"{path}: not a processed (one row per clip) file")
    return list(emb.fnames), normalize_for_search(emb.embeddings, L.parse_setting(setting).search, emb.fnames)


def _labels_of(manifest: pd.DataFrame | str | Path) -> dict[str, list[str]]:
    if isinstance(manifest, pd.DataFrame):
        df = manifest
    else:
        from soundsim.manifest import read_manifest

        df = read_manifest(manifest)
    out: dict[str, list[str]] = {}
    for f, labs in zip(df["fname"].astype(str), df["labels"], strict=True):
        if isinstance(labs, str):
            labs = [x.strip() for x in labs.split(",") if x.strip()]
        out[f] = [str(x) for x in labs]
    return out


def write_maps(
    models: pd.DataFrame | str | Path,
    processed: Sequence[str | Path],
    manifest: pd.DataFrame | str | Path,
    families: Mapping[str, Sequence[str]] | str | Path,
    out_dir: str | Path,
    seed: int,
    variations: Sequence[tuple[str, str]] | None = None,
    collection: str | None = None,
) -> list[Path]:
    """Every map, saved under ``out_dir`` (the figures folder) as
    ``maps/<model>__<variation>.{png,pdf}`` (:func:`soundsim.layout.map_figure_name`);
    returns the written paths.

    ``models``: models.csv (path or DataFrame); ``variations``: the (model,
    variation) pairs to map (default: each row's model and best variation); each is
    drawn at its model's ``best_setting``, from the file of ``processed`` (the
    processed files to choose from) of that model, variation and processing;
    :class:`MapError` names a needed one that is not among them. ``manifest``: the
    clips' labels (manifest.csv or a DataFrame with ``fname``, ``labels``); a mapped
    clip not in it is :data:`MIXED`. ``families``: family -> labels or
    families.json. ``seed``: t-SNE's ``random_state`` (the config's
    ``evaluation.seed``). A variation with fewer than :data:`MIN_CLIPS` clips gets a
    placeholder figure saying so (the workflow's outputs stay fixed)."""
    from soundsim.figures import placeholder, save
    from soundsim.tables import read_table

    mdf = read_table(models) if not isinstance(models, pd.DataFrame) else models
    if isinstance(families, (str, Path)):
        from soundsim.datasets.common import read_families

        families = read_families(families)
    labels = _labels_of(manifest)
    files = processed_index(processed)
    pairs = list(variations) if variations is not None else [
        (str(m), str(v)) for m, v in zip(mdf["model"], mdf["variation"], strict=True)]
    out = Path(out_dir)
    written: list[Path] = []
    for model, variation in pairs:
        best_variation, setting = model_setting(mdf, model)
        processing = L.parse_setting(setting).processing
        key = (str(model), str(variation), processing)
        if key not in files:
            raise MapError(f"no processed file of {'/'.join(key)} among the {len(files)} given "
                           f"(the models.csv setting of {model}: {setting})")
        fnames, X = map_vectors(files[key], setting)
        if len(fnames) < MIN_CLIPS:
            log.warning("%s/%s: %d clip(s), too few to map; its map is a placeholder", model, variation,
                        len(fnames))
            written += placeholder(out / L.map_figure_name(model, variation),
                                   f"{model} / {variation}: {len(fnames)} clip(s), too few for a map "
                                   f"(at least {MIN_CLIPS})", collection)
            continue
        coords = embedding_map(X, seed)
        groups = clip_families([labels.get(f, []) for f in fnames], families)
        title = map_title(model, variation, setting, len(fnames), best_variation=variation == best_variation,
                          perplexity=perplexity_for(len(fnames)), seed=seed, collection=collection)
        written += save(plot_map(coords, groups, title), out / L.map_figure_name(model, variation))
        log.info("map of %s/%s at %s: %d clips, %d families", model, variation, setting, len(fnames),
                 len(set(groups) - {MIXED}))
    return written

