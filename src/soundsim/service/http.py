"""``soundsim serve``: a small HTTP JSON API over an index directory (:mod:`soundsim.service.store`).

Routes (all answers JSON; errors ``{"error": "..."}`` with their status):

* ``GET /health``: ``{"status": "ok", "model", "variation", "setting", "system", "index"
  (type, search, params), "counts", "generation", "min_similarity", "embedder"}`` (embedder:
  ``"loaded"`` once the model's worker runs, else ``"not loaded"``).
* ``GET /similar/<fname>?k=15&min_similarity=S``: the sounds most like that sound of the
  index, itself excluded: :meth:`soundsim.service.index.Answer.as_dict`, ``{"query": fname,
  "results": [{"fname", "similarity", "score", "labels"}, ...]}``, best first. ``fname`` is
  only ever looked up in the index's list of names (a path, ``../``, ``%2e%2e``, NUL: an
  unknown fname, 404); no file is read for it.
* ``POST /similar?k=15&min_similarity=S``: the sounds most like an uploaded audio file,
  either ``multipart/form-data`` with the file in the field ``file`` (``curl -F
  file=@x.wav``) or the raw bytes as the body with an ``audio/*`` or
  ``application/octet-stream`` content type (``curl --data-binary @x.wav -H 'Content-Type:
  audio/wav'``, optional ``?filename=x.wav``). The answer's ``query`` is the file's name,
  sanitised (:func:`upload_name`). Audio that cannot be decoded or embedded (not audio, empty,
  truncated, no frames): 400 naming the problem.

Limits and validation: ``k`` an integer 1-:data:`MAX_K` (capped at the number of other
sounds), ``min_similarity`` a number in [-1, 1], unknown parameters refused (400); a body
larger than ``max_upload_bytes`` (``--max-upload-mb``, default :data:`DEFAULT_MAX_UPLOAD_MB`
MB): 413.

**Disk.** An upload is written to exactly one temporary file, ``<private dir>/<random><ext>``
(``ext``: the original name's extension when it is 1-10 letters/digits, else the content
type's, else none), whether it comes as multipart (the form parser's file stream *is* that
file, :class:`_UploadRequest`) or a raw body; it is deleted when the request ends, whatever
happened (``teardown_request``). The private dir (``tempfile.mkdtemp``, mode 0700) is removed
by :meth:`Service.close`. Nothing is written to the index directory.

**One model, reloads.** The index is opened once; the model's worker
(:class:`soundsim.service.embed.EmbedClient`) starts on the first upload (or at start with
``preload``) and is then kept. Each request reads ``CURRENT`` (a few bytes); when another
process has written a new generation (``soundsim index add|remove``), the index is reopened
and the worker kept (restarted only when the new generation is another model).

**Exposure.** Binds 127.0.0.1 by default; on a loopback address only the loopback Host names
are accepted (DNS rebinding); every response has ``X-Content-Type-Options: nosniff``, a
``default-src 'none'`` content policy and ``Cache-Control: no-store``. Meant for this machine or
behind a reverse proxy (TLS, authentication, rate limits are the proxy's).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from flask import Flask, Request, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import secure_filename

from soundsim.webutil import LOOPBACK, register_host_check
from soundsim.errors import AudioError, SoundsimError
from soundsim.service import store
from soundsim.service.index import DEFAULT_K, QueryError, SimilarityIndex

log = logging.getLogger(__name__)

MAX_K = 1000
DEFAULT_MAX_UPLOAD_MB = 50
QUERY_PARAMS = {"k", "min_similarity"}
UPLOAD_PARAMS = QUERY_PARAMS | {"filename"}
_EXT_RE = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
_INT_RE = re.compile(r"^\d{1,10}$")
_TYPE_EXT = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
             "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
             "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/aiff": ".aiff", "audio/x-aiff": ".aiff",
             "audio/mp4": ".m4a", "audio/aac": ".aac", "audio/webm": ".webm"}


class BadQuery(SoundsimError):
    """A request the API refuses with 400 (the message names the parameter or the problem)."""


class NotFound(SoundsimError):
    """An unknown fname (404)."""


class Unavailable(SoundsimError):
    """The index or the model cannot answer now (503; the message says why)."""


# --------------------------------------------------------------------------- names and parameters


def upload_name(raw: str | None) -> str:
    """The name an upload is reported under: its last path component (``/`` and ``\\``
    both separate), made safe by :func:`werkzeug.utils.secure_filename` (ASCII letters,
    digits, ``._-``), at most 200 characters; ``"upload"`` when nothing is left. Never used
    as a path."""
    base = re.split(r"[/\\]", raw or "")[-1]
    return secure_filename(base)[:200] or "upload"


def upload_suffix(name: str, content_type: str | None = None) -> str:
    """The temporary file's suffix: ``name``'s extension when it is 1-10 letters or digits
    (lower-cased), else the audio content type's usual one, else ``""``."""
    ext = os.path.splitext(name)[1]
    if _EXT_RE.match(ext):
        return ext.lower()
    return _TYPE_EXT.get((content_type or "").split(";")[0].strip().lower(), "")


def query_params(args: Any, allowed: set[str]) -> tuple[int, float | None]:
    """``k`` (default :data:`~soundsim.service.index.DEFAULT_K`, an integer 1-:data:`MAX_K`) and
    ``min_similarity`` (default None: the index's; a finite number in [-1, 1]) from the query
    string; :class:`BadQuery` naming the parameter, also for a parameter not in ``allowed``."""
    unknown = sorted(set(args.keys()) - allowed)
    if unknown:
        raise BadQuery(f"unknown parameter(s): {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    k_text = args.get("k", "")
    if k_text == "":
        k = DEFAULT_K
    elif not _INT_RE.match(k_text) or not 1 <= int(k_text) <= MAX_K:
        raise BadQuery(f"k must be an integer 1-{MAX_K}, got {k_text[:50]!r}")
    else:
        k = int(k_text)
    s_text = args.get("min_similarity", "")
    if s_text == "":
        return k, None
    try:
        s = float(s_text)
    except ValueError:
        s = math.nan
    if not math.isfinite(s) or not -1.0 <= s <= 1.0:
        raise BadQuery(f"min_similarity must be a number in [-1, 1], got {s_text[:50]!r}")
    return k, s


# --------------------------------------------------------------------------- the live index


class Service:
    """The index directory ``root`` opened, reopened when its ``CURRENT`` changes, and one
    embedding worker, started on the first upload (or now with ``preload``) and kept.
    Thread-safe: queries read an immutable :class:`SimilarityIndex`; reopening and starting
    the worker hold a lock; the worker serialises its own requests."""

    def __init__(self, root: str | Path, preload: bool = False, upload_dir: str | Path | None = None) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._index = SimilarityIndex(self.root)
        self._client: Any = None
        self._client_spec: dict[str, Any] | None = None
        self._own_upload_dir = upload_dir is None
        self.upload_dir = Path(upload_dir) if upload_dir else Path(tempfile.mkdtemp(prefix="soundsim-serve-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        if preload:
            self.embedder(self._index)

    def index(self) -> SimilarityIndex:
        """The index of the live generation: reopened when ``CURRENT`` names another one
        (one small read per call); :class:`Unavailable` when the directory is no index now."""
        try:
            name = store.current_generation(self.root).name
        except (store.IndexDirError, OSError) as e:
            raise Unavailable(f"the index cannot be read now: {type(e).__name__}") from e
        idx = self._index
        if name == idx.generation.name:
            return idx
        with self._lock:
            if self._index.generation.name != name:
                try:
                    self._index = SimilarityIndex(self.root)
                except (SoundsimError, OSError) as e:
                    log.warning("could not reopen %s (%s): still answering from %s", self.root, e,
                                self._index.generation.name)
                    return self._index
                log.info("index %s: now generation %s (%d sounds)", self.root, self._index.generation.name,
                         self._index.n_active)
            return self._index

    def embedder(self, idx: SimilarityIndex) -> Any:
        """The worker of ``idx``'s model: started once, kept across generations of the same
        model (a new one when the model changed); :class:`BadQuery` for an index of
        precomputed embeddings, :class:`Unavailable` when the model cannot be loaded."""
        from soundsim.service.embed import EmbedClient, EmbedWorkerError, spec_of

        from soundsim.service.index import StaleIndexError, check_has_model, check_model_unchanged

        spec = spec_of(idx.manifest)
        try:
            check_has_model(idx.manifest, idx.root)
        except QueryError as e:
            raise BadQuery(f"{e} (GET /similar/<fname>)") from e
        with self._lock:
            if self._client is not None and self._client_spec != spec:
                self._client.close()
                self._client = None
            if self._client is None:
                log.info("starting the embedding worker of %s", idx.manifest["system"])
                try:
                    check_model_unchanged(idx.manifest, idx.root)  # the model's code and weights are the index's
                except StaleIndexError as e:
                    raise Unavailable(str(e)) from e
                try:
                    self._client = EmbedClient(spec)
                except EmbedWorkerError as e:
                    raise Unavailable(str(e)) from e
                self._client_spec = spec
            return self._client

    @property
    def model_loaded(self) -> bool:
        return self._client is not None

    def similar_to_upload(self, path: Path, name: str, k: int, min_similarity: float | None) -> dict[str, Any]:
        """The answer for the audio file ``path`` (reported as ``name``); :class:`BadQuery`
        with the decoder's or model's reason when it cannot be embedded."""
        from soundsim.service.embed import EmbedWorkerError

        idx = self.index()
        client = self.embedder(idx)
        try:
            frames = client.embed(path)
            q = idx.processing.transform([frames], [name])[0]
        except AudioError as e:
            reason = e.reason.replace(str(path.resolve()), name).replace(str(path), name)
            raise BadQuery(f"{name}: {reason}") from e
        except EmbedWorkerError as e:
            raise Unavailable(str(e)) from e
        except SoundsimError as e:
            raise BadQuery(f"{name}: {e}") from e
        return idx.similar_to_vectors(q, k, min_similarity, [name])[0].as_dict()

    def health(self) -> dict[str, Any]:
        """``GET /health``'s object (module docstring)."""
        info = self.index().info()
        keep = ("system", "model", "variation", "setting", "index", "counts", "generation", "min_similarity",
                "created", "updated", "weights_fingerprint", "model_code_version", "evaluation")
        return {"status": "ok", **{k: info[k] for k in keep},
                "embedder": "loaded" if self.model_loaded else "not loaded"}

    def close(self) -> None:
        """Stop the worker and remove the private upload folder (when this service made it)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        if self._own_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


# --------------------------------------------------------------------------- the app


class _UploadRequest(Request):
    """A request whose multipart file parts are spooled to a temporary file of the service's
    private folder (not werkzeug's spooled temporary files elsewhere), recorded in
    ``g.soundsim_uploads`` so that ``teardown_request`` deletes it."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return _new_upload_file(upload_suffix(upload_name(filename), content_type))


def _new_upload_file(suffix: str) -> IO[bytes]:
    """A new temporary file in the service's upload folder, recorded for deletion."""
    from flask import current_app

    svc: Service = current_app.extensions["soundsim_serve"]
    fh = tempfile.NamedTemporaryFile(dir=svc.upload_dir, prefix="up-", suffix=suffix, delete=False)  # noqa: SIM115
    g.setdefault("soundsim_uploads", []).append(fh)
    return fh


def create_app(index_dir: str | Path, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024,
               trusted_hosts: list[str] | None = None, preload: bool = False,
               upload_dir: str | Path | None = None) -> Flask:
    """The API over the index directory ``index_dir`` (module docstring). ``trusted_hosts``:
    the Host names accepted (None: any; :func:`serve` passes the loopback names when it binds
    to loopback); ``preload``: start the model's worker now; ``upload_dir``: the folder of the
    temporary upload files (default: a new private one). The :class:`Service` is
    ``app.extensions["soundsim_serve"]``; call its ``close()`` when done."""
    svc = Service(index_dir, preload=preload, upload_dir=upload_dir)
    app = Flask(__name__)
    app.request_class = _UploadRequest
    app.url_map.merge_slashes = False  # '/similar//etc/passwd' is the unknown fname '/etc/passwd', not a redirect
    app.config.update(MAX_CONTENT_LENGTH=int(max_upload_bytes), MAX_FORM_MEMORY_SIZE=64 * 1024,
                      MAX_FORM_PARTS=16, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["soundsim_serve"] = svc
    if trusted_hosts:
        register_host_check(app, trusted_hosts)
    _register_errors(app, int(max_upload_bytes))
    _register_headers_and_cleanup(app)
    _register_routes(app, svc)
    return app


def _error(code: int, message: str) -> tuple[Any, int]:
    return jsonify({"error": message}), code


def _register_errors(app: Flask, max_upload_bytes: int) -> None:
    """JSON errors: :class:`BadQuery` and :class:`~soundsim.service.index.QueryError` 400, :class:`NotFound` 404, too large 413,
    :class:`Unavailable` 503, other HTTP errors their code, anything else 500 (logged, no
    details in the answer)."""

    @app.errorhandler(BadQuery)
    @app.errorhandler(QueryError)
    def _bad(e: SoundsimError):
        return _error(400, str(e))

    @app.errorhandler(NotFound)
    def _not_found(e: NotFound):
        return _error(404, str(e))

    @app.errorhandler(Unavailable)
    def _unavailable(e: Unavailable):
        return _error(503, str(e))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e: RequestEntityTooLarge):
        return _error(413, f"request body too large: the limit is {max_upload_bytes} bytes "
                           f"({max_upload_bytes / 2**20:.3g} MB; soundsim serve --max-upload-mb)")

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        return _error(e.code or 500, e.description or e.name)

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        log.exception("internal error on %s %s", request.method, request.path)
        return _error(500, "internal error; the server's log has the details")


def _register_headers_and_cleanup(app: Flask) -> None:
    """Security headers on every response; the request's temporary upload files deleted
    when it ends, whatever happened."""

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.teardown_request
    def _remove_uploads(exc: BaseException | None) -> None:
        for fh in g.pop("soundsim_uploads", []):
            try:
                fh.close()
            finally:
                Path(fh.name).unlink(missing_ok=True)


def _register_routes(app: Flask, svc: Service) -> None:
    """``GET /health``, ``GET /similar/<fname>``, ``POST /similar`` (module docstring)."""

    @app.get("/health")
    def health():
        return jsonify(svc.health())

    @app.get("/similar/<path:fname>")
    def similar_to_fname(fname: str):
        k, min_sim = query_params(request.args, QUERY_PARAMS)
        idx = svc.index()
        if fname not in idx.row_of:  # a name looked up, never a path
            raise NotFound(f"unknown fname {fname[:200]!r}: not one of the index's {idx.n_active} sounds")
        return jsonify(idx.similar_to_fname(fname, k, min_sim).as_dict())

    @app.post("/similar")
    def similar_to_upload():
        mimetype = request.mimetype or ""
        if mimetype == "multipart/form-data":
            k, min_sim = query_params(request.args, QUERY_PARAMS)
            path, name = _multipart_upload()
        elif mimetype.startswith("audio/") or mimetype == "application/octet-stream":
            k, min_sim = query_params(request.args, UPLOAD_PARAMS)
            path, name = _raw_upload(request.args.get("filename", ""), mimetype)
        else:
            raise BadQuery("POST /similar takes the audio as multipart/form-data (field 'file') or as the body with "
                           f"an audio/* or application/octet-stream content type, not {mimetype or 'no content type'!r}")
        return jsonify(svc.similar_to_upload(path, name, k, min_sim))


def _multipart_upload() -> tuple[Path, str]:
    """The uploaded file of field ``file`` (already in its temporary file) and its safe name."""
    files = request.files
    fields = sorted(set(files.keys()) | set(request.form.keys()))
    if fields != ["file"] or len(files.getlist("file")) != 1:
        raise BadQuery(f"multipart upload: send exactly one file in the field 'file' (got fields: "
                       f"{', '.join(fields) or 'none'})")
    fs = files["file"]
    fh = fs.stream
    name = upload_name(fs.filename)
    if not isinstance(getattr(fh, "name", None), str):  # not one of our temporary files
        raise BadQuery("multipart upload: the field 'file' must be a file part (with a filename)")
    fh.flush()
    return Path(fh.name), name


def _raw_upload(filename: str, mimetype: str) -> tuple[Path, str]:
    """The request body, copied to one temporary file, and the upload's safe name."""
    name = upload_name(filename or "upload")
    fh = _new_upload_file(upload_suffix(name, mimetype))
    shutil.copyfileobj(request.stream, fh, 1024 * 1024)
    fh.flush()
    return Path(fh.name), name


# --------------------------------------------------------------------------- serving


def serve(index_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024, preload: bool = False) -> None:
    """Serve :func:`create_app` on ``host:port`` (threaded) until interrupted; prints the URL
    (the port actually bound, also for port 0). Binding a non-loopback address is logged as
    a warning; on loopback only loopback Host names are accepted."""
    import signal

    from werkzeug.serving import make_server

    loopback = host in LOOPBACK
    if not loopback:
        log.warning("serving on %s: anyone who can reach this address can query the index and upload audio "
                    "to it; put it behind a reverse proxy with authentication", host)
    app = create_app(index_dir, max_upload_bytes, trusted_hosts=list(LOOPBACK) if loopback else None,
                     preload=preload)
    svc: Service = app.extensions["soundsim_serve"]
    try:
        server = make_server(host, port, app, threaded=True)
        shown = f"[{host}]" if ":" in host else host
        print(f"soundsim serve: {index_dir} ({svc.index().manifest['system']}) at "
              f"http://{shown}:{server.server_port}/  (GET /health, GET /similar/<fname>, POST /similar; "
              "Ctrl-C stops)", flush=True)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        svc.close()


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM stops :func:`serve` as Ctrl-C does (so the worker and the upload folder go too)."""
    raise KeyboardInterrupt
