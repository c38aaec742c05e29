"""The Flask app: :func:`create_app` (``soundsim listen`` serves it).

Routes:

* ``GET /``: the page; its whole state is in the query string: ``class``, ``query`` (a
  fname; drawn from the class with ``seed`` when absent), ``systems`` (repeated, up to 4
  ``<model>/<variation>/<setting>`` ids; default: each model's best setting), ``seed``,
  ``blind`` (0/1); after a rating also ``rated`` (the judgement id). Invalid values: 400.
  Missing results: 503 with the rule to run.
* ``GET /audio/<fname>``: the audio file the manifest lists for that fname (exact match;
  any other name, a path, ``../``: 404; no directory listing); ranges supported.
* ``POST /rate``: store a judgement in ``results/<collection>/listening/ratings.sqlite`` and
  redirect (303) back to the page, which then reveals blind systems.
"""

from __future__ import annotations

import logging
import math
import random
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, abort, redirect, render_template, request, send_file, url_for
from jinja2 import DictLoader
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from soundsim.webutil import register_host_check
from soundsim.listen import db
from soundsim.listen.pages import TEMPLATES
from soundsim.listen.results import (
    MAX_SYSTEMS,
    TOP_N,
    BadRequest,
    Results,
    ResultsMissing,
    shown_order,
)

log = logging.getLogger(__name__)

MAX_SEED = 2**31 - 1
LISTENER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
SCORE_NAMES = {"mips": "inner product", "mcss": "cosine", "nns": "distance"}


def _fmt(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _int_param(args: Any, name: str, lo: int, hi: int) -> int | None:
    v = args.get(name, "")
    if v == "":
        return None
    if not re.fullmatch(r"\d{1,10}", v) or not lo <= int(v) <= hi:
        raise BadRequest(f"{name} must be an integer {lo}-{hi}, got {v!r}")
    return int(v)


def _bool_param(args: Any, name: str) -> bool:
    v = args.get(name, "0")
    if v in ("", "0", "false", "off"):
        return False
    if v in ("1", "true", "on"):
        return True
    raise BadRequest(f"{name} must be 0 or 1, got {v!r}")


class _State:
    """The page state parsed from the request (or the rating form), validated against the results."""

    def __init__(self, res: Results, args: Any) -> None:
        known = {"class", "query", "systems", "seed", "blind", "rated", "listener"}
        self.res = res
        res.require_systems()
        self.cls = args.get("class", "")
        self.query = args.get("query", "")
        self.seed = _int_param(args, "seed", 0, MAX_SEED)
        self.blind = _bool_param(args, "blind")
        self.rated_id = _int_param(args, "rated", 1, MAX_SEED)
        self.listener = args.get("listener", "")
        if self.listener and not LISTENER_RE.match(self.listener):
            raise BadRequest("listener must be 1-64 letters, digits or . _ @ -")
        unknown = sorted(set(args.keys()) - known)
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}")
        ids = [s for s in args.getlist("systems") if s != ""]
        if "systems" in args:
            if len(ids) > MAX_SYSTEMS:
                raise BadRequest(f"at most {MAX_SYSTEMS} systems, got {len(ids)}")
            dup = sorted({s for s in ids if ids.count(s) > 1})
            if dup:
                raise BadRequest(f"system chosen twice: {dup[0]}")
            self.systems = [res.system(s) for s in ids]
        else:
            self.systems = res.default_systems()
        if self.cls and self.cls not in dict(res.classes()):
            raise BadRequest(f"unknown class {self.cls!r}")
        self.query_chosen = bool(self.query)
        if self.query:
            if res.clip(self.query) is None:
                raise BadRequest(f"unknown clip {self.query!r}: not in the collection's manifest")
            labels = res.labels_of(self.query)
            if not self.cls:
                self.cls = labels[0]
            elif self.cls not in labels:
                raise BadRequest(f"clip {self.query!r} does not carry class {self.cls!r}")

    def params(self, **changes: Any) -> dict[str, Any]:
        p: dict[str, Any] = {"class": self.cls, "query": self.query if self.query_chosen else "",
                             "systems": [s.id for s in self.systems],
                             "seed": "" if self.seed is None else self.seed, "blind": 1 if self.blind else ""}
        p.update(changes)
        return {k: v for k, v in p.items() if v not in ("", None, [])}


def _page_url(params: dict[str, Any]) -> str:
    return url_for("page") + ("?" + urlencode(params, doseq=True) if params else "")


def create_app(results_dir: str | Path = "results", collection: str = "demo", trusted_hosts: list[str] | None = None,
               ratings_db: str | Path | None = None) -> Flask:
    """The listening app over ``<results_dir>/<collection>``. ``trusted_hosts``: the Host header
    values accepted (``soundsim listen`` passes the loopback names when it binds to loopback;
    None accepts any). ``ratings_db`` defaults to ``<results>/<collection>/listening/ratings.sqlite``."""
    res = Results(results_dir, collection)
    app = _new_app(res, ratings_db)
    if trusted_hosts:
        register_host_check(app, trusted_hosts)
    _register_error_pages(app, collection)
    _register_security_headers(app)
    _register_page(app, res, collection)
    _register_audio(app, res)
    _register_rating(app, res, collection)
    return app


def _new_app(res: Results, ratings_db: str | Path | None) -> Flask:
    """The Flask app with the page templates and its config: ``SOUNDSIM_RESULTS`` (the
    :class:`Results`), ``SOUNDSIM_DB`` (the ratings database), a 64 KiB request limit."""
    app = Flask(__name__)
    app.jinja_loader = DictLoader(TEMPLATES)
    app.config.update(SOUNDSIM_RESULTS=res, SOUNDSIM_DB=Path(ratings_db) if ratings_db else res.ratings_path,
                      MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    return app


def _register_error_pages(app: Flask, collection: str) -> None:
    """Errors as the message page: :class:`BadRequest` 400, :class:`ResultsMissing` 503 (with
    the rule to run), HTTP errors their own code, anything else 500 (logged, no details shown)."""

    def message(code: int, title: str, text: str, hint: str = "", back: str = "") -> tuple[str, int]:
        return render_template("message.html", title=title, message=text, hint=hint, back=back,
                               collection=collection), code

    @app.errorhandler(BadRequest)
    def _bad_request(e: BadRequest):
        return message(400, "Bad request", str(e), back=url_for("page"))

    @app.errorhandler(ResultsMissing)
    def _missing(e: ResultsMissing):
        return message(503, "Results missing", str(e), hint=e.hint)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        return message(e.code or 500, f"{e.code} {e.name}", e.description or "")

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        log.exception("internal error on %s", request.path)
        return message(500, "Internal error", "Something went wrong; the server's log has the details.")


def _register_security_headers(app: Flask) -> None:
    """Every response: no MIME sniffing, same-origin referrers, a same-origin content policy."""

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "script-src 'self' 'unsafe-inline'; media-src 'self'; frame-ancestors 'none'")
        return resp


# --------------------------------------------------------------------------- GET /


def _register_page(app: Flask, res: Results, collection: str) -> None:
    """``GET /`` (endpoint ``page``): see the module docstring."""

    @app.get("/")
    def page():
        st = _State(res, request.args)
        if st.cls and not st.query_chosen and st.seed is None:
            # a shareable address: the random draw is fixed by a seed in the URL
            return redirect(_page_url(st.params(seed=random.randrange(MAX_SEED))), code=302)
        if st.cls and not st.systems:
            raise BadRequest("choose at least one system")
        query = _query_view(res, st, app.config["SOUNDSIM_DB"]) if st.cls else {
            "columns": [], "rated": None, "reveal": not st.blind, "query_labels": [], "query_duration": math.nan}
        rated = query["rated"]
        notice = ""
        if rated is not None:
            notice = f"Saved rating #{rated['id']} by {rated['listener']}." + (
                " The systems are revealed below." if st.blind else "")
        return render_template(
            "page.html", collection=collection, n_clips=len(res.manifest()), classes=res.classes(),
            systems=res.systems(), best_ids={s.id for s in res.default_systems()}, max_systems=MAX_SYSTEMS,
            chosen_ids=[s.id for s in st.systems], cls=st.cls, query=st.query, query_chosen=st.query_chosen,
            class_clips=res.clips_of(st.cls) if st.cls else [], seed=st.seed, max_seed=MAX_SEED, blind=st.blind,
            notice=notice, top_n=TOP_N, fmt=_fmt, labels_of=res.labels_of,
            rating_min=db.RATING_MIN, rating_max=db.RATING_MAX, listener=st.listener,
            redraw_url=_page_url(st.params(seed=((st.seed or 0) + 1) % (MAX_SEED + 1), listener=st.listener)),
            **query,
        )


def _query_view(res: Results, st: _State, ratings_db: Path) -> dict[str, Any]:
    """The part of the page for a chosen class: draws the query when none was chosen (sets
    ``st.query``); returns ``columns`` (one per system, in the order shown), ``rated`` (the
    judgement of ``st.rated_id``, which must belong to this page, else :class:`BadRequest`),
    ``reveal`` (blind systems named), ``query_labels`` and ``query_duration`` (seconds, NaN
    when unknown)."""
    if not st.query_chosen:
        st.query = res.draw_query(st.cls, st.seed or 0, st.systems)
    shown = shown_order(st.systems, st.blind, st.seed or 0, st.query)
    rated = None
    if st.rated_id is not None:
        rated = db.get_judgement(ratings_db, st.rated_id)
        if (rated is None or rated["query"] != st.query
                or [li["system"] for li in rated["lists"]] != [s.id for s in shown]):
            raise BadRequest(f"rating #{st.rated_id} does not belong to this page")
    columns = [{"system": s, "ranking": res.ranking(s, st.query, st.cls), "map": res.map_at(s),
                "score_name": SCORE_NAMES.get(s.search, s.search)} for s in shown]
    row = res.clip(st.query)
    duration = float(row["duration"]) if row is not None and "duration" in row else math.nan
    return {"columns": columns, "rated": rated, "reveal": not st.blind or rated is not None,
            "query_labels": res.labels_of(st.query), "query_duration": duration}


# --------------------------------------------------------------------------- GET /audio/<fname>


def _register_audio(app: Flask, res: Results) -> None:
    """``GET /audio/<fname>`` (endpoint ``audio``): the manifest's file for that fname, else 404."""

    @app.get("/audio/<fname>")
    def audio(fname: str):
        found = res.audio_file(fname)
        if found is None:
            abort(404, description="no such clip in the collection's manifest")
        path, ctype = found
        return send_file(path, mimetype=ctype, conditional=True, max_age=3600, download_name=path.name)


# --------------------------------------------------------------------------- POST /rate


def _register_rating(app: Flask, res: Results, collection: str) -> None:
    """``POST /rate`` (endpoint ``rate``): validate and store a judgement, then 303 back to the page."""

    @app.post("/rate")
    def rate():
        _check_same_origin()
        form = request.form
        st, listener, query_chosen = _rating_state(res, form, collection)
        best = _int_param(form, "best", 0, len(st.systems) - 1)
        lists = _rated_lists(res, st, form)
        params = {"class": st.cls, "query": st.query if query_chosen else "", "systems": [s.id for s in st.systems],
                  "seed": "" if st.seed is None else st.seed, "blind": 1 if st.blind else ""}
        params = {k: v for k, v in params.items() if v not in ("", None, [])}
        jid = db.add_judgement(
            app.config["SOUNDSIM_DB"], listener=listener, collection=collection, query=st.query,
            query_class=st.cls, seed=st.seed, blind=st.blind, lists=lists, best_position=best,
            comment=form.get("comment", "")[:500], page=urlencode(params, doseq=True),
        )
        log.info("rating #%d by %s saved (%s)", jid, listener, app.config["SOUNDSIM_DB"])
        return redirect(_page_url({**params, "rated": jid, "listener": listener}), code=303)


def _check_same_origin() -> None:
    """403 unless the request comes from this server's own page (Sec-Fetch-Site, Origin)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        abort(403, description="ratings are accepted only from the listening page itself")
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        abort(403, description="ratings are accepted only from the listening page itself")


def _rating_state(res: Results, form: Any, collection: str) -> tuple[_State, str, bool]:
    """The page state a rating form names, its listener id and whether the query was chosen
    (not drawn); :class:`BadRequest` for another collection, a missing class, query or
    systems, a bad listener id, or a drawn query that is not the seed's draw."""
    if form.get("collection", collection) != collection:
        raise BadRequest(f"this server serves collection {collection!r}")
    args = {k: form.getlist(k) for k in ("class", "query", "systems", "seed", "blind")}
    st = _State(res, MultiDict([(k, v) for k, vs in args.items() for v in vs]))
    if not st.cls or not st.query or not st.systems:
        raise BadRequest("a rating needs class, query and systems")
    listener = form.get("listener", "").strip()
    if not LISTENER_RE.match(listener):
        raise BadRequest("listener id: 1-64 letters, digits or . _ @ -")
    query_chosen = _bool_param(form, "query_chosen")
    if not query_chosen:
        if st.seed is None:
            raise BadRequest("a drawn query needs its seed")
        if res.draw_query(st.cls, st.seed, st.systems) != st.query:
            raise BadRequest("the query does not match the seed's draw")
    return st, listener, query_chosen


def _rated_lists(res: Results, st: _State, form: Any) -> list[dict[str, Any]]:
    """One entry per list in the order shown (``rating_<position>``, each required), with the
    system, its rating, the query's AP, the system's MAP and the fnames listed. The form names
    the systems in the order chosen (as the page's URL does, so that the page's source does not
    tell which blind list is which); positions are those shown."""
    lists = []
    for pos, s in enumerate(shown_order(st.systems, st.blind, st.seed or 0, st.query)):
        r = _int_param(form, f"rating_{pos}", db.RATING_MIN, db.RATING_MAX)
        if r is None:
            raise BadRequest(f"rate every list: rating_{pos} is missing")
        rk = res.ranking(s, st.query, st.cls)
        lists.append({**s.as_dict(), "rating": r, "ap": rk.ap, "map": res.map_at(s), "results": rk.fnames})
    return lists
