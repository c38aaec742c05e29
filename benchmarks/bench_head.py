"""Benchmark training a learned similarity head (soundsim.head) on CPU.

    .venv/bin/python benchmarks/bench_head.py                       # 10,000 clips x 512 dims, 200 labels
    .venv/bin/python benchmarks/bench_head.py --clips 40000 --loss proxy-anchor --threads 2

Generates an FSD50K-shaped labelled set in this process (seeded): ``--clips`` clip vectors
of ``--dim`` dimensions, 200 labels with skewed sizes (Zipf-like, as FSD50K's), one clip in
four with a second label; each label's clips lie around its own centre in a random
64-dimensional subspace plus isotropic noise, L2-normalised like a deep model's clip vectors.
Then trains one head with HeadSpec's defaults (or the flags) in a fresh subprocess, so that
its peak resident memory is the training's alone, and prints: clips, epochs run, best epoch,
training seconds, seconds per epoch, best validation MAP@15, MAP@15 of the raw vectors on the
same validation clips, peak RSS (MiB), and apply throughput (clips/s).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def labelled_set(n: int, d: int, n_labels: int = 200, seed: int = 0) -> tuple[np.ndarray, list[list[str]]]:
    """(X, labels): see the module docstring."""
    rng = np.random.default_rng(seed)
    sizes = 1.0 / np.arange(1, n_labels + 1) ** 0.8
    primary = rng.choice(n_labels, size=n, p=sizes / sizes.sum())
    basis = np.linalg.qr(rng.standard_normal((d, 64)))[0]  # (d, 64)
    centres = rng.standard_normal((n_labels, 64))
    X = np.empty((n, d), dtype=np.float64)
    labels = []
    for s in range(0, n, 4096):
        p = primary[s:s + 4096]
        X[s:s + len(p)] = centres[p] @ basis.T * 0.5 + rng.standard_normal((len(p), d)) / np.sqrt(d) * 3.0
    for i, p in enumerate(primary):
        ls = [f"label{p:03d}"]
        if i % 4 == 3:
            q = int(rng.integers(n_labels))
            X[i] += centres[q] @ basis.T * 0.25
            ls.append(f"label{q:03d}")
        labels.append(ls)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, labels


def child(args: argparse.Namespace) -> None:
    from soundsim import head as HD
    from soundsim import metrics as M

    X, labels = labelled_set(args.clips, args.dim, seed=args.seed)
    spec = HD.HeadSpec.from_config({k: v for k, v in {"loss": args.loss, "threads": args.threads,
                                                      "epochs": args.epochs}.items() if v is not None})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    head = HD.train_head(X, labels, spec)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _, va = HD.split_validation([sorted(set(ls)) for ls in labels], spec.val_fraction, spec.seed)
    Xv = X[va]
    raw = M.metrics_from_scores(Xv @ Xv.T, M.build_label_index([labels[i] for i in va]), [15]).macro()["map@15"]
    t1 = time.perf_counter()
    head.apply(X)
    apply_s = time.perf_counter() - t1
    print(json.dumps({
        "clips": args.clips, "dim": args.dim, "loss": spec.loss, "threads": spec.threads,
        "epochs_run": len(head.history), "best_epoch": head.best_epoch, "train_s": round(seconds, 1),
        "s_per_epoch": round(float(head.history["seconds"].mean()), 2),
        "best_val_map@15": round(float(head.history["val_map@15"].max()), 4), "raw_val_map@15": round(raw, 4),
        "rss_before_mib": round(rss0), "peak_rss_mib": round(rss), "apply_clips_per_s": round(args.clips / apply_s),
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--loss", choices=["supcon", "proxy-anchor"], default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: HeadSpec's 1)")
    ap.add_argument("--epochs", type=int, default=None, help="most epochs (default: HeadSpec's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    cmd = [sys.executable, __file__, "--child", *sys.argv[1:]]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        sys.exit(r.stderr[-3000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for k, v in res.items():
        print(f"{k:>18}: {v}")


if __name__ == "__main__":
    main()
