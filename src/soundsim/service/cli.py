"""The service's subcommands of ``soundsim`` (registered in :data:`soundsim.cli.SUBCOMMANDS`).

    soundsim index [--config config.yaml] [--system MODEL[/VARIATION[/SETTING]]] [--type flat|hnsw|ivf|ivf-sq8|ivf-pq|freesound]
                   [--param KEY=VALUE ...] --out DIR
    soundsim index add DIR (--audio FILE... | --manifest CSV) [--skip-bad]
    soundsim index remove DIR --fname NAME...
    soundsim index info DIR [--json]
    soundsim index export DIR --out FILE.parquet
    soundsim query DIR (--audio FILE... | --fname NAME...) [-k 15] [--min-similarity S] [--json]
    soundsim serve DIR [--host 127.0.0.1] [--port 8000] [--max-upload-mb 50] [--preload]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from soundsim.errors import SoundsimError

INDEX_ACTIONS = ("build", "add", "remove", "info", "export")


def _param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param {text!r}: expected KEY=VALUE, e.g. nprobe=32")
    k, v = text.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


def _cmd_index(args: argparse.Namespace) -> int:
    from soundsim.service import index as I

    action = args.action or "build"
    if action == "build":
        if args.target is not None:
            raise SoundsimError(f"soundsim index: unexpected argument {args.target!r}; the index folder is --out DIR")
        if not args.out:
            raise SoundsimError("soundsim index: give the index folder to write with --out DIR")
        from soundsim.config import load_config

        cfg = load_config(args.config, args.schema)
        gen = I.build_index(cfg, args.out, args.system, args.type, dict(args.param or []))
        info = I.SimilarityIndex(args.out).info()
        print(f"index {args.out} ({gen.name}): {info['system']}, {info['index']['type']} over "
              f"{info['counts']['active']} sounds x {info['counts']['dim']} dims, "
              f"{info['memory_bytes'] / max(1, info['counts']['items']):.0f} bytes/sound")
        return 0
    if args.target is None:
        raise SoundsimError(f"soundsim index {action}: give the index folder, e.g. soundsim index {action} DIR")
    root = Path(args.target)
    if action == "add":
        res = I.add_sounds(root, I.additions(args.audio or [], args.manifest), args.skip_bad, not args.quiet)
        print(f"added {res['added']} sound(s) to {root}: {res['counts']['active']} active"
              + (f"; skipped {len(res['skipped'])}: " + "; ".join(res["skipped"]) if res["skipped"] else ""))
        return 0
    if action == "remove":
        if not args.fname:
            raise SoundsimError("soundsim index remove: give the sounds to remove with --fname NAME...")
        res = I.remove_sounds(root, args.fname)
        print(f"removed {res['removed']} sound(s) from {root}: {res['counts']['active']} active")
        return 0
    if action == "export":
        if not args.out:
            raise SoundsimError("soundsim index export: give the parquet file to write with --out FILE.parquet")
        out = I.export_parquet(root, args.out)
        print(f"exported {root} -> {out}")
        return 0
    with I.SimilarityIndex(root) as idx:
        info = idx.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    c = info["counts"]
    ev = info.get("evaluation") or {}
    lines = [
        f"index:      {root} ({info['generation']})",
        f"system:     {info['system']}",
        f"index type: {info['index']['type']} {json.dumps(info['index']['params'])} (search {info['index']['search']})",
        f"sounds:     {c['active']} active, {c['removed']} removed, {c['items']} rows; {c['dim_in']} -> {c['dim']} dims",
        f"memory:     {info['memory_bytes']} bytes in the faiss index "
        f"({info['memory_bytes'] / max(1, c['items']):.0f} per sound)",
        f"model:      code {info['model_code_version']}, weights {info['weights_fingerprint']}",
        f"created:    {info['created']}, updated {info['updated']}",
    ]
    if ev:
        lines.append(f"evaluated:  MAP@15 {ev.get('map@15'):.4f}, MAP@150 {ev.get('map@150'):.4f}, "
                     f"MR1 {ev.get('mr1'):.2f} (exact search, collection {info['collection']})")
    print("\n".join(lines))
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from soundsim.service import index as I

    if bool(args.audio) == bool(args.fname):
        raise SoundsimError("soundsim query: give either --audio FILE... or --fname NAME...")
    failed = 0
    with I.SimilarityIndex(args.index) as idx:
        if args.fname:
            answers = [idx.similar_to_fname(f, args.k, args.min_similarity) for f in args.fname]
        else:
            answers = idx.similar_to_audio(args.audio, args.k, args.min_similarity)
        for a in answers:
            failed += a.error is not None
            if args.json:
                print(json.dumps(a.as_dict()), flush=True)
            else:
                print(I.fmt_table(a), flush=True)
            if a.error is not None:
                print(f"soundsim query: error: {a.error}", file=sys.stderr)
    return 2 if failed else 0


def add_index(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from soundsim.ann import INDEX_TYPES

    p = sub.add_parser(
        "index", parents=[common], help="build or update a similarity index of one evaluated system",
        description="soundsim index --out DIR builds a self-contained index of one system of the configured "
        "collection (default: the best row of tables/best_settings.csv): the fitted processing, the processed "
        "vectors, fnames/labels/paths and a faiss index. `index add DIR`, `index remove DIR` update it "
        "atomically (a killed update leaves the previous index working), `index info DIR` describes it, "
        "`index export DIR --out F.parquet` writes vectors + ids + payload for a vector database.",
    )
    p.add_argument("action", nargs="?", choices=INDEX_ACTIONS, help="build (default), add, remove, info, export")
    p.add_argument("target", nargs="?", help="the index folder (add, remove, info, export)")
    p.add_argument("--config", default="config.yaml", help="config file (build; default: config.yaml)")
    p.add_argument("--schema", help="schema file (default: the one shipped with soundsim)")
    p.add_argument("--system", help="MODEL, MODEL/VARIATION or MODEL/VARIATION/SETTING (default: the best system)")
    p.add_argument("--type", default="flat", choices=INDEX_TYPES, help="index type (default flat: exact)")
    p.add_argument("--param", type=_param, action="append", metavar="KEY=VALUE",
                   help="index parameter, e.g. --param nprobe=32 --param m=16 (see soundsim.ann.DEFAULTS)")
    p.add_argument("--out", help="build: the index folder to write; export: the parquet file")
    p.add_argument("--audio", nargs="+", help="add: audio files (fname = the file name without extension)")
    p.add_argument("--manifest", help="add: CSV with columns fname,path[,labels]")
    p.add_argument("--skip-bad", action="store_true", help="add: report and skip files that cannot be embedded")
    p.add_argument("--fname", nargs="+", help="remove: the sounds to remove")
    p.add_argument("--json", action="store_true", help="info: print JSON")
    p.set_defaults(func=_cmd_index)


def add_query(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "query", parents=[common], help="which sounds of an index are like these files / this sound?",
        description="Query an index built by `soundsim index`: --audio embeds new files with the index's model "
        "(in its environment, loaded once), applies the stored processing and searches; --fname queries a sound "
        "of the index (itself excluded). A readable table per query, or with --json one JSON object per line: "
        '{"query": ..., "results": [{"fname": ..., "similarity": ..., "score": ..., "labels": [...]}, ...]}, '
        "best first. similarity: cosine of the processed vectors; score: the search's own score. "
        "Exit status 2 when a file could not be embedded (its error is printed; the other files are answered).",
    )
    p.add_argument("index", help="the index folder")
    p.add_argument("--audio", nargs="+", help="audio files to find similar sounds for")
    p.add_argument("--fname", nargs="+", help="sounds of the index to find similar sounds for")
    p.add_argument("-k", type=int, default=15, help="results per query (default 15)")
    p.add_argument("--min-similarity", type=float,
                   help="drop results with a lower similarity (default: the index type's; freesound: 0.7)")
    p.add_argument("--json", action="store_true", help="one JSON object per query and line")
    p.set_defaults(func=_cmd_query)


def _cmd_serve(args: argparse.Namespace) -> int:
    from soundsim.service.http import serve  # Flask: extra [listen]/[service] (main() says so when missing)

    if not args.max_upload_mb > 0:
        raise SoundsimError(f"soundsim serve: --max-upload-mb must be positive, got {args.max_upload_mb}")
    if not 0 <= args.port <= 65535:
        raise SoundsimError(f"soundsim serve: --port must be 0-65535, got {args.port}")
    from soundsim.service.store import current_generation

    current_generation(args.index)  # a clear error before anything starts
    serve(args.index, args.host, args.port, int(args.max_upload_mb * 1024 * 1024), args.preload)
    return 0


#: soundsim.service.http's MAX_K and DEFAULT_MAX_UPLOAD_MB (that module imports Flask: not at parse time)
SERVE_MAX_K, SERVE_MAX_UPLOAD_MB = 1000, 50


def add_serve(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    MAX_K, DEFAULT_MAX_UPLOAD_MB = SERVE_MAX_K, SERVE_MAX_UPLOAD_MB
    p = sub.add_parser(
        "serve", parents=[common], help="serve an index as a small HTTP JSON API (localhost by default)",
        description="A JSON API over an index built by `soundsim index`: GET /health (model, setting, index type, "
        "counts, generation), GET /similar/<fname>?k=15&min_similarity=S (a sound of the index, itself excluded), "
        "POST /similar?k=15 with an audio file (multipart field 'file', or the raw body with an audio/* content "
        "type): the same JSON as `soundsim query --json`. The model is loaded once (on the first upload, or at "
        f"start with --preload); k is 1-{MAX_K}; bad audio gets 400 naming the problem, a body over "
        "--max-upload-mb 413. The index is reopened when `soundsim index add|remove` writes a new generation. "
        "Binds to 127.0.0.1 unless --host says otherwise; for other machines put it behind a reverse proxy.",
    )
    p.add_argument("index", help="the index folder")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest request body accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB}); larger: 413")
    p.add_argument("--preload", action="store_true",
                   help="start the model's worker at start (default: on the first upload)")
    p.set_defaults(func=_cmd_serve)
