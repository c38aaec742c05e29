"""The result tables as self-contained HTML pages (what the Snakemake report shows).

Snakemake's report shows images, PDFs and HTML pages inside the report and offers
every other file (CSV, Markdown) only as a download link. Each table of
:mod:`soundsim.tables` (and the collection's ``labels.csv``) is therefore also
written as one HTML page: a title, a line naming the CSV it shows, and the table
rendered by pandas' :class:`~pandas.io.formats.style.Styler` (numbers right-aligned,
MAP to 3 decimals, MR1 to 2, p-values to 3 significant digits, ``n/a`` for NaN,
a header row that stays in view while scrolling). The models page shows the table
of ``models.md`` (:func:`soundsim.tables.models_display`: the same headers, cells,
explanation and notes).

* :func:`table_page`: one DataFrame as an HTML document;
* :func:`models_page`: the models table (models.csv) as ``models.md`` shows it;
* :func:`write_table_pages`: every page of a collection, each file atomically.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from soundsim import tables as T
from soundsim.errors import SoundsimError
from soundsim.fileutil import write_text_atomic

log = logging.getLogger(__name__)

#: page name -> (title, what the CSV is); the pages write_table_pages knows
PAGES: dict[str, tuple[str, str]] = {
    "collection_labels": ("Labels of the collection", "labels.csv"),
    "models": ("Semantic sound similarity per model (the paper's Table II)", "tables/models.csv, tables/models.md"),
    "best_settings": ("Best setting per model (the paper's Table I)", "tables/best_settings.csv"),
    "all_settings": ("Every evaluated setting (the data of Fig. 1)", "tables/all_settings.csv"),
    "pairwise": ("Paired tests between models", "tables/pairwise.csv"),
    "families": ("Family-averaged metrics per model (the data of Fig. 2)", "tables/families.csv"),
    "labels": ("Class-wise metrics per label and model", "tables/labels.csv"),
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 13px; margin: 12px;
       color: #1f2328; }
h1 { font-size: 17px; margin: 0 0 4px 0; }
p { margin: 4px 0 10px 0; max-width: 70em; }
p.source { color: #57606a; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; white-space: nowrap; }
th { position: sticky; top: 0; background: #eaeef2; text-align: left; }
tbody tr:nth-child(even) { background: #f6f8fa; }
ul { margin: 4px 0; }
"""


class TablePagesError(SoundsimError):
    """A table page cannot be written (names the table and the problem)."""


def format_value(v: Any, col: str) -> str:
    """One cell as the pages show it: NaN -> ``n/a``; p-values (``p``,
    ``p_holm``) and standard errors (``se``) to 3 significant digits; MR1
    columns to 2 decimals; whole numbers without decimals; other floats to 3
    decimals; everything else as text."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if col in ("p", "p_holm", "se"):
            return f"{v:.3g}"
        if "mr1" in col:
            return f"{v:.2f}"
        if v.is_integer() and not (col.startswith(("map@", "family_", "micro_", "best_map", "paper_"))
                                   or col in ("a_value", "b_value", "diff", "diff_lo", "diff_hi")):
            return str(int(v))
        return f"{v:.3f}"
    return "" if v is None else str(v)


def _formatter(col: str) -> Callable[[Any], str]:
    return lambda v: format_value(v.item() if hasattr(v, "item") else v, col)


def _document(title: str, source: str, intro: str, table_html: str, notes: list[str] | None = None) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    parts.append(f'<p class="source">Data: {html.escape(source)}</p>')
    parts.append(table_html)
    if notes:
        parts.append("<p>Notes:</p><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _styled(df: pd.DataFrame, numeric: list[bool], formatters: Mapping[str, Callable[[Any], str]] | None) -> str:
    """``df`` as an HTML table (no index), numeric columns right-aligned."""
    styler = df.style.hide(axis="index").set_uuid("table")  # fixed ids: the same table, the same bytes
    if formatters:
        styler = styler.format(formatters, na_rep="n/a")
    right = {c: [{"selector": "td", "props": "text-align: right"}] for c, n in zip(df.columns, numeric, strict=True)
             if n}
    if right:
        styler = styler.set_table_styles(right, overwrite=False)
    return styler.to_html()


def table_page(df: pd.DataFrame, title: str, source: str, intro: str = "") -> str:
    """``df`` as a self-contained HTML document: ``title``, ``intro`` (one
    paragraph, optional), ``Data: <source>`` and the table, cells as
    :func:`format_value` writes them."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    df = df.copy()
    for c, n in zip(df.columns, numeric, strict=True):
        if not n and df[c].dtype == object:
            df[c] = df[c].fillna("")  # missing text (e.g. a label in no family): empty, not n/a
    return _document(title, source, intro, _styled(df, numeric, {c: _formatter(str(c)) for c in df.columns}))


def models_page(models_df: pd.DataFrame, collection: str | None = None, confidence: float | None = None) -> str:
    """The models table (models.csv) as an HTML document with the content of
    ``models.md``: its headers, cells (``value [lo, hi]``), explanation and
    notes (:func:`soundsim.tables.models_display`)."""
    table, intro, notes = T.models_display(models_df, confidence, markdown=False)
    title = PAGES["models"][0] + (f" ({collection})" if collection else "")
    return _document(title, PAGES["models"][1], intro, _styled(table, table.attrs["numeric"], None), notes)


def write_table_pages(
    tables: Mapping[str, str | Path],
    outputs: Mapping[str, str | Path],
    collection: str | None = None,
    confidence: float | None = None,
) -> dict[str, Path]:
    """Write one page per name of ``outputs`` (names of :data:`PAGES`) from
    the CSV of the same name in ``tables`` (``models``: models.csv, shown as
    :func:`models_page`; ``collection_labels``: the collection's labels.csv).
    An unknown name or a table without its CSV raises
    :class:`TablePagesError`. Returns name -> written path."""
    unknown = sorted(set(outputs) - set(PAGES))
    if unknown:
        raise TablePagesError(f"unknown table page(s) {', '.join(unknown)}; known: {', '.join(PAGES)}")
    written: dict[str, Path] = {}
    for name, out in outputs.items():
        if name not in tables:
            raise TablePagesError(f"table page {name!r}: no CSV given for it (tables: {', '.join(tables) or 'none'})")
        df = T.read_table(tables[name])
        title, source = PAGES[name]
        if name == "models":
            text = models_page(df, collection, confidence)
        else:
            text = table_page(df, title + (f" ({collection})" if collection else ""), source,
                              f"{len(df)} row(s)." if len(df) else "No rows.")
        written[name] = write_text_atomic(out, text)
    log.info("wrote %d table page(s)", len(written))
    return written
