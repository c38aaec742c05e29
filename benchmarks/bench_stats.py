"""Benchmark the bootstrap statistics on an FSD50K-sized collection.

    .venv/bin/python benchmarks/bench_stats.py                    # 14 models, 10,231 clips, 1,000 resamples
    .venv/bin/python benchmarks/bench_stats.py --grid 27          # also intervals for 14 x 27 settings

The collection: 10,231 clips with the 200 FSD50K labels and their evaluation-set
counts, hierarchical as in FSD50K (:func:`bench_evaluate.assign_labels`: a
child label's clips are drawn from its parent's, so most clips carry several
labels and are a query once per label: ~38,600 class-wise queries). Per-query
values for ``--models`` systems: a shared per-query difficulty plus a model
offset (0.002 MAP@15 apart, so neighbours are hard to separate) and noise
(AP@15, AP@150 in [0, 1], R1 a non-negative integer rank), so the models are
correlated as real ones are. Everything is seeded.

Printed: the wall and CPU time (all threads) of :func:`soundsim.stats.intervals` (every model's macro
MAP@15, MAP@150, MR1 intervals), of :func:`soundsim.stats.pairwise` (every
pair: paired bootstrap, p-values, Holm), of the end-to-end
:func:`soundsim.tables.pairwise_table` (reading the per_query.parquet files,
both comparisons: fixed and best setting), optionally of
:func:`soundsim.tables.add_intervals` over ``--grid`` settings per model, and
the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_evaluate import FSD50K_EVAL_CLIPS, ONTOLOGY, assign_labels, label_tree  # noqa: E402

from soundsim import layout as L  # noqa: E402
from soundsim import stats as St  # noqa: E402
from soundsim import tables as T  # noqa: E402


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def per_query_frames(n_clips: int, n_models: int, seed: int) -> tuple[dict[str, pd.DataFrame], int]:
    rng = np.random.default_rng(seed)
    labels = assign_labels(n_clips, label_tree(ONTOLOGY), rng)
    fnames = np.array([f"{100000 + i}" for i in range(n_clips)])
    q = np.repeat(np.arange(n_clips), [len(ls) for ls in labels])
    lab = np.array([x for ls in labels for x in ls])
    n_l = pd.Series(lab).value_counts()
    ok = (n_l[lab] >= 2).to_numpy()
    base = rng.beta(2, 2.5, q.size)
    frames = {}
    for m in range(n_models):
        ap15 = np.clip(base + 0.002 * m + 0.12 * rng.standard_normal(q.size), 0, 1)
        ap150 = np.clip(0.8 * ap15 + 0.05 * rng.standard_normal(q.size), 0, 1)
        r1 = np.floor(rng.exponential(60 * (1.2 - ap15)))
        df = pd.DataFrame({"fname": fnames[q], "label": lab, "ap@15": ap15, "ap@150": ap150, "r1": r1})
        df.loc[~ok, ["ap@15", "ap@150", "r1"]] = np.nan
        frames[f"model_{m:02d}"] = df
    return frames, int(q.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=FSD50K_EVAL_CLIPS)
    ap.add_argument("--models", type=int, default=14)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--grid", type=int, default=0, help="also time intervals for this many settings per model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    frames, n_pairs = per_query_frames(args.clips, args.models, args.seed)
    t_data = time.perf_counter() - t0
    n_lab = frames["model_00"]["label"].nunique()
    print(f"collection: {args.clips} clips, {n_lab} labels, {n_pairs} class-wise queries; {args.models} models; "
          f"{args.resamples} resamples (synthesised in {t_data:.1f} s)")
    rss0 = rss_gib()

    t0, c0 = time.perf_counter(), time.process_time()
    ci = St.intervals(frames, args.resamples, seed=args.seed)
    t_ci, c_ci = time.perf_counter() - t0, time.process_time() - c0
    print(f"intervals, {args.models} models x 3 metrics: {t_ci:.2f} s (CPU {c_ci:.2f} s)")

    t0, c0 = time.perf_counter(), time.process_time()
    pw = St.pairwise(frames, args.resamples, seed=args.seed)
    t_pw, c_pw = time.perf_counter() - t0, time.process_time() - c0
    n_sig = int(pw.loc[pw["metric"] == "map@15", "significant"].sum())
    print(f"pairwise, {len(pw) // 3} pairs x 3 metrics (paired bootstrap, p-values, Holm): {t_pw:.2f} s "
          f"(CPU {c_pw:.2f} s); "
          f"MAP@15: {n_sig} of {len(pw) // 3} pairs significant")

    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics"
        fixed, best = L.setting_name("mean", 100, "mcss"), L.setting_name("mean", 200, "mcss")
        t0 = time.perf_counter()
        settings = []
        for name, df in frames.items():
            for setting in (fixed, best):
                files = L.setting_files(metrics, name, "v", setting)
                files.dir.mkdir(parents=True, exist_ok=True)
                df.to_parquet(files.per_query, index=False)
                settings.append(files)
        t_write = time.perf_counter() - t0
        models = pd.DataFrame({"model": list(frames), "variation": "v", "setting": fixed, "best_setting": best,
                               "note": ""})
        t0, c0 = time.perf_counter(), time.process_time()
        table = T.pairwise_table(settings, models, args.resamples, seed=args.seed)
        t_tab, c_tab = time.perf_counter() - t0, time.process_time() - c0
        print(f"tables.pairwise_table from {2 * len(frames)} per_query.parquet files, both comparisons "
              f"({len(table)} rows): {t_tab:.2f} s (CPU {c_tab:.2f} s; writing the files: {t_write:.1f} s)")

        t_grid = None
        if args.grid:
            rows = []
            for name in frames:
                for k in range(args.grid):
                    setting = L.setting_name("mean", k, "mcss")
                    files = L.setting_files(metrics, name, "v", setting)
                    if not files.per_query.exists():
                        files.dir.mkdir(parents=True, exist_ok=True)
                        frames[name].to_parquet(files.per_query, index=False)
                    settings.append(files)
                    rows.append({"model": name, "variation": "v", "setting": setting, "map@15": 0.0,
                                 "map@150": 0.0, "mr1": 0.0})
            t0, c0 = time.perf_counter(), time.process_time()
            T.add_intervals(pd.DataFrame(rows), settings, args.resamples, seed=args.seed)
            t_grid, c_grid = time.perf_counter() - t0, time.process_time() - c0
            print(f"tables.add_intervals, {len(rows)} settings (all_settings.csv): {t_grid:.2f} s "
                  f"(CPU {c_grid:.2f} s)")

    total = t_ci + t_pw
    print(f"total (intervals + all pairs): {total:.2f} s wall, CPU {c_ci + c_pw:.2f} s   [target < 60 s on 2 cores]")
    print(f"peak RSS: {rss_gib():.2f} GiB (after synthesising the data: {rss0:.2f} GiB)")
    assert np.isfinite(ci["lo"]).all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
