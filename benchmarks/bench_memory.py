"""Peak memory per clip for every model, by clip duration (issue 12: bounded memory per clip).

    .venv/bin/python benchmarks/bench_memory.py [--models aisfx beats ...] [--durations 10s 10min 60min]
                                               [--work /tmp/soundsim-bench-memory] [--rate 44100]

For each model and duration, a **fresh child process** in the model's environment
(soundsim.envs.python_for; this script re-runs itself there with ``--worker``) loads
the model and embeds one synthetic clip through ``soundsim.extract.embed_clip``, the
real path (decode, downmix, resample, pad, embed). Printed as a Markdown table:
the child's peak RSS (``ru_maxrss``: the whole process, model loading included),
its RSS after loading the model (``VmRSS``), the seconds of ``embed_clip`` and the
rows it returned. Target: peak <= 2 GB at 60 min for every model.

* Clips: mono 16-bit WAV at ``--rate`` (default 44.1 kHz, FSD50K's), a chirp with a
  changing level plus noise, written once per duration into ``--work``.
* Weights: random checkpoints of the **official architecture and size**, in the
  official file format, written once per model into ``--work`` in the model's own
  environment (BEATs 90M, CAV-MAE ViT-B, ImageBind's ViT-B audio trunk, AudioCLIP's
  ESResNeXt-50, Wav2CLIP's ResNet-18, msclap's Cnn14 / HTS-AT, LAION-CLAP's HTS-AT);
  aisfx and musicnn use their bundled weights, freesound has none. The Essentia
  TensorFlow models (vggish, yamnet, fsd-sinet, openl3) use the small random frozen
  graphs of ``tests/essentia_tf_graphs.py`` (real node names and shapes, a few
  thousand weights): their memory is the front end's and Essentia's, plus a
  constant for the real graphs' weights and activations (VGGish's graph is 288 MB).
  ``--weights-dir`` uses real files (official names) instead.
* One core: the child is pinned to one CPU (``sched_setaffinity``) and runs with
  ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``.

A model whose environment is not built is skipped, saying so. Each result is also
appended as a JSON line to ``<work>/results.jsonl``; ``--table-only`` prints the table
of what is there (e.g. after running models in the background one by one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DURATIONS = ("10s", "10min", "60min")
BLOCK = 1 << 20  # samples per block when writing clips


def seconds_of(text: str) -> float:
    """``10``, ``10s``, ``10min``, ``1h`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(s|sec|m|min|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 10s, 10min, 1h)")
    return float(m.group(1)) * {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]


def label(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def write_clip(path: Path, seconds: float, rate: int) -> Path:
    """A chirp with a changing level plus noise (never silent: freesound rejects silence), in blocks."""
    import numpy as np
    import soundfile as sf

    if path.is_file():
        return path
    n = int(round(seconds * rate))
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp.wav")
    with sf.SoundFile(tmp, "w", rate, 1, "PCM_16") as f:
        for start in range(0, n, BLOCK):
            t = np.arange(start, min(start + BLOCK, n)) / rate
            phase = 2 * np.pi * (300 * t + 200 * np.sin(2 * np.pi * t / 7.0))
            x = 0.3 * np.sin(phase) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t)) + 0.02 * rng.standard_normal(len(t))
            f.write(x.astype(np.float32))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- random official-size checkpoints (child side)


def _torch_random_(module, seed: int = 0):
    """Random BatchNorm statistics around the defaults (else deep random CNNs can give NaN)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, t in module.state_dict().items():
            if k.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif k.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return module


def make_weights(model: str, variation: str, folder: Path) -> str | None:
    """Write a random checkpoint of the official architecture for ``model`` into ``folder``
    (in the model's environment); returns its path (None: bundled weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    if model in ("aisfx", "musicnn", "freesound"):
        return None
    if model in ("vggish", "yamnet", "fsd-sinet", "openl3"):
        sys.path.insert(0, str(ROOT / "tests"))
        import essentia_tf_graphs as graphs

        return str(graphs.write_model(folder, model, variation, seed=0))
    import torch

    torch.manual_seed(0)
    path = folder / f"{model}-{variation}.pt"
    if path.is_file():
        return str(path)
    tmp = path.with_suffix(".tmp")
    if model == "beats":
        from soundsim.models import _beats_net

        cfg = dict(input_patch_size=16, embed_dim=512, conv_bias=False, encoder_layers=12, encoder_embed_dim=768,
                   encoder_ffn_embed_dim=3072, encoder_attention_heads=12, activation_fn="gelu",
                   layer_wise_gradient_decay_ratio=0.6, layer_norm_first=False, deep_norm=True, dropout=0.0,
                   attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.05, dropout_input=0.0,
                   conv_pos=128, conv_pos_groups=16, relative_position_embedding=True, num_buckets=320,
                   max_distance=800, gru_rel_pos=True, finetuned_model=False)
        sd = _beats_net.BEATs(_beats_net.BEATsConfig.from_dict(cfg)).state_dict()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # the default init leaves weight_v at 0 (weight norm: NaN); init-scale weights
            for k, v in sd.items():
                v.copy_(torch.randn(v.shape, generator=g) * (0.02 if v.ndim > 1 else 0.0)
                        + (1.0 if k.endswith(("norm.weight", "weight_g")) else 0.0))
        torch.save({"cfg": cfg, "model": sd}, tmp)
    elif model in ("cav-mae", "imagebind"):
        sys.path.insert(0, str(ROOT / "tests"))
        if model == "cav-mae":
            from test_models_cav_mae import cavmae_state

            torch.save(cavmae_state(variation, dim=768, depth_a=11, depth_u=1), tmp)
        else:
            from test_models_imagebind import imagebind_state

            torch.save(imagebind_state(dim=768, depth=12, out_dim=1024), tmp)
    elif model == "audioclip":
        from soundsim.models import _audioclip_net as net

        m = _torch_random_(net.ESResNeXtFBSP())
        torch.save({"audio." + k: v for k, v in m.state_dict().items()}, tmp)
    elif model == "wav2clip":
        from soundsim.models import _wav2clip_net as net

        enc, tr = _torch_random_(net.ResNet()), net.MLPLayers()
        sd = {"audio_encoder." + k: v for k, v in enc.state_dict().items()}
        sd.update({"audio_transform." + k: v for k, v in tr.state_dict().items()})
        torch.save(sd, tmp)
    elif model in ("clap-2022", "clap-2023", "pengi"):
        from soundsim.models import _msclap

        enc = _torch_random_(_msclap.build_encoder(_msclap.SPECS[model]))
        sd = {"audio_encoder." + k: v for k, v in enc.state_dict().items()}
        if model == "pengi":
            sd = {"module." + k: v for k, v in sd.items()}
            sd["module.caption_decoder.audio_project.weight"] = torch.zeros(8, 1024)
        torch.save({"model": sd}, tmp)
    elif model == "laion-clap":
        from soundsim.models import laion_clap as lc

        size, fusion = lc.VARIATIONS[variation]
        enc = _torch_random_(lc.build_audio_encoder(size, fusion))
        torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in enc.state_dict().items()}}, tmp)
    else:
        raise SystemExit(f"no random checkpoint recipe for {model}")
    tmp.replace(path)
    return str(path)


def rss_now_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def prepare(model: str, work: str, weights_dir: str | None) -> str:
    """The weights path for ``model`` ('' for bundled), written first when random (own child process,
    so that writing a checkpoint does not count in the measured child's peak)."""
    from soundsim import models

    inf = models.info(model)
    if weights_dir:
        return models.resolve_weights(inf, inf.default_variation, None, weights_dir) or ""
    return make_weights(model, inf.default_variation, Path(work) / "weights" / model) or ""


def worker(model: str, wav: str, weights: str | None) -> dict:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core
    from soundsim import models
    from soundsim.extract import embed_clip

    inf = models.info(model)
    variation = inf.default_variation
    if inf.env in ("soundsim", "msclap", "laion-clap"):
        import torch

        torch.set_num_threads(1)
    options = {"threads": 1} if model == "musicnn" else {}
    base_kb = rss_now_kb()
    m = models.load(model, variation, weights=weights, options=options)
    load_kb = rss_now_kb()
    t0 = time.perf_counter()
    rows = embed_clip(m, wav).shape[0]
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"model": model, "variation": variation, "env": inf.env, "wav": wav, "rows": rows,
            "seconds": seconds, "peak_gb": peak_kb / 2**20, "load_gb": load_kb / 2**20,
            "before_load_gb": base_kb / 2**20, "weights": weights or "bundled"}


# ---------------------------------------------------------------- parent


def table(results: list[dict]) -> str:
    lines = ["| model | duration | peak RSS (GB) | RSS after load (GB) | seconds | rows |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['duration']} | {r['error']} | | | |")
        else:
            flag = " **over 2 GB**" if r["peak_gb"] > 2.0 else ""
            lines.append(f"| {r['model']} | {r['duration']} | {r['peak_gb']:.2f}{flag} | {r['load_gb']:.2f} | "
                         f"{r['seconds']:.1f} | {r['rows']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    p.add_argument("--durations", nargs="+", type=seconds_of, default=[seconds_of(d) for d in DEFAULT_DURATIONS],
                   help="clip durations (10s, 10min, 1h; default 10s 10min 60min)")
    p.add_argument("--rate", type=int, default=44100, help="sample rate of the synthetic WAV files (default 44100)")
    p.add_argument("--work", default="/tmp/soundsim-bench-memory", help="clips, random checkpoints, results.jsonl")
    p.add_argument("--weights-dir", default=None, help="real weights under their official names (default: random)")
    p.add_argument("--timeout", type=float, default=7200, help="seconds per child (default 7200)")
    p.add_argument("--table-only", action="store_true", help="print the table of <work>/results.jsonl and exit")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--prepare", help=argparse.SUPPRESS)
    p.add_argument("--wav", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    a = p.parse_args()
    work = Path(a.work)
    if a.prepare:
        print("WEIGHTS " + prepare(a.prepare, str(work), a.weights_dir), flush=True)
        return
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.wav, a.weights or None)), flush=True)
        return
    results_path = work / "results.jsonl"
    if a.table_only:
        rows = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
        print(table(rows))
        return

    from soundsim import models
    from soundsim.envs import python_for

    work.mkdir(parents=True, exist_ok=True)
    names = a.models or list(models.available())
    results = []
    env_vars = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                    TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2",
                    CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    for name in names:
        env = models.info(name).env
        folder = ROOT / ".venvs" / env
        if env != "soundsim" and not (folder / ".soundsim-installed").is_file():
            print(f"{name}: skipped, environment {env!r} is not built (make envs ENVS={env})", file=sys.stderr)
            results.append({"model": name, "duration": "-", "error": f"skipped: env {env} not built"})
            continue
        cmd = [python_for(env), __file__, "--prepare", name, "--work", str(work)]
        if a.weights_dir:
            cmd += ["--weights-dir", a.weights_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env_vars)
        got = [ln for ln in proc.stdout.splitlines() if ln.startswith("WEIGHTS ")]
        if proc.returncode != 0 or not got:
            tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            results.append({"model": name, "duration": "-", "error": f"no weights: {tail[:200]}"})
            print(f"{name}: no weights: {proc.stderr[-2000:]}", file=sys.stderr)
            continue
        weights = got[-1][len("WEIGHTS "):]
        for secs in a.durations:
            wav = write_clip(work / f"clip-{secs:g}s-{a.rate}.wav", secs, a.rate)
            cmd = [python_for(env), __file__, "--worker", name, "--wav", str(wav), "--weights", weights]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env_vars, timeout=a.timeout)
                out = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not out:
                    tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                    r = {"model": name, "error": f"failed (exit {proc.returncode}): {tail[:200]}"}
                else:
                    r = json.loads(out[-1][len("RESULT "):])
            except subprocess.TimeoutExpired:
                r = {"model": name, "error": f"timed out after {a.timeout:.0f} s"}
            r["duration"] = label(secs)
            r["duration_s"] = secs
            results.append(r)
            with open(results_path, "a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(json.dumps(r), file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
