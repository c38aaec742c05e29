"""Benchmark the evaluation grid on an FSD50K-shaped synthetic collection.

    .venv/bin/python benchmarks/bench_evaluate.py                      # 10,231 clips x 512, 27 settings
    .venv/bin/python benchmarks/bench_evaluate.py --clips 100000 --dim 128 --pca 100 none --aggregation mean

The collection: ``--clips`` clips, the 200 FSD50K labels with the evaluation-set
counts of ``FSD50K_ontology-counts.json`` (scaled by clips / 10,231 when
``--clips`` differs), hierarchical like FSD50K (a child label's clips are drawn
from its parent's clips; the top-level labels together cover every clip, so
each clip has >= 1 label); 1-20 frames per clip; embeddings = sum of random
label centres + per-clip scale and noise + per-frame noise (class structure,
unequal norms so MIPS, MCSS and NNS differ). Everything is seeded.

With ``--panel compare`` (default) the grid runs twice, without and with the
retrieval panel (graded gains from the FSD50K ontology, ``ontology_crowd.json``),
and the ratio of the two times is printed.

Printed: the grid time (``evaluate_grid``: aggregation, PCA, search, every
metric for every label, writing all outputs to a temporary folder), the time of
the float64 re-scoring that makes every ranking decision exact (part of the
search and metrics times; with the number of (query, clip) pairs re-scored per
query and setting, top-K and R1 together), the time of the bare floor for the
same settings (per setting only the float32 matrix products and
``np.argpartition`` top-K selections over the same query blocks, on matrices
prepared beforehand), their ratio, and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from soundsim import evaluate as E
from soundsim import process as P
from soundsim import search as S
from soundsim.evaluate import evaluate_grid
from soundsim.store import read_embeddings, write_embeddings

ONTOLOGY = Path("/work/shared/data/fsd50k-ontology/FSD50K_ontology-counts.json")
FAMILIES = Path("/work/shared/data/fsd50k-ontology/FSD50K_taxonomy-families.json")
CROWD = Path("/work/shared/data/fsd50k-ontology/ontology_crowd.json")
FSD50K_EVAL_CLIPS = 10231


def label_tree(path: Path) -> list[tuple[str, int, str | None]]:
    """(label, eval clip count, parent label or None) in top-down order."""
    root = json.loads(path.read_text())
    out: list[tuple[str, int, str | None]] = []

    def walk(node: dict, parent: str | None) -> None:
        for child in node.get("children", []):
            m = re.fullmatch(r"(.*)_\[(\d+)\]", child["name"])
            if not m:
                raise ValueError(f"{path}: unexpected node name {child['name']!r}")
            out.append((m.group(1), int(m.group(2)), parent))
            walk(child, m.group(1))

    walk(root, None)
    return out


def assign_labels(n: int, tree: list[tuple[str, int, str | None]], rng: np.random.Generator) -> list[list[str]]:
    """Give each label its (scaled) count of clips: top-level labels laid end
    to end over a random permutation (cyclically, so all clips are covered),
    children sampled from their parent's clips."""
    scale = n / FSD50K_EVAL_CLIPS
    members: dict[str, np.ndarray] = {}
    perm = rng.permutation(n)
    pos = 0
    for lab, count, parent in tree:
        c = min(n, max(1, round(count * scale)))
        if parent is None:
            members[lab] = perm[(pos + np.arange(c)) % n]
            pos += c
        else:
            pool = members[parent] if len(members[parent]) >= c else np.arange(n)
            members[lab] = rng.choice(pool, size=c, replace=False)
    if pos < n:
        raise ValueError("top-level labels do not cover every clip")
    labels: list[list[str]] = [[] for _ in range(n)]
    for lab, idx in members.items():
        for i in idx:
            labels[i].append(lab)
    return labels


def synth_embeddings(labels: list[list[str]], dim: int, max_frames: int, rng: np.random.Generator):
    names = sorted({lab for ls in labels for lab in ls})
    col = {lab: j for j, lab in enumerate(names)}
    centres = rng.standard_normal((len(names), dim)).astype(np.float32) / np.sqrt(dim)
    n = len(labels)
    clip = np.zeros((n, dim), dtype=np.float32)
    for i, ls in enumerate(labels):
        clip[i] = centres[[col[lab] for lab in ls]].sum(axis=0)
    clip += rng.standard_normal((n, dim)).astype(np.float32) * np.float32(0.8 / np.sqrt(dim))
    clip *= rng.uniform(0.5, 2.0, size=(n, 1)).astype(np.float32)  # unequal norms
    clip += np.float32(0.3) / np.sqrt(dim)  # a common offset (PCA centres it away)
    counts = rng.integers(1, max_frames + 1, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    frames = np.repeat(clip, counts, axis=0)
    frames += rng.standard_normal(frames.shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(dim))
    return frames, offsets


def floor_time(
    emb, aggregations: list[str], pcas: list, searches: list[str], k: int, block: int, seed: int
) -> tuple[float, float]:
    """Matrix products + argpartition only, on matrices prepared beforehand.

    Returns (per-setting floor: one product and one selection per setting and
    query block; shared-product floor: one product per processing setting and
    query block, as the engine does, and one selection per search)."""
    per_setting = shared = 0.0
    for agg in aggregations:
        X = P.aggregate(emb.embeddings, emb.offsets, agg)
        for pca in pcas:
            Z, _ = P.process(X, pca, seed=seed)
            n = Z.shape[0]
            for s in searches:
                Zs = np.ascontiguousarray(P.normalize_for_search(Z, s))
                t0 = time.perf_counter()
                for start in range(0, n, block):
                    G = Zs[start : start + block] @ Zs.T
                    np.argpartition(G, n - k, axis=1)
                per_setting += time.perf_counter() - t0
            t0 = time.perf_counter()
            for start in range(0, n, block):
                G = Z[start : start + block] @ Z.T
                for _ in searches:
                    np.argpartition(G, n - k, axis=1)
            shared += time.perf_counter() - t0
    return per_setting, shared


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=FSD50K_EVAL_CLIPS)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--max-frames", type=int, default=20)
    ap.add_argument("--aggregation", nargs="+", default=["mean", "median", "max"])
    ap.add_argument("--pca", nargs="+", default=["100", "200", "none"])
    ap.add_argument("--search", nargs="+", default=list(S.SEARCHES))
    ap.add_argument("--cutoffs", nargs="+", type=int, default=[15, 150])
    ap.add_argument("--block-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--no-rankings", action="store_true", help="do not write rankings.h5 files")
    ap.add_argument("--panel", choices=["on", "off", "compare"], default="compare",
                    help="the retrieval panel (soundsim.panel) with FSD50K ontology gains: on, off, or compare "
                         "(the grid without it first, then with it; prints the ratio)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    labels = assign_labels(args.clips, label_tree(ONTOLOGY), rng)
    frames, offsets = synth_embeddings(labels, args.dim, args.max_frames, rng)
    fnames = [str(100000 + i) for i in range(args.clips)]
    families = json.loads(FAMILIES.read_text())
    n_lab = len({lab for ls in labels for lab in ls})
    print(f"collection: {args.clips} clips, {n_lab} labels ({np.mean([len(ls) for ls in labels]):.2f} per clip), "
          f"{frames.shape[0]} frames x {args.dim} (built in {time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        attrs = {"model": "synthetic", "variation": "v"}
        path = write_embeddings(Path(tmp) / "emb.h5", fnames, (frames, offsets), attrs)
        del frames
        t0 = time.perf_counter()
        emb = read_embeddings(path)
        print(f"read + validate embeddings: {time.perf_counter() - t0:.2f} s")
        settings = len(args.aggregation) * len(args.pca) * len(args.search)
        block = args.block_size or S.default_block_size(args.clips)
        rescored: dict[str, int] = {}  # setting -> (query, clip) pairs re-scored in float64
        search_and_score = E.search_and_score

        def recording(Z, *a, **kw):  # the grid's own passes, with their re-scoring counts
            results = search_and_score(Z, *a, **kw)
            for s, r in results.items():
                rescored[f"{kw.get('desc', '')} {s}"] = int(getattr(r, "n_rescored", 0))
            return results

        relevance = None
        if args.panel != "off":
            from soundsim.datasets.ontology import load_ontology
            from soundsim.relevance import ontology_gains, write_gains

            names = sorted({lab for ls in labels for lab in ls})
            t0 = time.perf_counter()
            relevance = write_gains(names, ontology_gains(load_ontology(CROWD), names), Path(tmp) / "relevance.csv")
            print(f"ontology gains of {len(names)} labels (rule relevance): {time.perf_counter() - t0:.2f} s")
        if args.panel == "compare":
            t0 = time.perf_counter()
            evaluate_grid(emb, (fnames, labels), families, args.aggregation, args.pca, args.search, args.cutoffs,
                          out_dir=Path(tmp) / "off", seed=args.seed, block_size=args.block_size,
                          write_rankings_files=not args.no_rankings, panel=False)
            grid_off = time.perf_counter() - t0
            print(f"grid without the panel (the paper's metrics only): {grid_off:.1f} s")
        E.search_and_score = recording
        t0 = time.perf_counter()
        try:
            summaries = evaluate_grid(
                emb, (fnames, labels), families, args.aggregation, args.pca, args.search, args.cutoffs,
                out_dir=Path(tmp) / "out", seed=args.seed, block_size=args.block_size,
                write_rankings_files=not args.no_rankings, panel=args.panel != "off", relevance=relevance,
            )
        finally:
            E.search_and_score = search_and_score
        grid = time.perf_counter() - t0
        if args.panel == "compare":
            print(f"grid with the panel (graded nDCG@15/150 with ontology gains, bnDCG@10, MRR, recall@k, P@k, "
                  f"R-precision, class-wise and micro): {grid:.1f} s; ratio with / without = {grid / grid_off:.2f}")
        rss_grid = peak_rss_gib()
        parts: dict[str, float] = {}
        for s in summaries:
            for key, v in s["timings"].items():
                parts[key] = parts.get(key, 0.0) + v
        # shared timings were recorded in every summary that shares them
        n_s, n_p = len(args.search), len(args.pca) * len(args.search)
        parts["aggregation_s"] /= n_p
        parts["pca_s"] /= n_s
        parts["gram_s"] /= n_s
        print(f"grid: {settings} settings, block {block} rows, K = {max(args.cutoffs)}: {grid:.1f} s "
              f"(peak RSS so far {rss_grid:.2f} GiB)")
        print("  " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in parts.items()))
        if rescored:
            per_q = np.array(list(rescored.values())) / args.clips
            print(f"float64 re-scoring (exact decisions): {parts.get('rescore_s', 0.0):.2f} s in all, "
                  f"{per_q.mean():.1f} (query, clip) pairs re-scored per query and setting on average "
                  f"(min {per_q.min():.1f}, max {per_q.max():.1f}; top-K and R1 together)")
        for s in summaries:
            m, mi = s["macro"], s["micro"]
            print(f"  {s['setting']['name']:<32} macro " + " ".join(f"{k}={v:.3f}" for k, v in m.items())
                  + f" | micro map@{min(args.cutoffs)}={mi[f'map@{min(args.cutoffs)}']:.3f}")
        if not args.skip_floor:
            k = min(max(args.cutoffs), args.clips - 1)
            floor, shared = floor_time(emb, args.aggregation, args.pca, args.search, k, block, args.seed)
            print(f"floor (matmul + argpartition top-{k} per setting, {settings} settings): {floor:.1f} s; "
                  f"ratio grid / floor = {grid / floor:.2f}")
            print(f"stricter floor (one matmul per processing setting shared by the searches, as the engine "
                  f"does): {shared:.1f} s; ratio grid / stricter floor = {grid / shared:.2f}")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
