"""``soundsim`` command line: thin wrappers over the library.

    soundsim check-config [config.yaml]
    soundsim demo-data --out results/demo/source [--seed 0] [--clips-per-class 16]
    soundsim manifest [--config config.yaml] [--threads N]

Errors in the user's input (config, collection, audio) print one clear message
and exit with status 2; ``--debug`` shows the traceback.
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

log = logging.getLogger("soundsim")


def _cmd_check_config(args: argparse.Namespace) -> int:
    from soundsim.config import load_config

    cfg = load_config(args.config, args.schema)
    print(f"{args.config}: valid")
    if args.show:
        print(json.dumps(cfg, indent=2))
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from soundsim.datasets import demo

    paths = demo.generate(args.out, seed=args.seed, clips_per_class=args.clips_per_class, progress=not args.quiet)
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
            demo.generate(src, cfg["collection"]["seed"], cfg["collection"]["clips_per_class"], not args.quiet)
    paths = manifest.run(
        cfg["collection"], collection_dir(cfg), cfg["extraction"]["on_bad_audio"], args.threads, not args.quiet, src
    )
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soundsim",
        description="Evaluate audio embeddings for semantic sound similarity (query-by-example). "
        "The full pipeline runs as a Snakemake workflow (`snakemake --cores N`); these "
        "subcommands run its steps by hand.",
    )
    p.add_argument("--version", action="version", version=f"soundsim {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check-config", help="validate a config file against the schema")
    c.add_argument("config", nargs="?", default="config.yaml", help="config file (default: config.yaml)")
    c.add_argument("--schema", help="schema file (default: workflow/schemas/config.schema.yaml)")
    c.add_argument("--show", action="store_true", help="print the config with defaults filled in")
    c.set_defaults(func=_cmd_check_config)

    d = sub.add_parser("demo-data", help="synthesise the demo collection (audio, ground truth, families)")
    d.add_argument("--out", required=True, type=Path, help="output folder (e.g. results/demo/source)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    d.add_argument("--clips-per-class", type=int, default=16, help="clips per class, 19 classes (default 16)")
    d.set_defaults(func=_cmd_demo_data)

    m = sub.add_parser(
        "manifest",
        help="check the configured collection and write manifest.csv, bad_audio.csv, labels.csv, families.json",
    )
    m.add_argument("--config", default="config.yaml", help="config file (default: config.yaml)")
    m.add_argument("--schema", help="schema file (default: workflow/schemas/config.schema.yaml)")
    m.add_argument("--threads", type=int, default=1, help="threads for decoding audio (default 1)")
    m.set_defaults(func=_cmd_manifest)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SoundsimError as e:
        if args.debug:
            raise
        print(f"soundsim {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
