"""The ``demo`` collection: labelled sounds synthesised by soundsim, nothing downloaded.

19 sound classes (20 labels) with AudioSet-style names in 5 families (plus ``Bell``, which,
like FSD50K's bells, belongs to two families and is left out of family
averages). Each clip draws its own pitch, tempo, loudness (peak -30..-1 dBFS),
background noise (white/pink/brown at 3..40 dB SNR), duration (0.5..12 s,
log-uniform), sample rate (16, 22.05, 44.1, 48 kHz), channels (mono/stereo) and
format (WAV 16/24-bit, FLAC). About 15 % of clips mix in a second class and carry
both labels; ``Siren`` clips are also ``Alarm`` and every instrument clip is
also ``Music``, as FSD50K propagates labels to ancestors.

Classes overlap on purpose (tonal: Whistling/Siren/Alarm/Organ; noisy:
Rain/Wind/Stream/Typing; impulsive: Knock/Clapping/Drum), so crude features
confuse them and better representations score higher.

Everything is a function of ``seed``: clip ``i`` uses ``default_rng([seed, i])``,
so the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from soundsim.logutil import progress as progress_bar

Gen = Callable[[np.random.Generator, int, int], np.ndarray]

SAMPLE_RATES = (16000, 22050, 44100, 48000)
MIN_DURATION, MAX_DURATION = 0.5, 12.0


# ---------------------------------------------------------------- building blocks

def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _osc(freq: np.ndarray | float, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    """Sine with (possibly time-varying) frequency, by phase integration."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return np.sin(phase + 2 * np.pi * np.cumsum(f) / sr)


def _harmonics(f0: np.ndarray | float, n: int, sr: int, amps: list[float], stretch: float = 0.0) -> np.ndarray:
    """Sum of partials k*f0*(1+stretch*k^2) with amplitudes ``amps``; partials above Nyquist are dropped."""
    out = np.zeros(n)
    f0a = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    for k, a in enumerate(amps, start=1):
        fk = f0a * k * (1 + stretch * k * k)
        if fk.max() >= 0.45 * sr:
            break
        out += a * _osc(fk, n, sr)
    return out


def _decay(n: int, sr: int, tau: float, attack: float = 0.002) -> np.ndarray:
    t = _t(n, sr)
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / tau)


def _place(out: np.ndarray, event: np.ndarray, start: int) -> None:
    end = min(len(out), start + len(event))
    if start < end:
        out[start:end] += event[: end - start]


def _noise(rng: np.random.Generator, n: int, color: str = "white") -> np.ndarray:
    w = rng.standard_normal(n)
    if color == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f) if color == "pink" else f
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    nyq = sr / 2
    if lo and hi:
        sos = signal.butter(order, [lo / nyq, min(hi, 0.95 * nyq) / nyq], btype="band", output="sos")
    elif lo:
        sos = signal.butter(order, min(lo, 0.95 * nyq) / nyq, btype="high", output="sos")
    else:
        assert hi
        sos = signal.butter(order, min(hi, 0.95 * nyq) / nyq, btype="low", output="sos")
    return signal.sosfilt(sos, x)


def _events(rng: np.random.Generator, n: int, sr: int, rate: float, jitter: float = 0.3) -> list[int]:
    """Start samples of events at ``rate`` per second with jittered spacing."""
    starts, pos = [], int(rng.uniform(0, 0.15) * sr)
    while pos < n:
        starts.append(pos)
        pos += max(1, int(sr / rate * rng.uniform(1 - jitter, 1 + jitter)))
    return starts


def _midi(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


# ---------------------------------------------------------------- the classes

def bird(rng, n, sr):
    out = np.zeros(n)
    f_base = rng.uniform(2500, 5000)
    for s in _events(rng, n, sr, rng.uniform(3, 9), 0.6):
        m = int(rng.uniform(0.04, 0.16) * sr)
        f0 = min(f_base * rng.uniform(0.8, 1.25), 0.4 * sr)
        sweep = f0 * (1 + rng.uniform(-0.4, 0.6) * np.linspace(0, 1, m) ** rng.uniform(0.5, 2))
        ev = _osc(np.clip(sweep, 200, 0.45 * sr), m, sr) * np.hanning(m)
        _place(out, ev * rng.uniform(0.4, 1.0), s)
    return out


def dog(rng, n, sr):
    out = np.zeros(n)
    f0 = rng.uniform(250, 700)
    for s in _events(rng, n, sr, rng.uniform(1.2, 3.5), 0.5):
        m = int(rng.uniform(0.1, 0.3) * sr)
        glide = f0 * np.linspace(1.15, 0.8, m)
        ev = _harmonics(glide, m, sr, [1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2])
        ev += 0.4 * _band(_noise(rng, m), sr, 400, 2500)
        _place(out, ev * _decay(m, sr, 0.08, 0.01), s)
    return out


def insect(rng, n, sr):
    fc = min(rng.uniform(3000, 6000), 0.4 * sr)
    pulse = rng.uniform(25, 60)
    t = _t(n, sr)
    am = (0.5 + 0.5 * np.sin(2 * np.pi * pulse * t)) ** 4
    chirp_gate = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > rng.uniform(-0.3, 0.3)).astype(float)
    chirp_gate = _band(chirp_gate, sr, None, 40, order=2)
    return _osc(fc, n, sr) * am * np.clip(chirp_gate, 0, 1)


def piano(rng, n, sr):
    out = np.zeros(n)
    base = rng.uniform(45, 75)
    for s in _events(rng, n, sr, rng.uniform(1.5, 5), 0.5):
        m = min(n - s, int(rng.uniform(0.5, 2.0) * sr))
        f0 = _midi(base + rng.integers(-7, 8))
        ev = _harmonics(f0, m, sr, [1, 0.6, 0.35, 0.25, 0.15, 0.1, 0.06], stretch=0.0004)
        _place(out, ev * _decay(m, sr, rng.uniform(0.3, 0.9), 0.003) * rng.uniform(0.5, 1), s)
    return out


def guitar(rng, n, sr):
    """Karplus-Strong plucked strings."""
    out = np.zeros(n)
    base = rng.uniform(40, 64)
    for s in _events(rng, n, sr, rng.uniform(1.5, 5), 0.4):
        m = min(n - s, int(rng.uniform(0.6, 2.0) * sr))
        p = max(2, int(sr / _midi(base + rng.integers(0, 13))))
        exc = np.zeros(m)
        exc[:p] = rng.uniform(-1, 1, min(p, m))
        a = np.zeros(p + 2)
        a[0], a[p], a[p + 1] = 1.0, -0.498, -0.498
        _place(out, signal.lfilter([1.0], a, exc) * rng.uniform(0.5, 1), s)
    return out


def drum(rng, n, sr):
    out = np.zeros(n)
    bpm = rng.uniform(70, 170)
    for i, s in enumerate(_events(rng, n, sr, bpm / 60 * 2, 0.05)):
        m = int(0.35 * sr)
        if i % 2 == 0:  # kick / tom: pitch drop
            f = rng.uniform(45, 110) * (1 + 2.5 * np.exp(-_t(m, sr) / 0.03))
            ev = _osc(f, m, sr) * _decay(m, sr, rng.uniform(0.06, 0.15))
        else:  # snare: tone + noise
            ev = 0.4 * _osc(rng.uniform(150, 250), m, sr) * _decay(m, sr, 0.05)
            ev += _band(_noise(rng, m), sr, 1000, 8000) * _decay(m, sr, rng.uniform(0.04, 0.12)) * 0.7
        _place(out, ev * rng.uniform(0.5, 1), s)
    return out


def organ(rng, n, sr):
    t = _t(n, sr)
    draw = [1, rng.uniform(0.3, 1), rng.uniform(0.2, 0.8), rng.uniform(0, 0.6), rng.uniform(0, 0.5), 0.3, 0.2, 0.1]
    root = rng.uniform(40, 65)
    out = np.zeros(n)
    for interval in rng.choice([0, 3, 4, 7, 12], size=rng.integers(1, 4), replace=False):
        out += _harmonics(_midi(root + interval), n, sr, draw)
    trem = 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    return out * trem * np.minimum(1, t / 0.05)


def bell(rng, n, sr):
    out = np.zeros(n)
    f0 = rng.uniform(300, 1200)
    ratios = [0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 2.66, 3.01]
    for s in _events(rng, n, sr, rng.uniform(0.4, 1.5), 0.3):
        m = min(n - s, int(rng.uniform(1.5, 4) * sr))
        ev = np.zeros(m)
        for j, r in enumerate(ratios):
            if f0 * r < 0.45 * sr:
                ev += _osc(f0 * r, m, sr) * _decay(m, sr, rng.uniform(0.4, 2.5) / (1 + 0.3 * j)) / (1 + 0.4 * j)
        _place(out, ev, s)
    return out


def siren(rng, n, sr):
    t = _t(n, sr)
    lo, hi = rng.uniform(500, 900), rng.uniform(1100, 1800)
    period = rng.uniform(0.4, 4.0)
    if rng.random() < 0.5:  # wail: smooth sweep
        sweep = 0.5 - 0.5 * np.cos(2 * np.pi * t / period)
    else:  # hi-lo
        sweep = (np.sin(2 * np.pi * t / period) > 0).astype(float)
    f = lo + (hi - lo) * sweep
    return _harmonics(f, n, sr, [1, 0.4, 0.2, 0.1])


def alarm(rng, n, sr):
    t = _t(n, sr)
    f = min(rng.uniform(1800, 4000), 0.4 * sr)
    rate, duty = rng.uniform(2, 8), rng.uniform(0.3, 0.7)
    gate = ((t * rate) % 1.0 < duty).astype(float)
    gate = _band(gate, sr, None, 200, order=2)
    return _harmonics(f, n, sr, [1, 0, 0.3, 0, 0.15]) * gate


def engine(rng, n, sr):
    t = _t(n, sr)
    f0 = rng.uniform(25, 90) * (1 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.05, 0.4) * t + rng.uniform(0, 6)))
    tone = _harmonics(f0, n, sr, [1 / k for k in range(1, 25)])
    rumble = _band(_noise(rng, n, "brown"), sr, None, 400)
    return tone * (1 + 0.3 * np.sin(2 * np.pi * f0.mean() / 2 * t)) + rumble * rng.uniform(0.5, 2)


def knock(rng, n, sr):
    out = np.zeros(n)
    f = rng.uniform(120, 500)
    for s in _events(rng, n, sr, rng.uniform(2, 6), 0.25):
        m = int(0.15 * sr)
        ev = _osc(f * rng.uniform(0.95, 1.05), m, sr) * _decay(m, sr, rng.uniform(0.015, 0.05))
        ev += 0.5 * _osc(f * 2.3, m, sr) * _decay(m, sr, 0.01)
        ev += 0.3 * _band(_noise(rng, m), sr, 1000, None) * _decay(m, sr, 0.003)
        _place(out, ev * rng.uniform(0.6, 1), s)
    return out


def typing(rng, n, sr):
    out = np.zeros(n)
    for s in _events(rng, n, sr, rng.uniform(4, 12), 0.7):
        m = int(0.02 * sr)
        ev = _band(_noise(rng, m), sr, rng.uniform(1500, 3000), None, order=2) * _decay(m, sr, rng.uniform(0.002, 0.006))
        _place(out, ev * rng.uniform(0.3, 1), s)
    return out


def rain(rng, n, sr):
    out = _band(_noise(rng, n, "pink"), sr, rng.uniform(500, 2000), None) * rng.uniform(0.3, 0.8)
    for s in _events(rng, n, sr, rng.uniform(30, 150), 0.9):
        m = int(0.01 * sr)
        drop = _osc(min(rng.uniform(2000, 6000), 0.4 * sr), m, sr) * _decay(m, sr, 0.002, 0.0005)
        _place(out, drop * rng.uniform(0.1, 0.6), s)
    return out


def wind(rng, n, sr):
    t = _t(n, sr)
    x = _band(_noise(rng, n, "pink"), sr, rng.uniform(80, 300), rng.uniform(600, 1500))
    gust = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.08, 0.5) * t + rng.uniform(0, 6))
    gust += 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t)
    return x * np.clip(gust, 0.05, None)


def stream(rng, n, sr):
    out = _band(_noise(rng, n), sr, 300, 3000) * 0.4
    for s in _events(rng, n, sr, rng.uniform(15, 60), 0.9):
        m = int(rng.uniform(0.01, 0.04) * sr)
        f = rng.uniform(400, 1500) * np.linspace(1, rng.uniform(1.2, 2.0), m)
        _place(out, _osc(f, m, sr) * np.hanning(m) * rng.uniform(0.2, 0.7), s)
    return out


def thunder(rng, n, sr):
    out = _band(_noise(rng, n, "brown"), sr, None, rng.uniform(120, 300)) * 0.2
    for s in _events(rng, n, sr, rng.uniform(0.15, 0.5), 0.5):
        m = min(n - s, int(rng.uniform(1.0, 4.0) * sr))
        crack = _band(_noise(rng, m), sr, 500, None) * _decay(m, sr, 0.08, 0.005) * 0.3
        rumble = _band(_noise(rng, m, "brown"), sr, None, 200) * _decay(m, sr, rng.uniform(0.5, 1.5), 0.05)
        _place(out, (crack + rumble) * rng.uniform(0.6, 1), s)
    return out


def whistling(rng, n, sr):
    t = _t(n, sr)
    centre = rng.uniform(900, 2200)
    steps = _events(rng, n, sr, rng.uniform(1.5, 4), 0.4)
    f = np.full(n, centre)
    for s in steps:
        f[s:] = centre * 2 ** (rng.integers(-5, 8) / 12)
    f = _band(f - centre, sr, None, 8, order=2) + centre  # glides between notes
    f *= 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 6) * t)
    breath = 0.05 * _band(_noise(rng, n), sr, 1000, 5000)
    return _osc(f, n, sr) + breath


def clapping(rng, n, sr):
    out = np.zeros(n)
    crowd = rng.random() < 0.4
    rate = rng.uniform(20, 60) if crowd else rng.uniform(2, 6)
    for s in _events(rng, n, sr, rate, 0.8 if crowd else 0.15):
        m = int(0.05 * sr)
        lo = rng.uniform(600, 1500)
        ev = _band(_noise(rng, m), sr, lo, lo * 3) * _decay(m, sr, rng.uniform(0.005, 0.015), 0.001)
        _place(out, ev * rng.uniform(0.3, 1), s)
    return out


#: class -> (generator, labels every clip of it carries)
CLASSES: dict[str, tuple[Gen, list[str]]] = {
    "Bird": (bird, ["Bird"]),
    "Bark": (dog, ["Bark"]),
    "Insect": (insect, ["Insect"]),
    "Piano": (piano, ["Piano", "Music"]),
    "Guitar": (guitar, ["Guitar", "Music"]),
    "Drum": (drum, ["Drum", "Music"]),
    "Organ": (organ, ["Organ", "Music"]),
    "Bell": (bell, ["Bell"]),
    "Siren": (siren, ["Siren", "Alarm"]),
    "Alarm": (alarm, ["Alarm"]),
    "Engine": (engine, ["Engine"]),
    "Knock": (knock, ["Knock"]),
    "Typing": (typing, ["Typing"]),
    "Rain": (rain, ["Rain"]),
    "Wind": (wind, ["Wind"]),
    "Stream": (stream, ["Stream"]),
    "Thunder": (thunder, ["Thunder"]),
    "Whistling": (whistling, ["Whistling"]),
    "Clapping": (clapping, ["Clapping"]),
}

#: family -> labels (FSD50K-style names). ``Bell`` is in Music and Sounds_of_things
#: in the AudioSet ontology, so it is multi-parent and in no family.
FAMILIES: dict[str, list[str]] = {
    "Animal": ["Bird", "Bark", "Insect"],
    "Music": ["Music", "Piano", "Guitar", "Drum", "Organ"],
    "Sounds_of_things": ["Siren", "Alarm", "Engine", "Knock", "Typing"],
    "Natural_sounds": ["Rain", "Wind", "Stream", "Thunder"],
    "Human_sounds": ["Whistling", "Clapping"],
}
MULTI_PARENT = ["Bell"]
VOCABULARY = sorted({lab for _, labs in CLASSES.values() for lab in labs})


def _render(rng: np.random.Generator, cls: str, n: int, sr: int) -> np.ndarray:
    x = CLASSES[cls][0](rng, n, sr)
    return x / (np.max(np.abs(x)) + 1e-12)


def synthesize(seed: int, index: int, cls: str) -> tuple[np.ndarray, int, list[str], str, str]:
    """Clip ``index`` of class ``cls``: (samples (frames, channels) float, sample rate,
    labels, file extension, soundfile subtype). Deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, index])
    sr = int(rng.choice(SAMPLE_RATES))
    dur = math.exp(rng.uniform(math.log(MIN_DURATION), math.log(MAX_DURATION)))
    n = int(dur * sr)
    x = _render(rng, cls, n, sr)
    labels = list(CLASSES[cls][1])
    if rng.random() < 0.15:  # a second source, labelled too
        other = str(rng.choice([c for c in CLASSES if c != cls]))
        x = x + _render(rng, other, n, sr) * 10 ** (-rng.uniform(3, 12) / 20)
        labels += [lab for lab in CLASSES[other][1] if lab not in labels]
    snr_db = rng.uniform(3, 40)
    bg = _noise(rng, n, str(rng.choice(["white", "pink", "brown"])))
    x = x / (np.std(x) + 1e-12) + bg * 10 ** (-snr_db / 20)
    if rng.random() < 0.3:  # stereo: delayed, rescaled copy with its own noise
        d = int(rng.integers(0, int(0.002 * sr) + 1))
        right = np.roll(x, d) * rng.uniform(0.6, 1.0) + 0.05 * rng.standard_normal(n)
        x = np.stack([x, right], axis=1)
    else:
        x = x[:, None]
    peak_db = rng.uniform(-30, -1)
    x = x / (np.max(np.abs(x)) + 1e-12) * 10 ** (peak_db / 20)
    ext, subtype = [(".wav", "PCM_16"), (".wav", "PCM_24"), (".flac", "PCM_16")][int(rng.integers(0, 3))]
    return x, sr, labels, ext, subtype


#: the default fname prefix: clips are named demo00000, demo00001, ...
FNAME_PREFIX = "demo"


def plan(clips_per_class: int, fname_prefix: str = FNAME_PREFIX) -> list[tuple[str, str]]:
    """(fname, class) for every clip, in a fixed order; fnames ``<fname_prefix><5 digits>``."""
    out, i = [], 0
    for cls in CLASSES:
        for _ in range(clips_per_class):
            out.append((f"{fname_prefix}{i:05d}", cls))
            i += 1
    return out


def generate(out_dir: str | Path, seed: int = 0, clips_per_class: int = 16, progress: bool = True,
             fname_prefix: str = FNAME_PREFIX) -> dict[str, Path]:
    """Write the demo collection under ``out_dir``:

    ``audio/<fname>.wav|flac``, ``ground_truth.csv`` (fname,labels),
    ``vocabulary.csv`` (label), ``families.json`` (family -> labels).
    Existing identical inputs are simply rewritten (deterministic). Returns the paths.
    """
    out = Path(out_dir)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    items = plan(clips_per_class, fname_prefix)
    for idx, (fname, cls) in enumerate(progress_bar(items, desc="demo audio", unit="clip", disable=not progress)):
        x, sr, labels, ext, subtype = synthesize(seed, idx, cls)
        dst = audio / f"{fname}{ext}"
        tmp = dst.with_name(f".{dst.stem}.tmp{ext}")
        sf.write(tmp, x, sr, subtype=subtype)
        os.replace(tmp, dst)
        rows.append((fname, ",".join(labels)))
    gt = out / "ground_truth.csv"
    with gt.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fname", "labels"])
        w.writerows(rows)
    vocab = out / "vocabulary.csv"
    vocab.write_text("label\n" + "\n".join(VOCABULARY) + "\n")
    fams = out / "families.json"
    fams.write_text(json.dumps(FAMILIES, indent=2) + "\n")
    return {"audio_dir": audio, "ground_truth": gt, "vocabulary": vocab, "families": fams}
