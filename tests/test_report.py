"""The Snakemake report and the table pages it shows (soundsim.table_pages).

The pages are checked on tables written by the real evaluator and soundsim.tables; the
report is built for real (`snakemake --report`) on a tiny demo run and read back from the
self-contained HTML: Snakemake embeds its data as JavaScript literals (``var categories =
{...};``, ``var results = {...};`` with each file as a base64 data URI, ``var
workflow_desc = "...";``), one per line."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from soundsim import layout as L
from soundsim import table_pages as P
from soundsim import tables as T
from soundsim.evaluate import evaluate_grid
from soundsim.fileutil import write_csv_atomic
from soundsim.store import read_embeddings, write_embeddings

from conftest import ROOT

LABELS = ["Bark", "Meow", "Rain", "Wind"]
FAMILIES = {"Animal": ["Bark", "Meow"], "Natural_sounds": ["Rain", "Wind"]}


class _Cells(HTMLParser):
    """The header and body cells of the (first) table of an HTML document, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def cells(html_text: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(html_text)
    return parser.rows


def markdown_rows(md: str) -> list[list[str]]:
    """The table rows of models.md (header first, the alignment row left out)."""
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in rows]


@pytest.fixture(scope="module")
def tables_dir(tmp_path_factory) -> dict[str, Path]:
    """Tables written by soundsim.tables over a real evaluation: two clip-level
    models, 24 clips, PCA 5 (the fixed setting here) and none."""
    root = tmp_path_factory.mktemp("pages")
    rng = np.random.default_rng(2)
    fnames = [f"c{i:02d}" for i in range(24)]
    labels = [[LABELS[i % 4]] for i in range(24)]
    clips = pd.DataFrame({"fname": fnames, "labels": labels})
    for model in ("alpha", "beta"):
        centres = {lab: rng.standard_normal(8) * 2 for lab in LABELS}
        data = [(centres[labs[0]] + 2.0 * rng.standard_normal((1, 8))).astype(np.float32) for labs in labels]
        h5 = write_embeddings(root / f"{model}.h5", fnames, data, {"model": model, "variation": "v", "level": "clip"})
        evaluate_grid(read_embeddings(h5), clips, FAMILIES, pcas=[5, "none"], out_dir=root / "metrics" / model / "v")
    return T.write_tables(L.find_settings(root / "metrics"), root / "tables", registry={}, n_resamples=50)


def test_table_page_renders_every_row_with_its_numbers(tables_dir, tmp_path):
    # labels.csv at PCA 5 (write_tables' fixed setting, PCA 100, was not evaluated: its labels.csv is empty)
    models5 = T.models_table(T.read_table(tables_dir["all_settings"]), registry={}, pca="5")
    settings = L.find_settings(tables_dir["all_settings"].parent.parent / "metrics")
    labels5 = write_csv_atomic(T.labels_table(settings, models5), tmp_path / "labels.csv")
    out = P.write_table_pages({"all_settings": tables_dir["all_settings"], "labels": labels5},
                              {"all_settings": tmp_path / "all_settings.html", "labels": tmp_path / "labels.html"},
                              collection="toy")
    df = pd.read_csv(tables_dir["all_settings"])
    rows = cells(out["all_settings"].read_text())
    assert rows[0] == list(df.columns)  # header: the CSV's columns, no index
    assert len(rows) == 1 + len(df)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["model"] == "alpha" and first["setting"] == df["setting"][0]
    assert first["map@15"] == f"{df['map@15'][0]:.3f}" and first["mr1"] == f"{df['mr1'][0]:.2f}"
    assert first["n_clips"] == "24" and first["pca"] == str(df["pca"][0])
    text = out["all_settings"].read_text()
    assert "Data: tables/all_settings.csv" in text and "(toy)" in text and "position: sticky" in text
    assert text == P.table_page(T.read_table(tables_dir["all_settings"]),
                                "Every evaluated setting (the data of Fig. 1) (toy)", "tables/all_settings.csv",
                                f"{len(df)} row(s).")  # deterministic: the same table, the same bytes
    labels = pd.read_csv(labels5)
    rows = cells(out["labels"].read_text())
    assert len(labels) == 2 * 4 and len(rows) == 1 + len(labels)  # 2 models x 4 labels
    bark = dict(zip(rows[0], rows[1], strict=True))
    assert bark["label"] == "Bark" and bark["map@15"] == f"{labels['map@15'][0]:.3f}" and bark["n_clips"] == "6"


def test_format_value():
    assert P.format_value(float("nan"), "map@15") == "n/a"
    assert P.format_value(0.123456, "map@15") == "0.123" and P.format_value(2.4567, "best_mr1_hi") == "2.46"
    assert P.format_value(0.000123456, "p_holm") == "0.000123" and P.format_value(512.0, "dims") == "512"
    assert P.format_value(1.0, "map@15") == "1.000" and P.format_value(True, "significant") == "True"


def test_models_page_shows_the_table_of_models_md(tables_dir, tmp_path):
    out = P.write_table_pages({"models": tables_dir["models"]}, {"models": tmp_path / "models.html"},
                              collection="toy", confidence=0.95)["models"]
    page = out.read_text()
    md = tables_dir["models_md"].read_text()
    assert cells(page) == markdown_rows(md)  # the same headers and cells, e.g. "0.412 [0.301, 0.520]"
    header = cells(page)[0]
    assert re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", cells(page)[1][header.index("best MAP@15 ↑")])
    assert cells(page)[1][header.index("MAP@15 ↑")] == "n/a"  # the fixed setting (PCA 100) was not evaluated
    intro = md.split("\n\n")[1]
    assert intro.replace("'", "&#x27;") in page
    note = "alpha: fixed setting agg-none_pca-100_search-mcss was not evaluated"
    assert note in md and f"<li>{note}" in page  # the notes of models.md too


def test_write_table_pages_errors(tables_dir, tmp_path):
    with pytest.raises(P.TablePagesError, match="unknown table page"):
        P.write_table_pages({}, {"nosuch": tmp_path / "x.html"})
    with pytest.raises(P.TablePagesError, match="table page 'labels': no CSV given"):
        P.write_table_pages({"models": tables_dir["models"]}, {"labels": tmp_path / "labels.html"})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the real report


def _report_vars(html_text: str) -> dict[str, object]:
    """Snakemake's embedded data: categories, results, workflow_desc."""
    out = {}
    for name in ("categories", "results", "workflow_desc"):
        m = re.search(rf"^[ \t]*var {name} = ([{{\"].*);[ \t]*$", html_text, flags=re.M)  # a JSON literal
        assert m, f"report: no 'var {name} = ...;' line"
        out[name] = json.loads(m.group(1))
    return out


def _decoded(entry: dict) -> str:
    return base64.b64decode(entry["data_uri"].split("base64,", 1)[1]).decode("utf-8")


@pytest.mark.slow
def test_report_of_a_tiny_demo_run(venv_bin, tmp_path):
    """aisfx on the demo (2 clips per class), PCA 10 and none: the real run, then the real report."""
    cfg = {"collection": {"name": "demo", "kind": "demo", "clips_per_class": 2},
           "models": {"aisfx": {"variations": ["x-sequential-ce"]}}, "extraction": {"shards": 1},
           "grid": {"aggregations": ["mean", "max"], "pca": [10, "none"], "searches": ["mips", "mcss", "nns"]},
           "evaluation": {"n_resamples": 100}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    base = [str(venv_bin / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "2"]
    run = subprocess.run(base, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    rep = subprocess.run(base + ["--report", str(tmp_path / "report.html")], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:]
    text = (tmp_path / "report.html").read_text()
    assert text.count("mailto:") == 0  # no caption turned "MAP@15" into an e-mail link
    assert "System Message" not in text  # no docutils warning (e.g. two results with the same file name)
    data = _report_vars(text)
    categories, results = data["categories"], data["results"]
    # every result in a named category and subcategory
    assert set(categories) == {"Tables", "Figures"}
    assert all(sub != "Other" for subs in categories.values() for sub in subs), categories
    res = "results/demo"
    figures = {f"{res}/figures/{f}.png" for f in ("grid/aisfx__x-sequential-ce", "grid/aisfx__x-sequential-ce_heatmap",
                                                  "models", "significance", "precision_at_k", "families",
                                                  "per_label", "ranks", "maps/aisfx__x-sequential-ce")}
    assert {p for subs in categories["Figures"].values() for p in subs} == figures
    pages = {f"{res}/tables/{n}.html" for n in ("models", "best_settings", "pairwise", "all_settings", "families",
                                                "labels", "collection_labels")}
    assert {p for subs in categories["Tables"].values() for p in subs} == pages
    assert all(results[p]["mime_type"] == "text/html" for p in pages)  # shown inside the report, not a download
    # tables/labels.csv and tables/models.md are in it, rendered
    labels_csv = pd.read_csv(tmp_path / res / "tables" / "labels.csv")
    rows = cells(_decoded(results[f"{res}/tables/labels.html"]))
    assert rows[0] == list(labels_csv.columns) and len(rows) == 1 + len(labels_csv)
    md = (tmp_path / res / "tables" / "models.md").read_text()
    assert cells(_decoded(results[f"{res}/tables/models.html"])) == markdown_rows(md)
    collection_labels = pd.read_csv(tmp_path / res / "labels.csv")
    assert len(cells(_decoded(results[f"{res}/tables/collection_labels.html"]))) == 1 + len(collection_labels)
    # captions rendered, with MAP@15 as text
    assert "MAP&#64;15" in results[f"{res}/figures/grid/aisfx__x-sequential-ce.png"]["caption"]
    # the landing page says what was run and where to look
    desc = data["workflow_desc"]
    for needle in ("semantic sound similarity on <em>demo</em>", "2 clips per class", "aisfx",
                   "(x-sequential-ce)", "PCA 10, none", "MIPS, MCSS, NNS", "100 bootstrap resamples",
                   "95 % confidence", "Where to look", "javascript:app.showCategory('Tables')",
                   "models.html"):
        assert needle in desc, needle
