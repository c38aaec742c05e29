"""The ratings database: ``results/<collection>/listening/ratings.sqlite`` (SQLite).

Schema (version 1)::

    judgements  one submitted form: a listener's ratings of the lists shown for one query
        id INTEGER PRIMARY KEY, created TEXT (ISO 8601, UTC), listener TEXT, collection TEXT,
        query TEXT (fname), query_class TEXT (the class the query stands for), seed INTEGER,
        blind INTEGER (0/1), n_systems INTEGER, best_position INTEGER (0-based position picked
        as best, NULL: none), comment TEXT, page TEXT (the page's query string)
    ratings     one row per list shown
        judgement_id INTEGER -> judgements.id, position INTEGER (0-based order shown),
        system TEXT (<model>/<variation>/<setting>), model, variation, setting, aggregation, pca,
        search TEXT, rating INTEGER (1-5, semantic similarity of the list to the query),
        ap REAL (the query's AP@15 for its class under this system), map REAL (the system's
        macro MAP@15), results TEXT (JSON list of the fnames shown)
    meta        key, value (schema_version)

Each judgement is written in one transaction. :func:`read_ratings` returns one row per
rated list, the judgement's columns joined in.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1
RATING_MIN, RATING_MAX = 1, 5

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS judgements (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created       TEXT    NOT NULL,
    listener      TEXT    NOT NULL,
    collection    TEXT    NOT NULL,
    query         TEXT    NOT NULL,
    query_class   TEXT    NOT NULL,
    seed          INTEGER,
    blind         INTEGER NOT NULL CHECK (blind IN (0, 1)),
    n_systems     INTEGER NOT NULL,
    best_position INTEGER,
    comment       TEXT,
    page          TEXT
);
CREATE TABLE IF NOT EXISTS ratings (
    judgement_id  INTEGER NOT NULL REFERENCES judgements(id),
    position      INTEGER NOT NULL,
    system        TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    variation     TEXT    NOT NULL,
    setting       TEXT    NOT NULL,
    aggregation   TEXT    NOT NULL,
    pca           TEXT    NOT NULL,
    search        TEXT    NOT NULL,
    rating        INTEGER NOT NULL CHECK (rating BETWEEN {RATING_MIN} AND {RATING_MAX}),
    ap            REAL,
    map           REAL,
    results       TEXT    NOT NULL,
    PRIMARY KEY (judgement_id, position)
);
CREATE INDEX IF NOT EXISTS ratings_system ON ratings(system);
"""

RATING_COLUMNS = [
    "judgement_id", "created", "listener", "collection", "query", "query_class", "seed", "blind", "n_systems",
    "best_position", "position", "system", "model", "variation", "setting", "aggregation", "pca", "search",
    "rating", "ap", "map", "best", "results",
]


def connect(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open (and with ``create``, create with its schema) the ratings database."""
    path = Path(path)
    if not create and not path.is_file():
        raise FileNotFoundError(f"{path}: no ratings database")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    con.execute("PRAGMA foreign_keys = ON")
    if create:
        with con:
            con.executescript(SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    return con


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _real(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def add_judgement(
    path: str | Path,
    *,
    listener: str,
    collection: str,
    query: str,
    query_class: str,
    seed: int | None,
    blind: bool,
    lists: Sequence[dict[str, Any]],
    best_position: int | None = None,
    comment: str = "",
    page: str = "",
    created: str | None = None,
) -> int:
    """Store one judgement; ``lists`` in the order shown, each a dict with ``system, model,
    variation, setting, aggregation, pca, search, rating`` and optionally ``ap``, ``map``,
    ``results`` (list of fnames). Returns the judgement id."""
    if not lists:
        raise ValueError("a judgement needs at least one rated list")
    for i, li in enumerate(lists):
        r = li["rating"]
        if not isinstance(r, int) or not RATING_MIN <= r <= RATING_MAX:
            raise ValueError(f"list {i}: rating must be an integer {RATING_MIN}-{RATING_MAX}, got {r!r}")
    if best_position is not None and not 0 <= best_position < len(lists):
        raise ValueError(f"best_position {best_position} is not a shown position (0-{len(lists) - 1})")
    with closing(connect(path)) as con, con:
        cur = con.execute(
            "INSERT INTO judgements(created, listener, collection, query, query_class, seed, blind, n_systems,"
            " best_position, comment, page) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (created or _now(), listener, collection, query, query_class, seed, int(bool(blind)), len(lists),
             best_position, comment, page),
        )
        jid = int(cur.lastrowid)
        con.executemany(
            "INSERT INTO ratings(judgement_id, position, system, model, variation, setting, aggregation, pca,"
            " search, rating, ap, map, results) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (jid, pos, li["system"], li["model"], li["variation"], li["setting"], li["aggregation"],
                 str(li["pca"]), li["search"], int(li["rating"]), _real(li.get("ap")), _real(li.get("map")),
                 json.dumps(list(li.get("results", []))))
                for pos, li in enumerate(lists)
            ],
        )
    return jid


def get_judgement(path: str | Path, jid: int) -> dict[str, Any] | None:
    """One judgement with its ratings (``lists``, by position), or None."""
    if not Path(path).is_file():
        return None
    with closing(connect(path, create=False)) as con:
        con.row_factory = sqlite3.Row
        j = con.execute("SELECT * FROM judgements WHERE id = ?", (jid,)).fetchone()
        if j is None:
            return None
        rows = con.execute("SELECT * FROM ratings WHERE judgement_id = ? ORDER BY position", (jid,)).fetchall()
    return {**dict(j), "lists": [dict(r) for r in rows]}


def rated_systems(path: str | Path) -> list[str]:
    """The distinct systems rated in the database at ``path``, sorted ([] when there is no file).
    Opened read-only: the workflow calls this while planning."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            return sorted(r[0] for r in con.execute("SELECT DISTINCT system FROM ratings"))
    except sqlite3.Error as e:
        raise ValueError(f"{path}: not a readable soundsim ratings database ({e})") from e


def read_ratings(path: str | Path) -> pd.DataFrame:
    """Every rated list, one row each, with its judgement's columns (:data:`RATING_COLUMNS`);
    ``best`` is True for the list picked as best."""
    with closing(connect(path, create=False)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"judgements", "ratings"} <= tables:
            raise ValueError(f"{path}: not a soundsim ratings database (no judgements/ratings tables)")
        df = pd.read_sql_query(
            "SELECT r.judgement_id, j.created, j.listener, j.collection, j.query, j.query_class, j.seed, j.blind,"
            " j.n_systems, j.best_position, r.position, r.system, r.model, r.variation, r.setting,"
            " r.aggregation, r.pca, r.search, r.rating, r.ap, r.map,"
            " (j.best_position IS NOT NULL AND j.best_position = r.position) AS best, r.results"
            " FROM ratings r JOIN judgements j ON j.id = r.judgement_id ORDER BY r.judgement_id, r.position",
            con,
        )
    df["best"] = df["best"].astype(bool)
    for c in ("ap", "map"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df[RATING_COLUMNS]
