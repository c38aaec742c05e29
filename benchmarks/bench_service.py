"""Benchmark the similarity service's vector indexes (soundsim.ann) at 1M and 10M sounds.

    .venv/bin/python benchmarks/bench_service.py --quick                       # seconds: smoke check
    .venv/bin/python benchmarks/bench_service.py --sizes 1M --dims 100 512      # every index type
    .venv/bin/python benchmarks/bench_service.py --sizes 10M --dims 100 --types ivf-sq8 ivf-pq

Every index is built, searched and re-ranked through :class:`soundsim.ann.VectorIndex`
(the service's code path: faiss candidates, exact float64 re-ranking). Each index type
runs in a **fresh child process** (this script with ``--worker``), so its build time,
resident memory and peak RSS are its own.

The collection (one per size and dimension, written once to ``--work`` as raw float32,
generated in chunks of ``CHUNK`` rows, each from its own seed, so 10M rows never need
to be in memory): **FSD50K-shaped and clustered**. ``n / 50`` "source recordings"
(think of takes of the same sound in a Freesound pack) get labels with the FSD50K
evaluation set's relative label counts (``FSD50K_ontology-counts.json``, hierarchical,
via ``bench_evaluate.assign_labels``); a recording's centre is the normalised sum of
its labels' random prototypes plus noise (``SIGMA_SOURCE``); each clip is a random
recording's centre plus noise (``SIGMA_CLIP``; both noises with a decaying per-dimension
spectrum like a PCA output's, :func:`spectrum`), L2-normalised (unit vectors), and
carries its recording's labels. So the vectors have cluster structure (recordings
within label combinations) and MAP@15 is meaningful.

Measured per (n, d, type), in the same run:

* exact ground truth: brute force over the file in chunks (faiss ``IndexFlat`` top
  ``k + 33`` per chunk, merged) re-ranked in float64 with :func:`soundsim.ann.exact_keys_to`,
  i.e. the same keys and tie rule as :mod:`soundsim.search`;
* build: ``VectorIndex.build`` on the first rows (IVF training sample included), then
  ``VectorIndex.add`` chunk by chunk; re-ranking reads the float32 vectors from a
  read-only ``np.memmap`` of the file (file-backed pages, reported apart as ``RssFile``);
* memory: ``memory_bytes()`` (the faiss index) per sound; the worker's ``VmRSS``
  (anonymous + file-backed) after the build and its peak RSS (``ru_maxrss``);
* latency: one query at a time, faiss single-threaded, p50/p99 over ``--queries``
  held-out queries (``flat``: at most 200), re-ranking included;
* batch QPS: all held-out queries in one ``search`` call, ``--threads`` faiss threads;
* recall@15: |approximate top-15 & exact top-15| / 15 over the held-out queries;
* MAP@15 (class-wise, macro over labels, :func:`soundsim.metrics.average_precision_at_n`,
  denominator ``min(15, n_L)``) over ``--map-queries`` collection clips as queries (the
  query excluded through ``exclude``), and its loss against the exact top-15.

Types whose index would exceed ``--max-index-gib`` (uncompressed float32 vectors at
10M) are skipped, saying why. ``--sweep`` also measures other search-time parameters
(``nprobe``, ``ef_search``, ``rerank``) on each built index: the figures behind
:data:`soundsim.ann.DEFAULTS`. ``--out`` writes the table as CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 262_144  # rows generated / read / added at once
SIGMA_SOURCE = 2.0  # noise of a recording's centre around its labels' prototype sum (unit-scale)
SIGMA_CLIP = 1.0  # noise of a clip around its recording's centre
CLIPS_PER_SOURCE = 4  # near-duplicate takes per recording (Poisson-distributed)
K = 15
MARGIN = 33  # ground-truth candidates: k + margin (+1 for the query itself)
SWEEP = {
    "ivf": [("nprobe", v) for v in (4, 8, 32, 64, 128)],
    "ivf-sq8": [("nprobe", v) for v in (8, 32, 64)] + [("rerank", v) for v in (2, 8)],
    "ivf-pq": [("nprobe", v) for v in (8, 32, 64)] + [("rerank", v) for v in (8, 32, 64)],
    "hnsw": [("ef_search", v) for v in (32, 64, 256, 512)],
}
ALL_TYPES = ("flat", "hnsw", "ivf", "ivf-sq8", "ivf-pq", "freesound")


def size_of(text: str) -> int:
    """``1M``, ``100k``, ``10000000`` -> rows."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100k, 1M, 10M)")
    return int(float(m.group(1)) * {"": 1, "k": 10**3, "m": 10**6}[m.group(2).lower()])


def size_label(n: int) -> str:
    if n >= 10**6 and n % 10**6 == 0:
        return f"{n // 10**6}M"
    if n >= 10**3 and n % 10**3 == 0:
        return f"{n // 10**3}k"
    return str(n)


def proc_status() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, VmHWM of this process in GiB (/proc/self/status)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(rest.split()[0]) / 2**20  # kB -> GiB
    return out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# ---------------------------------------------------------------- the collection


def paths(work: Path, n: int, d: int) -> dict[str, Path]:
    base = work / f"{size_label(n)}x{d}"
    return {k: base.with_suffix(s) for k, s in (("vectors", ".f32"), ("meta", ".npz"), ("truth", ".truth.npz"))}


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def spectrum(d: int) -> np.ndarray:
    """Per-dimension noise scale ``(1 + i)^-1/2``, mean square 1: a decaying spectrum like a
    PCA output's (the noise is not isotropic; the signal lives in fewer directions)."""
    w = (1.0 + np.arange(d)) ** -0.5
    return (w / np.sqrt(np.mean(w**2))).astype(np.float32)


def clips_from(centres: np.ndarray, src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors: the recordings' centres ``centres[src]`` plus noise ``SIGMA_CLIP`` (:func:`spectrum`)."""
    d = centres.shape[1]
    scale = spectrum(d) * np.float32(SIGMA_CLIP / np.sqrt(d))
    x = centres[src] + rng.standard_normal((src.size, d), dtype=np.float32) * scale
    return unit_rows(x)


def make_collection(work: Path, n: int, d: int, n_queries: int, n_map: int, seed: int) -> dict[str, Path]:
    """Write the collection (raw float32, C order), its metadata (recording of each clip,
    recordings' labels, held-out queries, MAP query rows) once; returns the paths."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_evaluate import ONTOLOGY, assign_labels, label_tree

    p = paths(work, n, d)
    if p["vectors"].is_file() and p["meta"].is_file() and p["vectors"].stat().st_size == n * d * 4:
        return p
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, d, n])
    m = max(1, n // CLIPS_PER_SOURCE)
    src_labels = assign_labels(m, label_tree(ONTOLOGY), rng)
    names = sorted({lab for ls in src_labels for lab in ls})
    col = {lab: j for j, lab in enumerate(names)}
    Y = np.zeros((m, len(names)), dtype=bool)
    for j, ls in enumerate(src_labels):
        Y[j, [col[lab] for lab in ls]] = True
    protos = unit_rows(rng.standard_normal((len(names), d)))
    centres = np.concatenate([unit_rows(Y[i : i + CHUNK].astype(np.float32) @ protos) for i in range(0, m, CHUNK)])
    centres += rng.standard_normal((m, d), dtype=np.float32) * (spectrum(d) * np.float32(SIGMA_SOURCE / np.sqrt(d)))
    src = np.empty(n, dtype=np.int32)
    tmp = p["vectors"].with_suffix(".f32.tmp")
    with open(tmp, "wb") as f:
        for c, start in enumerate(range(0, n, CHUNK)):
            r = np.random.default_rng([seed, d, n, 1, c])  # one seed per chunk
            s = r.integers(0, m, size=min(CHUNK, n - start), dtype=np.int32)
            src[start : start + s.size] = s
            clips_from(centres, s, r).tofile(f)
    r = np.random.default_rng([seed, d, n, 2])
    q_src = r.integers(0, m, size=n_queries, dtype=np.int32)
    queries = clips_from(centres, q_src, r)
    map_rows = np.sort(r.choice(n, size=min(n_map, n), replace=False)).astype(np.int64)
    np.savez(p["meta"], src=src, Y=Y, labels=np.array(names), queries=queries, map_rows=map_rows)
    tmp.rename(p["vectors"])
    print(f"  collection {size_label(n)} x {d}: {m} recordings, {len(names)} labels "
          f"({Y.sum(1).mean():.2f} per clip), written in {time.perf_counter() - t0:.1f} s "
          f"({n * d * 4 / 2**30:.2f} GiB float32)", flush=True)
    return p


def read_rows(path: Path, d: int, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the raw float32 file, read (not mapped: no resident file pages)."""
    return np.fromfile(path, dtype=np.float32, count=(stop - start) * d, offset=start * d * 4).reshape(-1, d)


def exact_truth(p: dict[str, Path], n: int, d: int, search: str, threads: int) -> tuple[dict, float]:
    """Exact top-15 of the held-out queries and of the MAP rows (themselves excluded):
    brute force per chunk (faiss IndexFlat, float32) for ``k + MARGIN + 1`` candidates,
    merged, then exact float64 keys and the tie rule (lower id first)."""
    import faiss

    from soundsim.ann import exact_keys_to, search_vectors

    if p["truth"].is_file():
        t = np.load(p["truth"])
        return {"queries": t["queries"], "map": t["map"]}, float(t["seconds"])
    faiss.omp_set_num_threads(threads)
    meta = np.load(p["meta"])
    Zmm = np.memmap(p["vectors"], dtype=np.float32, mode="r", shape=(n, d))
    Q = np.concatenate([meta["queries"], np.asarray(Zmm[meta["map_rows"]])]).astype(np.float64)
    Qv = search_vectors(Q, search)
    kk = min(n, K + MARGIN + 1)
    t0 = time.perf_counter()
    best_s = np.full((Q.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((Q.shape[0], 0), dtype=np.int64)
    metric = faiss.METRIC_L2 if search == "nns" else faiss.METRIC_INNER_PRODUCT
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        flat = faiss.IndexFlat(d, metric)
        flat.add(search_vectors(read_rows(p["vectors"], d, start, stop), search))
        s, i = flat.search(Qv, min(kk, stop - start))
        s = -s if search == "nns" else s
        best_s = np.concatenate([best_s, s], axis=1)
        best_i = np.concatenate([best_i, i + start], axis=1)
        if best_s.shape[1] > kk:
            top = np.argpartition(-best_s, kk - 1, axis=1)[:, :kk]
            best_s = np.take_along_axis(best_s, top, 1)
            best_i = np.take_along_axis(best_i, top, 1)
    nq = meta["queries"].shape[0]
    out = np.full((Q.shape[0], K), -1, dtype=np.int64)
    for r in range(Q.shape[0]):
        c = best_i[r]
        if r >= nq:
            c = c[c != meta["map_rows"][r - nq]]
        keys = exact_keys_to(Zmm, Q[r], c, search)
        o = np.lexsort((c, -keys))[:K]
        out[r, : o.size] = c[o]
    seconds = time.perf_counter() - t0
    np.savez(p["truth"], queries=out[:nq], map=out[nq:], seconds=seconds)
    return {"queries": out[:nq], "map": out[nq:]}, seconds


def recall_at(ids: np.ndarray, truth: np.ndarray) -> float:
    """Mean |ids_i & truth_i| / k over queries."""
    k = truth.shape[1]
    return float(np.mean([np.intersect1d(a[a >= 0], b).size / k for a, b in zip(ids, truth)]))


def map_at(ids: np.ndarray, meta, k: int = K) -> float:
    """Class-wise MAP@k (macro over labels) of the MAP rows' top-k lists: per (query, label)
    pair AP@k with relevance 'carries the label' and denominator ``min(k, n_L)``."""
    from soundsim.metrics import average_precision_at_n

    src, Y, rows = meta["src"], meta["Y"], meta["map_rows"]
    per_src = np.bincount(src, minlength=Y.shape[0])
    n_l = sum(per_src[i : i + CHUNK] @ Y[i : i + CHUNK].astype(np.int64) for i in range(0, Y.shape[0], CHUNK))
    retrieved = np.where(ids >= 0, ids, 0)
    R = Y[src[retrieved]] & (ids >= 0)[:, :, None]  # (Qm, k, L)
    qi, li = np.nonzero(Y[src[rows]])
    ap = average_precision_at_n(R[qi, :, li], k, np.minimum(k, n_l[li]))
    per_label = np.bincount(li, weights=ap, minlength=Y.shape[1]) / np.maximum(1, np.bincount(li, minlength=Y.shape[1]))
    return float(per_label[np.bincount(li, minlength=Y.shape[1]) > 0].mean())


# ---------------------------------------------------------------- one index type (child process)


def estimated_index_bytes(type_: str, n: int, d: int) -> int:
    """A conservative estimate of the faiss index size (decides what is skipped)."""
    from soundsim.ann import make_spec

    p = make_spec(type_, "mcss", n, d).params
    if type_ in ("hnsw", "freesound"):
        return n * (4 * d + 8 * p["m"] + 16)
    if type_ == "ivf-sq8":
        return n * (d + 8)
    if type_ == "ivf-pq":
        return n * (p["pq_m"] * p["pq_nbits"] // 8 + 8)
    return n * (4 * d + 8)


def latencies(vi, Q: np.ndarray, k: int) -> np.ndarray:
    """Seconds of each single-query ``search`` (after 10 warm-up queries)."""
    for q in Q[:10]:
        vi.search(q[None], k)
    out = np.empty(Q.shape[0])
    for i, q in enumerate(Q):
        t0 = time.perf_counter()
        vi.search(q[None], k)
        out[i] = time.perf_counter() - t0
    return out


def worker(job: dict) -> dict:
    """Build one index through soundsim.ann, measure it, save its top-k lists; returns figures."""
    import faiss

    from soundsim.ann import VectorIndex, make_spec

    n, d, search, threads = job["n"], job["d"], job["search"], job["threads"]
    vec = Path(job["vectors"])
    meta = np.load(job["meta"])
    Zmm = np.memmap(vec, dtype=np.float32, mode="r", shape=(n, d))
    spec = make_spec(job["type"], search, n, d, job.get("params") or {})
    faiss.omp_set_num_threads(threads)
    res: dict = {"params": spec.params, "rss_start": proc_status()}
    first = min(n, max(CHUNK, 64 * int(spec.params.get("nlist") or 0)))
    t0 = time.perf_counter()
    vi = VectorIndex.build(read_rows(vec, d, 0, first), spec)
    for start in range(first, n, CHUNK):
        vi.add(read_rows(vec, d, start, min(n, start + CHUNK)), Zmm)
    if vi.Z64 is not Zmm:
        vi.Z64 = Zmm  # everything fitted in the first rows: re-rank from the map all the same
    res["build_s"] = time.perf_counter() - t0
    res["rss_built"] = proc_status()
    Q = meta["queries"].astype(np.float64)
    faiss.omp_set_num_threads(1)
    n_lat = min(len(Q), 200) if spec.type == "flat" else len(Q)
    res["load_avg"] = os.getloadavg()[0]
    lat = latencies(vi, Q[:n_lat], K)
    res["p50_ms"], res["p99_ms"] = float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3)
    res["lat_queries"] = n_lat
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    ids, _ = vi.search(Q, K)
    res["qps"] = len(Q) / (time.perf_counter() - t0)
    np.save(Path(job["out"]) / "queries.npy", ids)
    rows = meta["map_rows"]
    t0 = time.perf_counter()
    mids, _ = vi.search(np.asarray(Zmm[rows], dtype=np.float64), K, exclude=[np.array([r]) for r in rows])
    res["map_search_s"] = time.perf_counter() - t0
    np.save(Path(job["out"]) / "map.npy", mids)
    sweep = []
    for key, value in SWEEP.get(spec.type, []) if job.get("sweep") else []:
        v2 = VectorIndex(make_spec(spec.type, search, n, d, {**job.get("params", {}), key: value}), vi.index, Zmm)
        faiss.omp_set_num_threads(1)
        lat = latencies(v2, Q[:300], K)
        faiss.omp_set_num_threads(threads)
        sids, _ = v2.search(Q, K)
        name = f"sweep{len(sweep)}.npy"
        np.save(Path(job["out"]) / name, sids)
        sweep.append({"param": key, "value": value, "p50_ms": float(np.percentile(lat, 50) * 1e3),
                      "p99_ms": float(np.percentile(lat, 99) * 1e3), "file": name})
    res["sweep"] = sweep
    res["rss_searched"] = proc_status()
    res["peak_rss_gib"] = peak_rss_gib()  # before memory_bytes(), which serialises a copy
    res["index_bytes"] = vi.memory_bytes()
    return res


def run_worker(job: dict, timeout: float) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE",  # shared cores: no spinning threads
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the table

COLUMNS = ("n", "d", "type", "params", "build_s", "index_MiB", "B/sound", "rss_GiB", "rss_anon_GiB",
           "peak_rss_GiB", "p50_ms", "p99_ms", "qps", "recall@15", "map@15", "map_loss", "note")


def fmt_params(p: dict) -> str:
    short = {"nlist": "nlist", "nprobe": "nprobe", "m": "M", "ef_construction": "efC", "ef_search": "efS",
             "pq_m": "pq", "pq_nbits": "x", "rerank": "rerank", "margin": "margin", "min_similarity": "sim>="}
    return " ".join(f"{short.get(k, k)}{v}" for k, v in p.items() if k != "margin")


def print_row(row: dict) -> None:
    def f(k: str) -> str:
        v = row.get(k, "")
        if isinstance(v, float):
            return f"{v:.4f}" if k in ("recall@15", "map@15", "map_loss") else f"{v:.3g}" if v < 100 else f"{v:.0f}"
        return str(v)

    print("| " + " | ".join(f(k) for k in COLUMNS) + " |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=size_of, default=[10**6], help="collection sizes (default 1M)")
    ap.add_argument("--dims", nargs="+", type=int, default=[100, 512], help="dimensions (default 100 512)")
    ap.add_argument("--types", nargs="+", default=list(ALL_TYPES), choices=ALL_TYPES)
    ap.add_argument("--search", default="mcss", choices=("mips", "mcss", "nns"))
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries (latency, QPS, recall)")
    ap.add_argument("--map-queries", type=int, default=2000, help="collection clips as queries for MAP@15")
    ap.add_argument("--threads", type=int, default=2, help="faiss threads for build and batch QPS (default 2)")
    ap.add_argument("--max-index-gib", type=float, default=3.0,
                    help="skip a type whose index would exceed this (default 3 GiB)")
    ap.add_argument("--params", default="{}", help='JSON per type, e.g. \'{"ivf": {"nprobe": 8}}\'')
    ap.add_argument("--sweep", action="store_true", help="also measure other nprobe / ef_search / rerank values")
    ap.add_argument("--work", default="/tmp/soundsim-bench-service", help="collections and top-k lists")
    ap.add_argument("--keep", action="store_true", help="keep the collections in --work (default: delete them)")
    ap.add_argument("--out", default=None, help="write the table as CSV here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=7200, help="seconds per index type (default 7200)")
    ap.add_argument("--quick", action="store_true", help="20k x 32, 200 queries: a smoke check in seconds")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.quick:
        args.sizes, args.dims, args.queries, args.map_queries = [20_000], [32], 200, 300
    params = json.loads(args.params)
    work = Path(args.work)
    import faiss

    print(f"bench_service: faiss {faiss.__version__}, {os.cpu_count()} CPUs, search {args.search}, "
          f"{args.queries} held-out queries, {args.map_queries} MAP queries, threads {args.threads}", flush=True)
    rows: list[dict] = []
    try:
        for n in args.sizes:
            for d in args.dims:
                run_size(args, params, work, n, d, rows)
    finally:
        if not args.keep:
            for n in args.sizes:
                for d in args.dims:
                    for f in paths(work, n, d).values():
                        f.unlink(missing_ok=True)
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
    print("re-ranking reads float32 rows from a read-only memmap (d * 4 B/sound on disk, not in B/sound); "
          "load = 1-min load average of the machine (2 cores) at the latency measurement")
    print(f"peak RSS of this (parent) process: {peak_rss_gib():.2f} GiB")
    return 0


def run_size(args, params: dict, work: Path, n: int, d: int, rows: list[dict]) -> None:
    """Generate one collection, its ground truth, then every index type in a child."""
    print(f"\n## {size_label(n)} x {d}", flush=True)
    p = make_collection(work, n, d, args.queries, args.map_queries, args.seed)
    truth, gt_s = exact_truth(p, n, d, args.search, args.threads)
    meta = np.load(p["meta"])
    exact_map = map_at(truth["map"], meta)
    print(f"  exact ground truth (chunked brute force + float64 re-ranking, {args.threads} threads): "
          f"{gt_s:.1f} s for {args.queries + len(meta['map_rows'])} queries; exact MAP@15 = {exact_map:.4f}",
          flush=True)
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS), flush=True)
    for t in args.types:
        row = {"n": size_label(n), "d": d, "type": t}
        est = estimated_index_bytes(t, n, d)
        if est > args.max_index_gib * 2**30:
            row["note"] = f"skipped: index ~{est / 2**30:.1f} GiB > --max-index-gib {args.max_index_gib:g}"
            rows.append(row)
            print_row(row)
            continue
        out = work / f"{size_label(n)}x{d}-{t}"
        out.mkdir(parents=True, exist_ok=True)
        job = {"n": n, "d": d, "type": t, "search": args.search, "threads": args.threads, "vectors": str(p["vectors"]),
               "meta": str(p["meta"]), "out": str(out), "params": params.get(t, {}), "sweep": args.sweep}
        r = run_worker(job, args.timeout)
        if "error" in r:
            row["note"] = f"failed: {r['error']}"
            rows.append(row)
            print_row(row)
            continue
        ids, mids = np.load(out / "queries.npy"), np.load(out / "map.npy")
        m = map_at(mids, meta)
        row.update({
            "params": fmt_params(r["params"]), "build_s": r["build_s"], "index_MiB": r["index_bytes"] / 2**20,
            "B/sound": r["index_bytes"] / n, "rss_GiB": r["rss_built"]["VmRSS"],
            "rss_anon_GiB": r["rss_built"]["RssAnon"], "peak_rss_GiB": r["peak_rss_gib"],
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "qps": r["qps"],
            "recall@15": recall_at(ids, truth["queries"]), "map@15": m, "map_loss": exact_map - m,
            "note": f"load {r['load_avg']:.1f}"
            + (f"; latency over {r['lat_queries']} queries" if r["lat_queries"] < args.queries else ""),
        })
        rows.append(row)
        print_row(row)
        for s in r["sweep"]:
            sr = {"n": size_label(n), "d": d, "type": t, "params": f"sweep {s['param']}={s['value']}",
                  "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
                  "recall@15": recall_at(np.load(out / s["file"]), truth["queries"]), "note": "sweep (300 queries)"}
            rows.append(sr)
            print_row(sr)
        for f in out.iterdir():
            f.unlink()
        out.rmdir()


if __name__ == "__main__":
    sys.exit(main())
