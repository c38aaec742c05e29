"""Names of the metrics: one owner for what a per-query column is called, what
its average is called, in which order they are listed, which way is better and
what values they can take.

Per-query columns (``per_query.parquet``, one row per class-wise query) and the
averages they give (``summary.json``, ``per_label.csv``, the tables):

========================  ======================  ==========================================
per-query column          average                 what (see :mod:`soundsim.metrics`, :mod:`soundsim.panel`)
========================  ======================  ==========================================
``ap@<N>``                ``map@<N>``             the paper's AP@N (normalised by min(N, n_L))
``r1``                    ``mr1``                 the paper's 0-based rank of the first relevant clip
``ndcg@<k>``              ``ndcg@<k>``            graded nDCG@k (ontology or family gains)
``bndcg@<k>``             ``bndcg@<k>``           binary nDCG@k (relevant = carries the label)
``rr``                    ``mrr``                 reciprocal rank 1 / (r1 + 1)
``recall@<k>``            ``recall@<k>``          relevant clips in the top k / relevant clips
``p@<k>``                 ``p@<k>``               relevant clips in the top k / k
``rprec``                 ``rprec``               R-precision: p@R with R = relevant clips
========================  ======================  ==========================================

The paper's metrics (``map@<N>``, ``mr1``) come first and stay what every
"best setting" is chosen by; the panel follows in the order above, cutoffs
increasing. Every metric but ``mr1`` is better when higher and lies in [0, 1];
``mr1`` is a rank in [0, inf).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

#: (per-query column pattern, average pattern); ``{k}`` a positive cutoff
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("ap@{k}", "map@{k}"),
    ("r1", "mr1"),
    ("ndcg@{k}", "ndcg@{k}"),
    ("bndcg@{k}", "bndcg@{k}"),
    ("rr", "mrr"),
    ("recall@{k}", "recall@{k}"),
    ("p@{k}", "p@{k}"),
    ("rprec", "rprec"),
)

#: metrics of the paper (section III-B); the rest is the panel
PAPER_METRICS = ("map", "mr1")


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(re.escape("{k}"), r"(\d+)") + "$")


_QUERY_RE = [(_regex(q), a, i) for i, (q, a) in enumerate(_FAMILIES)]
_MEAN_RE = [(_regex(a), q, i) for i, (q, a) in enumerate(_FAMILIES)]


class UnknownMetric(ValueError):
    """A name that is not a metric column."""


def _match(name: str, table: list[tuple[re.Pattern[str], str, int]]) -> tuple[str, int, int] | None:
    for rx, other, i in table:
        m = rx.match(name)
        if m:
            k = int(m.group(1)) if m.groups() else 0
            if m.groups() and k < 1:
                return None
            return other.replace("{k}", str(k)), i, k
    return None


def average_of(column: str) -> str:
    """Per-query column -> its average: ``ap@15`` -> ``map@15``, ``r1`` -> ``mr1``,
    ``rr`` -> ``mrr``, ``ndcg@15`` -> ``ndcg@15``. :class:`UnknownMetric` otherwise."""
    m = _match(str(column), _QUERY_RE)
    if m is None:
        raise UnknownMetric(f"not a per-query metric column: {column!r}")
    return m[0]


def column_of(metric: str) -> str:
    """Average -> its per-query column (the inverse of :func:`average_of`)."""
    m = _match(str(metric), _MEAN_RE)
    if m is None:
        raise UnknownMetric(f"not a metric: {metric!r}")
    return m[0]


def is_query_column(name: str) -> bool:
    return _match(str(name), _QUERY_RE) is not None


def is_metric(name: str) -> bool:
    return _match(str(name), _MEAN_RE) is not None


def _sorted(names: Iterable[str], table: list[tuple[re.Pattern[str], str, int]]) -> list[str]:
    keyed = []
    for n in set(map(str, names)):
        m = _match(n, table)
        if m is not None:
            keyed.append(((m[1], m[2]), n))
    return [n for _, n in sorted(keyed)]


def query_columns(names: Iterable[str]) -> list[str]:
    """The per-query metric columns among ``names``, in canonical order (others dropped)."""
    return _sorted(names, _QUERY_RE)


def metric_names(names: Iterable[str]) -> list[str]:
    """The metric names among ``names``, in canonical order (others dropped):
    ``map@<N>`` increasing, ``mr1``, then the panel (module docstring)."""
    return _sorted(names, _MEAN_RE)


def is_paper_metric(metric: str) -> bool:
    """``map@<N>`` or ``mr1``: the paper's metrics."""
    return str(metric) == "mr1" or str(metric).startswith("map@")


def higher_is_better(metric: str) -> bool:
    """Every metric but ``mr1`` (a rank)."""
    if not is_metric(metric):
        raise UnknownMetric(f"not a metric: {metric!r}")
    return str(metric) != "mr1"


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: ``mr1`` in [0, inf), every other in [0, 1]."""
    return (0.0, math.inf) if not higher_is_better(metric) else (0.0, 1.0)
