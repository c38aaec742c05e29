"""``soundsim`` command line: thin wrappers over the library.

    soundsim check-config [--config config.yaml] [--show]
    soundsim demo-data --out results/demo/source [--seed 0] [--clips-per-class 16]
    soundsim manifest [--config config.yaml] [--threads N]
    soundsim models [--config config.yaml] [--paper | --options | --training-data]
    soundsim extract --manifest M --model NAME [--variation V] [--shard K --shards N] --out OUT.h5
    soundsim merge SHARD.h5 ... --out MERGED.h5
    soundsim evaluate EMB.h5 --ground-truth GT.csv [--families F.json] [--aggregation ...] [--pca ...]
             [--search ...] [--cutoffs 15 150] --out DIR [--seed 0] [--intersect]
    soundsim listen [--collection demo] [--results results] [--host 127.0.0.1] [--port 8000] [--config ...]
    soundsim tables [--config config.yaml]
    soundsim figures [--config config.yaml]
    soundsim index [--config config.yaml] [--system MODEL/VARIATION/SETTING] [--type flat|hnsw|ivf|ivf-sq8|ivf-pq|freesound] --out DIR
    soundsim index add|remove|info|export DIR ...
    soundsim query DIR (--audio FILE... | --fname NAME...) [-k 15] [--json]
    soundsim serve DIR [--host 127.0.0.1] [--port 8000] [--max-upload-mb 50] [--preload]

Errors in the user's input (config, collection, audio) print one clear message
and exit with status 2; ``--debug`` shows the traceback. So does a missing
optional dependency (:mod:`soundsim.extras`): the message names the pip extra
that installs it, e.g. ``pip install 'soundsim[workflow]'`` for ``soundsim figures``. The global flags ``--debug``
and ``-q``/``--quiet`` go before or after the subcommand.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from soundsim import __version__
from soundsim.errors import SoundsimError
from soundsim.layout import PROCESSING_PATTERN, SETTING_PATTERN

log = logging.getLogger("soundsim")


def _cmd_check_config(args: argparse.Namespace) -> int:
    from soundsim import heads, models, plan
    from soundsim.config import load_config
    from soundsim.errors import ConfigError

    path = args.config_file or args.config
    cfg = load_config(path, args.schema)
    try:
        heads.check_config(cfg)
        models.check_models_config(plan.enabled_models(cfg))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    print(f"{path}: valid")
    if args.show:
        print(json.dumps(cfg, indent=2))
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from soundsim.datasets import demo

    paths = demo.generate(args.out, seed=args.seed, clips_per_class=args.clips_per_class, progress=not args.quiet,
                          fname_prefix=args.fname_prefix)
    n = len(demo.plan(args.clips_per_class))
    print(f"demo collection: {n} clips, {len(demo.VOCABULARY)} labels, {len(demo.FAMILIES)} families -> {args.out}")
    for k, p in paths.items():
        print(f"  {k}: {p}")
    return 0


def _cmd_manifest(args: argparse.Namespace) -> int:
    from soundsim import manifest
    from soundsim.config import collection_dir, load_config

    cfg = load_config(args.config, args.schema)
    src = None
    if cfg["collection"]["kind"] == "demo":
        from soundsim.datasets import demo, demo_source_dir

        src = demo_source_dir(cfg["results"], cfg["collection"]["name"])
        if not (src / "ground_truth.csv").is_file():
            log.info("demo sources missing: generating them under %s", src)
            demo.generate(src, cfg["collection"]["seed"], cfg["collection"]["clips_per_class"], not args.quiet,
                          cfg["collection"]["fname_prefix"])
    paths = manifest.run(
        cfg["collection"], collection_dir(cfg), cfg["extraction"]["on_bad_audio"], args.threads, not args.quiet, src
    )
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


def _weights_status(inf, variation: str, mcfg: dict, weights_dir: str | None) -> str:
    """'found: <path>', 'not found: <path>', 'bundled' or 'not configured'."""
    from soundsim import models

    path = models.weights_of(inf, mcfg).get(variation)
    if path:
        return ("found: " if Path(path).exists() else "not found: ") + str(path)
    default = models.default_weights_path(inf, variation, weights_dir)
    if default is not None and default.exists():
        return f"found: {default}"
    if inf.weights == "bundled":
        return "bundled"
    return f"not found: {default}" if default is not None else "not configured"


def _print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cmd_models(args: argparse.Namespace) -> int:
    from soundsim import models
    from soundsim.envs import env_status
    from soundsim.training_data import short_training

    if args.options:
        print(models.options_table())
        return 0
    cfg: dict = {"models": {}}
    if args.config and Path(args.config).is_file():
        from soundsim.config import load_config

        cfg = load_config(args.config, args.schema)
    if args.training_data:
        return _print_training_data(cfg)
    cfg_models = cfg["models"]
    weights_dir = args.weights_dir or cfg.get("weights_dir")
    if args.paper:
        rows = [(name, inf.paper.modality, inf.paper.objective, inf.paper.params, inf.paper.data_size,
                 str(inf.paper.dims), inf.env, ", ".join([inf.default_variation]
                                                         + [v for v in inf.variations if v != inf.default_variation]))
                for name, inf in models.available().items() if inf.paper is not None]
        _print_table(("model", "modality", "objective", "params", "data", "dims", "env", "variations (default first)"),
                     rows)
        print(f"({len(rows)} models of the paper's Table II; dims: native embedding size as in the paper)")
        return 0
    rows, problems = [], []
    listed: dict[str, tuple] = {name: (inf, None) for name, inf in models.available().items()}
    for name, mcfg in cfg_models.items():  # models of a kind (models.<name>.kind), after the registered ones
        if models.kind_of(mcfg) is not None:
            try:
                listed[name] = (models.info(name, mcfg), mcfg)
            except (SoundsimError, ImportError) as e:
                problems.append(str(e))
                listed[name] = (None, mcfg)
    for name, (inf, kind_cfg) in listed.items():
        mcfg = cfg_models.get(name) or {}
        if inf is None:  # a model of a kind whose section has a problem (printed below the table)
            rows.append((name, "?", str(mcfg.get("env") or "soundsim"), "?", str(mcfg.get("level") or "?"), "?",
                         "?", "?", "yes" if mcfg.get("enabled", True) else "", models.origin(name, mcfg), "?"))
            continue
        wanted = mcfg.get("variations") or [inf.default_variation]
        for v in inf.variations:
            enabled = "yes" if name in cfg_models and mcfg.get("enabled", True) and v in wanted else ""
            rows.append((name, v + (" *" if v == inf.default_variation else ""), inf.env, env_status(inf.env),
                         inf.level, str(inf.dim_of(v)), str(inf.sample_rate),
                         _weights_status(inf, v, mcfg, weights_dir), enabled, models.origin(name, kind_cfg),
                         short_training(inf)))
    _print_table(("model", "variation", "env", "env ready", "level", "dim", "rate", "weights", "in config", "from",
                  "trained on"), rows)
    print("(* default variation; weights: models.<name>.weights.<variation>, else <weights_dir>/<official file name>; "
          "from: built in, plugin <distribution> <version> (entry-point group soundsim.models), or config "
          "(models.<name>.kind); trained on: the datasets of its training data, in full with --training-data)")
    for p in problems:
        print(f"problem: {p}")
    return 0


def _print_training_data(cfg: dict) -> int:
    """`soundsim models --training-data`: model, its declared training data (with notes)
    and, when a collection is configured, the training-data flag on it."""
    from soundsim import models
    from soundsim import training_data as TD

    dataset = None
    if "collection" in cfg:
        from soundsim.datasets import collection_dataset

        dataset = collection_dataset(cfg)
    head: tuple[str, ...] = ("model",)
    if "collection" in cfg:
        head += (f"on {dataset or 'the collection (dataset not declared)'}",)
    head += ("trained on (paper / model card)",)
    rows = []
    infos = dict(models.available())
    infos.update({n: models.info(n, c) for n, c in (cfg.get("models") or {}).items() if models.kind_of(c)})
    for name, inf in infos.items():
        row: tuple[str, ...] = (name,)
        if "collection" in cfg:
            ov = TD.training_overlap(inf, dataset)
            row += (ov.flag + (f" {TD.MARKER}" if ov.trained_on_collection else ""),)
        rows.append(row + (TD.describe_training(inf),))
    _print_table(head, rows)
    print(f"({TD.MARKER} in the tables: trained on data that includes the collection's dataset: not zero-shot; "
          "dataset names: soundsim.training_data.DATASETS)")
    return 0


def _parse_options(items: list[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for it in items:
        if "=" not in it:
            raise SoundsimError(f"--option {it!r}: expected KEY=VALUE")
        k, v = it.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


#: the numeric libraries' thread settings that ``extract --threads`` sets (before they are imported)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def _set_threads(threads: int | None) -> None:
    """Limit torch, BLAS and TensorFlow to ``threads`` (default: ``OMP_NUM_THREADS`` when set).
    Must run before the model's libraries are imported; TensorFlow's inter-op pool gets 1 thread."""
    import os

    n = str(threads) if threads else os.environ.get("OMP_NUM_THREADS")
    if not n:
        return
    for var in THREAD_VARIABLES:
        os.environ[var] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def _model_config(text: str | None) -> dict[str, object] | None:
    """``--model-config``: a model's config section as JSON (a model of a kind), or None."""
    if not text:
        return None
    import json

    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise SoundsimError(f"--model-config: not JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise SoundsimError("--model-config: expected a JSON object (the model's config section)")
    return cfg


def _cmd_extract(args: argparse.Namespace) -> int:
    import os

    _set_threads(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from soundsim import extract, extras, models

    model_cfg = _model_config(args.model_config)
    inf = models.info(args.model, model_cfg)
    # before anything is read or written: every optional package the model declares (a model of a
    # kind records the versions of packages it may not need; its kind module checks what it needs)
    missing = [] if models.kind_of(model_cfg) else extras.missing_modules(inf.packages)
    if missing:
        hint = extras.install_hint(missing)
        if inf.env != "soundsim":
            hint += (f" (or run it in its own environment: make envs ENVS={inf.env}, "
                     f"then .venvs/{inf.env}/bin/soundsim extract ...)")
        raise extras.MissingDependency(missing, f"model {inf.name}", hint)
    out = extract.extract_shard(
        args.manifest, args.model, args.variation, args.shard, args.shards, args.out,
        weights=args.weights, device=args.device, options=_parse_options(args.option),
        on_bad_audio=args.on_bad_audio, progress=not args.quiet, reuse=args.reuse, code_version=args.code_version,
        weights_fingerprint=args.weights_fingerprint, model_cfg=model_cfg,
    )
    print(out)
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from soundsim import extract

    print(extract.merge_shards(args.shards, args.out))
    return 0


def _cmd_import_embeddings(args: argparse.Namespace) -> int:
    from soundsim import precomputed

    src = precomputed.source_of(args.source, args.format, args.fnames)
    bad = args.bad_audio
    if bad is None and (args.manifest.parent / "bad_audio.csv").is_file():
        bad = args.manifest.parent / "bad_audio.csv"
    print(precomputed.import_embeddings(src, args.manifest, args.out, args.model, args.variation, level=args.level,
                                        on_missing=args.on_missing, bad_audio_path=bad))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from soundsim.datasets.common import read_families, read_ground_truth
    from soundsim.evaluate import PartialEvaluationError, evaluate_grid
    from soundsim.store import read_embeddings

    if args.out.exists() and not args.out.is_dir():
        raise SoundsimError(f"--out {args.out}: exists and is not a folder; give a folder (one subfolder per "
                            "setting is written there)")
    emb = read_embeddings(args.embeddings)
    partial = None
    try:
        summaries = evaluate_grid(
            emb, read_ground_truth(args.ground_truth), read_families(args.families) if args.families else {},
            aggregations=args.aggregation, pcas=args.pca, searches=args.search, cutoffs=args.cutoffs,
            out_dir=args.out, seed=args.seed, block_size=args.block_size, restrict=args.intersect,
            write_rankings_files=not args.no_rankings, save_processed=args.save_processed, progress=not args.quiet,
        )
    except PartialEvaluationError as e:
        summaries, partial = e.summaries, e
    cols = list(summaries[0]["macro"]) if summaries else []
    print(f"{len(summaries)} setting(s) -> {args.out}  (macro averages)")
    print("  ".join([f"{'setting':<34}", *(f"{c:>9}" for c in cols)]))
    for s in summaries:
        vals = (f"{v:9.4f}" for v in s["macro"].values())
        print("  ".join([f"{s['setting']['name']:<34}", *vals]))
    if partial is not None:
        raise partial
    return 0


def _cmd_listen(args: argparse.Namespace) -> int:
    from soundsim.listen.app import create_app  # Flask: extra [listen] (main() says so when missing)
    from soundsim.webutil import LOOPBACK

    results, collection = args.results, args.collection
    if args.config is not None or results is None or collection is None:
        cfg_path = Path(args.config or "config.yaml")
        if cfg_path.is_file():
            from soundsim.config import load_config

            cfg = load_config(cfg_path, args.schema)
            results = results or cfg["results"]
            collection = collection or cfg["collection"]["name"]
        elif args.config is not None:
            raise SoundsimError(f"{cfg_path}: config file not found")
    results, collection = results or "results", collection or "demo"
    if args.host not in LOOPBACK:
        log.warning("listening on %s: anyone who can reach this address can play the collection's audio and "
                    "add ratings", args.host)
    app = create_app(results, collection, trusted_hosts=None if args.host not in LOOPBACK else sorted(LOOPBACK))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"soundsim listen: {Path(results) / collection} at http://{host}:{args.port}/  (Ctrl-C stops)", flush=True)
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=True)
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    from soundsim import models, plan, tables
    from soundsim.config import load_config
    from soundsim.datasets import collection_dataset
    from soundsim.layout import Layout, missing_files

    cfg = load_config(args.config, args.schema)
    lay = Layout.from_config(cfg)
    settings = plan.configured_settings(cfg, plan.expected_clips(cfg))
    if not settings:
        raise SoundsimError(f"{args.config}: no model is enabled (models:): nothing to tabulate")
    needed = [s.file(k) for s in settings for k in ("summary", "per_label", "per_family", "per_query")]
    missing = missing_files(needed)
    if missing:
        raise SoundsimError(
            f"{missing[0]} not found ({len(missing)} of the {len(needed)} metrics files of the {len(settings)} "
            "configured settings are missing): evaluate first (snakemake, or soundsim evaluate)"
        )
    ev = cfg["evaluation"]
    paths = tables.write_tables(
        settings, lay.tables_dir, paper_table2=plan.paper_table2(cfg), collection=lay.collection,
        n_resamples=ev["n_resamples"], confidence=ev["confidence"], seed=ev["seed"],
        dataset=collection_dataset(cfg), registry=models.configured(plan.enabled_models(cfg)),
    )
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from soundsim import figures, plan
    from soundsim.config import load_config
    from soundsim.layout import Layout, missing_files

    cfg = load_config(args.config, args.schema)
    lay = Layout.from_config(cfg)
    inputs = {k: lay.table(k) for k in figures.FIGURE_TABLES}
    missing = missing_files(list(inputs.values()))
    if missing:
        raise SoundsimError(f"{missing[0]} not found: write the tables first (soundsim tables, or snakemake)")
    # precision@k: the rankings.h5 of the configured settings (what rule figures declares) and the manifest
    rankings = {s.key: s.rankings for s in plan.configured_settings(cfg, plan.expected_clips(cfg))}
    missing = missing_files([*rankings.values(), lay.manifest])
    if missing:
        raise SoundsimError(f"{missing[0]} not found ({len(missing)} input(s) of the figures missing): "
                            "evaluate first (snakemake, or soundsim evaluate)")
    written = figures.make_figures(inputs, lay.figures_dir, collection=lay.collection,
                                   confidence=cfg["evaluation"]["confidence"], rankings=rankings,
                                   manifest=lay.manifest)
    print(f"{len(written)} figure file(s) -> {lay.figures_dir}")
    return 0


def _config_args(p: argparse.ArgumentParser, what: str = "config file") -> None:
    """``--config`` and ``--schema``, spelled the same in every subcommand."""
    p.add_argument("--config", default="config.yaml", help=f"{what} (default: config.yaml)")
    p.add_argument("--schema", help="schema file (default: the one shipped with soundsim, soundsim/data/config.schema.yaml)")


def _add_check_config(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("check-config", parents=[common],
                       help="validate a config file: the schema, then the models: section (names, options, weights)")
    _config_args(c)
    # the older spelling `soundsim check-config FILE` still works
    c.add_argument("config_file", nargs="?", metavar="CONFIG", help=argparse.SUPPRESS)
    c.add_argument("--show", action="store_true", help="print the config with defaults filled in")
    c.set_defaults(func=_cmd_check_config)


def _add_demo_data(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    d = sub.add_parser("demo-data", parents=[common],
                       help="synthesise the demo collection (audio, ground truth, families)")
    d.add_argument("--out", required=True, type=Path, help="output folder (e.g. results/demo/source)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    d.add_argument("--clips-per-class", type=int, default=16, help="clips per class, 19 classes (default 16)")
    d.add_argument("--fname-prefix", default="demo",
                   help="clip names are <prefix><5 digits> (default demo: demo00042)")
    d.set_defaults(func=_cmd_demo_data)


def _add_manifest(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    m = sub.add_parser(
        "manifest", parents=[common],
        help="check the configured collection and write manifest.csv, bad_audio.csv, labels.csv, families.json",
    )
    _config_args(m)
    m.add_argument("--threads", type=int, default=1, help="threads for decoding audio (default 1)")
    m.set_defaults(func=_cmd_manifest)


def _add_models(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ml = sub.add_parser("models", parents=[common],
                        help="list registered models, variations, environments and whether weights are found")
    _config_args(ml, "config whose models: section is checked")
    ml.add_argument("--weights-dir", help="folder of weights under their official file names (default: the config's weights_dir)")
    ml.add_argument("--paper", action="store_true", help="one row per model of the paper's Table II: modality, objective, "
                    "parameters, training data, native dims")
    ml.add_argument("--options", action="store_true", help="each model's options (models.<name>.options): type, "
                    "default, allowed values, what it does (a Markdown table)")
    ml.add_argument("--training-data", action="store_true", help="one row per model: the datasets its training "
                    "data included (paper / model card) and, with a config, whether that includes the configured "
                    "collection (the tables' trained_on_collection flag)")
    ml.set_defaults(func=_cmd_models)


def _add_extract(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser("extract", parents=[common], help="embed one shard of a manifest with one model (resumable)")
    e.add_argument("--manifest", required=True, help="manifest.csv written by `soundsim manifest`")
    e.add_argument("--model", required=True, help="model name (see `soundsim models`)")
    e.add_argument("--variation", help="model variation (default: the model's default)")
    e.add_argument("--shard", type=int, default=0, help="shard index, 0-based (default 0)")
    e.add_argument("--shards", type=int, default=1, help="number of shards (default 1)")
    e.add_argument("--out", required=True, type=Path, help="output HDF5 (a journal <out>.partial/ is kept while working)")
    e.add_argument("--weights", help="local weights path (required unless the model ships its weights)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda when available)")
    e.add_argument("--threads", type=int, help="threads of the numeric libraries (default: OMP_NUM_THREADS, which "
                   "Snakemake sets to the job's threads, else the libraries' own default)")
    e.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, the value in YAML (repeatable; see `soundsim models --options`)")
    e.add_argument("--model-config", metavar="JSON",
                   help="the model's config section as JSON, for a model of a kind (models.<name>.kind: hear); "
                        "the workflow passes it")
    e.add_argument("--on-bad-audio", choices=["skip", "fail"], default="skip",
                   help="skip: record unusable clips in /failed and go on; fail: stop naming the file")
    e.add_argument("--reuse", type=Path, metavar="PREVIOUS.h5",
                   help="previous embeddings of this model/variation: clips whose key (content fingerprint, "
                   "model, variation, options, weights, code version) is unchanged are copied, not embedded")
    e.add_argument("--code-version", help="the model's code version as the workflow computed it (default: computed)")
    e.add_argument("--weights-fingerprint", help="fingerprint of the weights file (default: computed, cached)")
    e.set_defaults(func=_cmd_extract)


def _add_merge(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    mg = sub.add_parser("merge", parents=[common],
                        help="merge shard files (in the given order) into one embeddings file")
    mg.add_argument("shards", nargs="+", help="shard HDF5 files, in manifest order")
    mg.add_argument("--out", required=True, type=Path, help="merged HDF5")
    mg.set_defaults(func=_cmd_merge)


def _add_import_embeddings(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from soundsim.precomputed import DEFAULT_VARIATION, FORMATS

    im = sub.add_parser(
        "import-embeddings", parents=[common],
        help="import embeddings computed elsewhere into an embeddings file, in manifest order "
             "(what the workflow's import_embeddings rule does for a model of kind precomputed)",
        description="Sources: a folder of <fname>.npy (or <fname without extension>.npy), each (frames, D) or (D,); "
        "an .npz (X or embeddings + fnames, or one array per clip); an .npy with --fnames (one fname per row); "
        "a .parquet/.csv/.tsv with a fname column and vector columns (several rows per fname: frames, in file "
        "order); a soundsim .h5. Clips of the manifest without a vector are recorded as failed (--on-missing).",
    )
    im.add_argument("--source", "--path", dest="source", required=True, type=Path, help="the vectors: a folder or a file (see above); the config's models.<name>.path")
    im.add_argument("--format", choices=FORMATS, help="the source's format (default: from the path)")
    im.add_argument("--fnames", type=Path, help="with a single .npy: a text file, one fname per row of the array")
    im.add_argument("--manifest", required=True, type=Path, help="the collection's manifest.csv")
    im.add_argument("--out", required=True, type=Path, help="embeddings HDF5 to write")
    im.add_argument("--model", required=True, help="the model name recorded in the file")
    im.add_argument("--variation", default=DEFAULT_VARIATION, help=f"the variation (default {DEFAULT_VARIATION})")
    im.add_argument("--level", choices=["clip", "frame"],
                    help="default: clip when every clip has one row, else frame")
    im.add_argument("--on-missing", choices=["skip", "fail"], default="skip",
                    help="clips of the manifest without a vector: skip: record them as failed (left out of the "
                         "evaluation); fail: stop, listing them")
    im.add_argument("--bad-audio", type=Path,
                    help="the manifest's bad_audio.csv: names listed there are dropped, not errors "
                         "(default: bad_audio.csv beside the manifest, when present)")
    im.set_defaults(func=_cmd_import_embeddings)


def _add_evaluate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ev = sub.add_parser(
        "evaluate", parents=[common],
        help="evaluate an embeddings file over aggregation x PCA x search settings (MAP@N, MR1)",
        description=f"Every setting writes OUT/{SETTING_PATTERN}/ with per_label.csv, per_family.csv, "
        "summary.json, rankings.h5 and per_query.parquet (one row per query and label: AP@N, R1).",
    )
    ev.add_argument("embeddings", type=Path, help="embeddings file (HDF5, docs/embeddings-format.md)")
    ev.add_argument("--ground-truth", required=True, type=Path,
                    help="CSV with columns fname,labels (labels comma-separated), e.g. manifest.csv")
    ev.add_argument("--families", type=Path, help="families.json (family -> labels) for family averages")
    ev.add_argument("--aggregation", nargs="+", choices=["mean", "median", "max", "none"],
                    help="frame aggregations (default: mean median max for frame-level files, none for clip-level)")
    ev.add_argument("--pca", nargs="+", default=["100", "200", "none"],
                    help="PCA components (integers) or 'none' (default: 100 200 none)")
    ev.add_argument("--search", nargs="+", choices=["mips", "mcss", "nns"], default=["mips", "mcss", "nns"],
                    help="similarity searches (default: all three)")
    ev.add_argument("--cutoffs", nargs="+", type=int, default=[15, 150], help="MAP@N cutoffs (default: 15 150)")
    ev.add_argument("--out", required=True, type=Path, help="output folder")
    ev.add_argument("--seed", type=int, default=0, help="random_state recorded for PCA (the exact solver ignores it)")
    ev.add_argument("--intersect", action="store_true",
                    help="evaluate the clips in both the embeddings and the ground truth (default: mismatch is an error)")
    ev.add_argument("--block-size", type=int, help="query rows per search block (default: about 4M scores per block)")
    ev.add_argument("--no-rankings", action="store_true", help="do not write rankings.h5")
    ev.add_argument("--save-processed", action="store_true",
                    help=f"also write each processed matrix to OUT/processed/{PROCESSING_PATTERN}.h5")
    ev.set_defaults(func=_cmd_evaluate)


def _add_listen(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    li = sub.add_parser(
        "listen", parents=[common],
        help="serve the listening page: compare systems' top results by ear and record ratings",
        description="A local web page over the workflow's results: pick a class, a query clip is drawn (seeded) "
        "or chosen, up to 4 systems (default: each model's best setting) show their top 15 results side by "
        "side with scores, labels and AP@15; listeners rate each list (1-5), in blind mode without names. "
        "Ratings go to <results>/<collection>/listening/ratings.sqlite; `snakemake listening` then writes "
        "tables/listening.csv and figures/listening.png (ratings vs MAP@15), tables/listening_metrics.csv and "
        "figures/listening_metrics.png (which metric agrees with listeners). Binds to 127.0.0.1 unless --host "
        "says otherwise.",
    )
    li.add_argument("--collection", help="collection name, results/<collection>/ (default: the config's, else demo)")
    li.add_argument("--results", help="results folder (default: the config's 'results', else results)")
    li.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)")
    li.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    li.add_argument("--config", help="config whose results/collection.name are used (default: config.yaml if present)")
    li.add_argument("--schema", help="schema file (default: the one shipped with soundsim, soundsim/data/config.schema.yaml)")
    li.set_defaults(func=_cmd_listen)


def _add_tables(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser(
        "tables", parents=[common],
        help="write the result tables of the configured collection (what `snakemake` rule tables does)",
        description="Reads the metrics files of exactly the settings the config asks for (every enabled model "
        "variation x aggregation x PCA x search) under <results>/<collection>/metrics/ and writes "
        "<results>/<collection>/tables/: all_settings.csv, best_settings.csv, models.csv, models.md, "
        "families.csv, labels.csv, pairwise.csv (bootstrap intervals and paired tests: evaluation.n_resamples, "
        "confidence, seed). Other folders in the tree are ignored.",
    )
    _config_args(t)
    t.set_defaults(func=_cmd_tables)


def _add_figures(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    f = sub.add_parser(
        "figures", parents=[common],
        help="draw the figures of the configured collection from its tables (what `snakemake` rule figures does)",
        description="Reads <results>/<collection>/tables/ (written by `soundsim tables` or the workflow), "
        "the rankings.h5 of the configured settings and manifest.csv, and writes <results>/<collection>/figures/: "
        "grid/<model>__<variation> (Fig. 1, grouped bars) and grid/<model>__<variation>_heatmap, families "
        "(Fig. 2), models, per_label, significance, precision_at_k, ranks, each .png and .pdf.",
    )
    _config_args(f)
    f.set_defaults(func=_cmd_figures)


def _add_index(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from soundsim.service.cli import add_index

    add_index(sub, common)


def _add_query(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from soundsim.service.cli import add_query

    add_query(sub, common)


def _add_serve(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from soundsim.service.cli import add_serve

    add_serve(sub, common)


#: the subcommands, in the order `soundsim --help` lists them
SUBCOMMANDS = (_add_check_config, _add_demo_data, _add_manifest, _add_models, _add_extract, _add_merge,
               _add_import_embeddings, _add_evaluate, _add_listen, _add_tables, _add_figures, _add_index,
               _add_query, _add_serve)


def _global_flags(p: argparse.ArgumentParser, default: object) -> None:
    """``--debug`` and ``-q``: accepted before and after the subcommand. The subcommands' copies
    default to SUPPRESS, so they set the flag only when given there."""
    p.add_argument("--debug", action="store_true", default=default, help="show tracebacks for input errors")
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``soundsim`` parser: global flags, then one sub-parser per entry of :data:`SUBCOMMANDS`."""
    p = argparse.ArgumentParser(
        prog="soundsim",
        description="Evaluate audio embeddings for semantic sound similarity (query-by-example). "
        "The full pipeline runs as a Snakemake workflow (`snakemake --cores N`); these "
        "subcommands run its steps by hand.",
    )
    p.add_argument("--version", action="version", version=f"soundsim {__version__}")
    _global_flags(p, False)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub, common)
    return p


def _missing_dependency(args: argparse.Namespace, error: ImportError) -> SoundsimError | None:
    """The :class:`soundsim.extras.MissingDependency` of an import that failed
    while running ``args.command`` (``model <name>`` for extract), or None when
    the module is soundsim's own (a broken install: the traceback shows it)."""
    from soundsim import extras

    what = f"model {args.model}" if args.command == "extract" else ""
    return extras.from_import_error(error, what)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; input errors and missing optional dependencies
    print one line (``soundsim <command>: ...``) and return 2."""
    args = build_parser().parse_args(argv)
    from soundsim.extras import MissingDependency
    from soundsim.logutil import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MissingDependency as e:
        if args.debug:
            raise
        print(f"soundsim {args.command}: {e}", file=sys.stderr)
        return 2
    except SoundsimError as e:
        if args.debug:
            raise
        print(f"soundsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        dep = _missing_dependency(args, e)
        if dep is None or args.debug:
            raise
        print(f"soundsim {args.command}: {dep}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
