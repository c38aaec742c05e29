"""Embedding processing: frame aggregation, the model's normalisation, PCA.

Each model declares its processing order (``ModelInfo.processing``, recorded in
the embeddings file as the attribute ``processing``; :data:`PROCESSING`),
following the authors' two reference scripts, raraz15/semantic-sound-similarity:

``l2-pca`` (every deep model; ``code/create_clip_level_embedding.py``, the version
whose usage the final README documents, commit 927caed):

1. ``aggregate_frames`` (lines ~17-48): mean / median / max over a clip's
   frames; ``none`` takes the single row and raises when a clip has more than one.
2. L2-normalise every clip vector, *unconditionally* (lines ~125-132:
   ``embeddings = np.vstack([normalize_embedding(e) for e in embeddings])``,
   ``normalize_embedding`` = ``e / np.linalg.norm(e)``).
3. ``PCA(n_components=N).fit_transform`` fitted on the evaluated collection,
   only when ``-N != -1`` (lines ~134-139).
4. L2-normalise again only with ``--normalization`` (lines ~146-155). The
   plotting code (``code/lib/plotting/single_model_multi_variations.py``,
   "When norm_true all 3 are equal") labels ``dot`` search on ``Norm_True``
   vectors MCSS, ``dot`` on ``Norm_False`` MIPS and ``nn`` on ``Norm_False``
   NNS. So the PCA output is re-normalised for MCSS only; MIPS and NNS see
   the (unit-norm-before-PCA) PCA output as it is. With ``pca='none'`` the
   vectors are already unit length and the three searches rank alike.

``minmax-pca`` (Freesound's Essentia descriptors;
``code/freesound-create_clip_level_embedding.py``):

1. the clip vector (one row: the extractor's 846 statistics);
2. min-max scaling of every dimension over the evaluated collection,
   ``(x - min) / (max - min)`` (sklearn's ``MinMaxScaler``; :func:`minmax_scale`);
3. PCA as above when asked for; *no* L2 normalisation before it;
4. as above: MCSS compares by cosine; MIPS and NNS see the vectors as they are.
   So here the three searches differ even without PCA: MIPS on vectors of
   different lengths favours long vectors (the collapse the paper's Freesound
   baseline shows under MIPS), NNS compares in the [0, 1] cube.

soundsim does 1-3 here (:func:`process`) and step 4 inside the search, as the
cosine ``<a,b>/(|a||b|)`` of the PCA output (:mod:`soundsim.search`), which
is the inner product of the re-normalised vectors.
:func:`normalize_for_search` gives the final vectors explicitly.

Choices soundsim makes where the reference leaves it open:

* PCA uses an exact solver: ``svd_solver='covariance_eigh'`` when N >= D
  (eigendecomposition of the D x D covariance; ~5x faster than the SVD for
  FSD50K-sized inputs), else ``'full'`` (LAPACK SVD). Both are deterministic
  (scikit-learn fixes the signs, ``svd_flip``) and agree to ~1e-12, so the
  result does not depend on a random seed; ``random_state=seed`` is passed
  anyway and recorded. The reference used the default solver ('auto', which
  may pick a randomised SVD for large inputs).
* A zero clip vector cannot be L2-normalised (the reference would produce NaN
  and fail its ``np.allclose(1, norms)`` assertion): :class:`ProcessingError`
  names the clip(s); remove them from the collection. The same holds for a PCA
  output row that is exactly zero when the search is MCSS.
* Aggregation and normalisation are computed in float64 (the reference reads
  JSON floats as float64); :func:`process` returns float64: the search
  proposes candidates in float32 and decides in float64 (:mod:`soundsim.search`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from sklearn.decomposition import PCA

from soundsim.errors import SoundsimError, first_few

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "median", "max", "none")
#: processing orders a model can declare (see the module docstring)
PROCESSING = {
    "l2-pca": "aggregate -> L2-normalise -> PCA",
    "minmax-pca": "aggregate -> min-max scale over the collection -> PCA",
}
_SKLEARN_HAS_COVARIANCE_EIGH = tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 5)
#: values gathered at once by :func:`aggregate` (bounds its temporary memory)
_GATHER_ELEMENTS = 1 << 24


class ProcessingError(SoundsimError):
    """Embeddings cannot be processed as asked (names the clips or setting at fault)."""



def _names(fnames: Sequence[str] | None, idx: np.ndarray) -> list[str]:
    return [repr(fnames[i]) if fnames is not None else f"#{i}" for i in idx]


def aggregate(
    embeddings: np.ndarray,
    offsets: np.ndarray,
    method: str,
    fnames: Sequence[str] | None = None,
) -> np.ndarray:
    """Clip vectors (N, D), float64, from frame rows: clip i owns
    ``embeddings[offsets[i]:offsets[i+1]]`` (no clip may be empty).

    * ``mean``: (1/F_i) sum_f e_f, summed in float64;
    * ``max``: element-wise max over frames;
    * ``median``: element-wise median over frames (as ``np.median``: the mean
      of the two middle values for an even count);
    * ``none``: the clip's only row; :class:`ProcessingError` when a clip has
      more than one row (a frame-level file needs an aggregation).

    Clips are grouped by frame count; each group (in chunks of at most
    ~``_GATHER_ELEMENTS`` values) is gathered into one (clips, frames, D)
    array and reduced over its frame axis in one call.
    """
    if method not in AGGREGATIONS:
        raise ProcessingError(f"unknown aggregation {method!r}; allowed: {', '.join(AGGREGATIONS)}")
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    n = counts.size
    if n == 0:
        raise ProcessingError("no clips to aggregate")
    if np.any(counts <= 0):
        bad = np.flatnonzero(counts <= 0)
        raise ProcessingError(f"{len(bad)} empty clip(s): {first_few(_names(fnames, bad))}")
    starts = offsets[:-1]
    if method == "none":
        multi = np.flatnonzero(counts != 1)
        if multi.size:
            shown = [f"{nm} ({int(counts[i])} rows)" for nm, i in zip(_names(fnames, multi), multi, strict=True)]
            raise ProcessingError(
                f"aggregation 'none' needs exactly one row per clip, but {multi.size} clip(s) have several: "
                f"{first_few(shown)}; use mean, median or max for frame-level embeddings"
            )
        return embeddings[starts].astype(np.float64)
    # clips grouped by frame count: each group is one stacked (clips, frames, D)
    # array reduced over its frame axis (much faster than ufunc.reduceat)
    reduce = {"mean": _mean_frames, "max": _max_frames, "median": _median_frames}[method]
    out = np.empty((n, embeddings.shape[1]), dtype=np.float64)
    order = np.argsort(counts, kind="stable")
    bounds = np.flatnonzero(np.diff(counts[order])) + 1
    d = max(1, embeddings.shape[1])
    for group in np.split(order, bounds):
        c = int(counts[group[0]])
        step = max(1, _GATHER_ELEMENTS // (c * d))
        for i in range(0, group.size, step):
            g = group[i : i + step]
            rows = starts[g][:, None] + np.arange(c)  # (g, c)
            out[g] = reduce(embeddings[rows])
    return out


def _mean_frames(a: np.ndarray) -> np.ndarray:
    """(g, c, D) -> (g, D): sum in float64, divided by c."""
    return a.sum(axis=1, dtype=np.float64) / a.shape[1]


def _max_frames(a: np.ndarray) -> np.ndarray:
    return a.max(axis=1).astype(np.float64)


def _median_frames(a: np.ndarray) -> np.ndarray:
    """(g, c, D) -> (g, D): the middle value, or the mean of the two middle
    values (in float64) for even c; equal to ``np.median(a, axis=1)``."""
    c = a.shape[1]
    srt = np.sort(np.ascontiguousarray(a.transpose(0, 2, 1)), axis=-1)  # (g, D, c), sorted frames
    if c % 2:
        return srt[..., c // 2].astype(np.float64)
    return (srt[..., c // 2 - 1].astype(np.float64) + srt[..., c // 2]) / 2


def l2_normalize(X: np.ndarray, fnames: Sequence[str] | None = None, stage: str = "clip vectors") -> np.ndarray:
    """``x / ||x||_2`` per row (float64). A zero row has no direction:
    :class:`ProcessingError` naming the clip(s) (never NaN)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    zero = np.flatnonzero(~(norms > 0))
    if zero.size:
        raise ProcessingError(
            f"{zero.size} clip(s) have an all-zero vector ({stage}), which cannot be L2-normalised: "
            f"{first_few(_names(fnames, zero))}; leave them out of the collection"
        )
    if not np.all(np.isfinite(norms)):
        bad = np.flatnonzero(~np.isfinite(norms))
        raise ProcessingError(f"non-finite norm ({stage}) for clip(s) {first_few(_names(fnames, bad))}")
    return X / norms[:, None]


def parse_pca(value: int | str | None) -> int | None:
    """``100`` / ``'100'`` -> 100; ``None`` / ``'none'`` -> None (no PCA)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ProcessingError(f"PCA setting {value!r}: expected a positive integer or 'none'") from None
    if isinstance(value, float) and value != k:
        raise ProcessingError(f"PCA setting {value!r}: expected a positive integer or 'none'")
    if k < 1:
        raise ProcessingError(f"PCA setting {value!r}: the number of components must be >= 1")
    return k


def pca_label(value: int | str | None) -> str:
    """The name used in output folders: ``100`` or ``none``."""
    k = parse_pca(value)
    return "none" if k is None else str(k)


def pca_solver(n: int, d: int) -> str:
    """The exact, deterministic scikit-learn solver used for an N x D input:
    ``'covariance_eigh'`` (eigendecomposition of the D x D covariance, O(N D^2))
    when N >= D (scikit-learn >= 1.5), else ``'full'`` (LAPACK SVD of the
    data). Neither is random."""
    return "covariance_eigh" if n >= d and _SKLEARN_HAS_COVARIANCE_EIGH else "full"


def pca_reduce(X: np.ndarray, n_components: int | str | None, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Project the rows of ``X`` (N, D) on their first ``n_components``
    principal components: ``(X - mean) V_k`` with ``V_k`` the top right singular
    vectors of the centred data, fitted on ``X`` itself
    (``sklearn.decomposition.PCA(n_components, svd_solver=pca_solver(N, D),
    random_state=seed).fit_transform``). ``None``/'none' returns ``X``.
    Returns (float64 result, info with the solver and explained variance).
    Raises :class:`ProcessingError` when ``n_components > min(N, D)``."""
    k = parse_pca(n_components)
    X = np.asarray(X, dtype=np.float64)
    if k is None:
        return X, {"pca": "none"}
    n, d = X.shape
    if k > min(n, d):
        raise ProcessingError(
            f"PCA with {k} components is impossible for {n} clips of dimension {d}: "
            f"n_components must be <= min(N, D) = {min(n, d)}"
        )
    Z, model = _fit_pca(X, k, seed)
    info = {
        "pca": k,
        "svd_solver": model.svd_solver,
        "random_state": seed,
        "explained_variance_ratio": float(np.sum(model.explained_variance_ratio_)),
    }
    return Z, info


def _fit_pca(X: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, PCA]:
    """``PCA(k, svd_solver=pca_solver(N, D), random_state=seed).fit_transform(X)`` and the model."""
    model = PCA(n_components=k, svd_solver=pca_solver(*X.shape), random_state=seed)
    return model.fit_transform(X), model


def minmax_scale(X: np.ndarray) -> np.ndarray:
    """Each column scaled to [0, 1] by its minimum and maximum over the rows,
    ``(x - min) / (max - min)``, in float64; a constant column becomes 0.
    As sklearn's ``MinMaxScaler`` (which the reference uses), except that
    sklearn leaves ranges below ~1e-15 unscaled: some Essentia statistics
    (e.g. ``spectral_decrease.var``, ~1e-17) live there and are scaled here."""
    x = np.asarray(X, dtype=np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = hi - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)


def processing_order(attrs: Mapping[str, Any]) -> str:
    """The processing order an embeddings file asks for: its ``processing``
    attribute (``l2-pca`` when absent; files of soundsim < 0.2 that were
    min-max scaled at merge say ``collection_transform='minmax'``)."""
    order = str(attrs.get("processing") or "")
    if not order:
        order = "minmax-pca" if attrs.get("collection_transform") == "minmax" else "l2-pca"
    if order not in PROCESSING:
        raise ProcessingError(f"unknown processing order {order!r}; allowed: {', '.join(PROCESSING)}")
    return order


def normalise(X_agg: np.ndarray, order: str, fnames: Sequence[str] | None = None, stage: str = "clip vectors"
              ) -> np.ndarray:
    """Step 2 of ``order``: L2 (``l2-pca``) or min-max over the rows
    (``minmax-pca``) of the aggregated clip vectors, float64."""
    if order == "l2-pca":
        return l2_normalize(X_agg, fnames, stage)
    if order == "minmax-pca":
        return minmax_scale(X_agg)
    raise ProcessingError(f"unknown processing order {order!r}; allowed: {', '.join(PROCESSING)}")


def process(
    X_agg: np.ndarray,
    pca: int | str | None,
    fnames: Sequence[str] | None = None,
    seed: int = 0,
    order: str = "l2-pca",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Steps 2-3 of ``order``: normalise the clip vectors (:func:`normalise`),
    then PCA (or not). Returns the float64 matrix MIPS and NNS search, and the
    PCA info. MCSS re-normalises it (step 4) inside :mod:`soundsim.search`."""
    Z, info = pca_reduce(normalise(X_agg, order, fnames, "aggregated clip vectors"), pca, seed)
    if not np.all(np.isfinite(Z)):
        raise ProcessingError("PCA output is not finite")
    return Z, {"order": order, **info}


def normalize_for_search(Z: np.ndarray, search: str, fnames: Sequence[str] | None = None) -> np.ndarray:
    """The final vectors of the reference pipeline for ``search`` (float64): the
    PCA output L2-normalised again for ``mcss``, unchanged for ``mips``/``nns``."""
    if search == "mcss":
        return l2_normalize(Z, fnames, "PCA output, before cosine search")
    return np.asarray(Z, dtype=np.float64)


# --------------------------------------------------------------------------- fitted processing


@dataclass
class FittedProcessing:
    """The processing of one setting, fitted on a collection, to apply to new clips exactly as
    the collection was processed (a similarity service's queries and additions).

    ``transform`` of a clip's frames (F, D): aggregate (``aggregation``), then step 2 of
    ``order`` with the *stored* statistics (L2: ``x/|x|``; min-max: ``(x - lo) / span``
    where ``span > 0``, else 0, with the collection's ``lo`` and ``span``; a new clip may
    fall outside [0, 1]), then the stored PCA ``(x - mean) C^T`` (``C``: the components,
    k x D), or nothing for ``pca = None``. The result is the processing output ``Z``
    (:func:`process`); the search's final normalisation is the search's (MCSS: cosine).
    A collection clip transformed this way reproduces its row of ``Z`` to ~1e-12
    (``fit_transform`` and ``transform`` differ only in rounding)."""

    aggregation: str
    order: str
    pca: int | None
    seed: int = 0
    lo: np.ndarray | None = None
    span: np.ndarray | None = None
    mean: np.ndarray | None = None
    components: np.ndarray | None = None
    dim_in: int = -1  # the clip vectors' dimension D (-1: not recorded)

    @property
    def dim(self) -> int:
        """Dimension of the processing output: k with PCA, else D (-1 when not recorded)."""
        if self.components is not None:
            return int(self.components.shape[0])
        if self.dim_in >= 0:
            return int(self.dim_in)
        return int(self.lo.shape[0]) if self.lo is not None else -1

    def transform_clip_vectors(self, X_agg: np.ndarray, fnames: Sequence[str] | None = None) -> np.ndarray:
        """Steps 2-3 with the stored statistics, for aggregated clip vectors (n, D) -> (n, k)."""
        X = np.atleast_2d(np.asarray(X_agg, dtype=np.float64))
        if self.dim_in >= 0 and X.shape[1] != self.dim_in:
            raise ProcessingError(f"clip vectors of dimension {X.shape[1]}, but the processing was fitted on "
                                  f"dimension {self.dim_in} (embeddings of another model or variation?)")
        if self.order == "l2-pca":
            X = l2_normalize(X, fnames, "new clip vectors")
        elif self.order == "minmax-pca":
            assert self.lo is not None and self.span is not None
            X = np.where(self.span > 0, (X - self.lo) / np.where(self.span > 0, self.span, 1.0), 0.0)
        else:
            raise ProcessingError(f"unknown processing order {self.order!r}")
        if self.components is not None:
            assert self.mean is not None
            X = (X - self.mean) @ self.components.T
        return X

    def transform(self, frames: Sequence[np.ndarray], fnames: Sequence[str] | None = None) -> np.ndarray:
        """Clips' frame arrays (each (F_i, D)) -> processing output (n, k), float64."""
        if not len(frames):
            raise ProcessingError("no clips to transform")
        rows = [np.atleast_2d(np.asarray(f)) for f in frames]
        offsets = np.concatenate([[0], np.cumsum([r.shape[0] for r in rows])])
        X = aggregate(np.concatenate(rows, axis=0), offsets, self.aggregation, fnames)
        return self.transform_clip_vectors(X, fnames)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """For ``np.savez``: every field, scalars as 0-d arrays, missing arrays left out."""
        out: dict[str, np.ndarray] = {"aggregation": np.array(self.aggregation), "order": np.array(self.order),
                                      "pca": np.array(-1 if self.pca is None else self.pca), "seed": np.array(self.seed),
                                      "dim_in": np.array(self.dim_in)}
        for k in ("lo", "span", "mean", "components"):
            v = getattr(self, k)
            if v is not None:
                out[k] = np.asarray(v, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, a: Mapping[str, np.ndarray]) -> FittedProcessing:
        pca = int(a["pca"])
        return cls(str(a["aggregation"]), str(a["order"]), None if pca < 0 else pca, int(a["seed"]),
                   *(np.asarray(a[k]) if k in a else None for k in ("lo", "span", "mean", "components")),
                   dim_in=int(a["dim_in"]) if "dim_in" in a else -1)


def fit_processing(
    embeddings: np.ndarray, offsets: np.ndarray, aggregation: str, pca: int | str | None, order: str = "l2-pca",
    seed: int = 0, fnames: Sequence[str] | None = None,
) -> tuple[np.ndarray, FittedProcessing]:
    """The collection's processing output ``Z`` (exactly :func:`aggregate` then :func:`process`,
    as the evaluation computes it) and the :class:`FittedProcessing` that applies it to new clips."""
    X = aggregate(embeddings, offsets, aggregation, fnames)
    lo = span = None
    if order == "minmax-pca":
        lo = X.min(axis=0)
        span = X.max(axis=0) - lo
    Xn = normalise(X, order, fnames, "aggregated clip vectors")
    k = parse_pca(pca)
    mean = comps = None
    if k is None:
        Z = Xn
    else:
        n, d = Xn.shape
        if k > min(n, d):
            raise ProcessingError(f"PCA with {k} components is impossible for {n} clips of dimension {d}")
        Z, model = _fit_pca(Xn, k, seed)
        mean, comps = model.mean_.astype(np.float64), model.components_.astype(np.float64)
    if not np.all(np.isfinite(Z)):
        raise ProcessingError("PCA output is not finite")
    return Z, FittedProcessing(aggregation, order, k, seed, lo, span, mean, comps, dim_in=int(X.shape[1]))
