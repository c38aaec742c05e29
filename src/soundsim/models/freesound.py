"""Freesound-style features: the paper's baseline (Araz et al. 2024, Sec. II-A).

Freesound describes a clip by clip-level statistics of frame-level low-level
descriptors computed by Essentia's Freesound extractor; the paper takes a
subset of them (846 values), scales each to [0, 1] over the collection and
applies PCA. The authors' reference code
(raraz15/semantic-sound-similarity, ``code/freesound-create_clip_level_embedding.py``)
selects, from the output of Freesound's *legacy* extractor, every ``lowlevel``
descriptor that has the six statistics ``mean, dmean, dmean2, var, dvar, dvar2``,
expanding the multi-band descriptors (barkbands, erb_bands, frequency_bands,
gfcc, mfcc, scvalleys, spectral_contrast) band by band.

What soundsim computes
----------------------
The legacy extractor is not available; soundsim runs the modern
``essentia.standard.FreesoundExtractor`` (default parameters: 44.1 kHz, 2048
sample frames, hop 1024, Blackman-Harris 62 window) and maps the legacy
descriptor set onto it **by name** (:data:`DESCRIPTORS`, fixed and sorted):

* 30 single-valued descriptors, same names in both extractors
  (:data:`SINGLE_DESCRIPTORS`);
* 7 multi-band descriptors (:data:`MULTIBAND_DESCRIPTORS`): ``barkbands`` (27),
  ``erb_bands`` (18; modern key ``lowlevel.erbbands``), ``gfcc`` (13), ``mfcc``
  (13), ``scvalleys`` (6; ``lowlevel.spectral_contrast_valleys``),
  ``spectral_contrast`` (6; ``lowlevel.spectral_contrast_coeffs``) and
  ``frequency_bands`` (28). The modern extractor no longer computes
  ``frequency_bands`` (commented out in Essentia's source), so soundsim computes
  it as the legacy extractor did: ``FrequencyBands`` (Essentia's default 28
  bands, 0-27 kHz) on the same frames (``FrameGenerator`` 2048/1024,
  ``Windowing('blackmanharris62')``, ``Spectrum``), summarised by
  ``PoolAggregator`` with the same statistics. That frame pipeline reproduces
  the extractor's own ``barkbands`` frames bit for bit (checked in the tests).

(30 + 27 + 18 + 28 + 13 + 13 + 6 + 6) x 6 statistics = **846** values, the
paper's dimension. The 30 single descriptors and the barkbands, frequency_bands,
mfcc and spectral-contrast band counts are those of Essentia's 2013 Freesound
extractor source; gfcc (13) and erb_bands (18) are the modern extractor's, and
18 ERB bands is also the only count that makes the legacy total 846 (inferred,
not checked against a legacy output file). Known differences: ``pitch`` comes
from ``PitchYin`` (the 2013 source: ``PitchYinFFT``); Essentia versions differ. Applying
the reference rule to *every* modern ``lowlevel`` descriptor instead would
give 1584 values (melbands, melbands96, loudness_ebu128, ... included) and no
frequency_bands; soundsim keeps the legacy set.

Layout (:data:`FEATURE_NAMES`), as the reference code builds it: the single
descriptors in sorted order, then the multi-band ones in sorted order, band
by band (``barkbands_0`` ... ``barkbands_26``, ``erb_bands_0``, ...); within each,
the statistics in the order mean, dmean, dmean2, var, dvar, dvar2. Every clip
gives the same layout: a statistic the extractor did not output (it has not
happened on clips down to 100 samples, but short clips could lack derivative
statistics) is filled with 0.0 and logged as a warning; positions never shift.

Silent frames (option ``silent_frames``, default ``keep``): Freesound's
extractors cut frames with ``silentFrames='noise'``, which adds -100 dB noise
to every silent frame (mean power below 1e-9, -90 dB). In this Essentia build
(2.1b6.dev1389) that noise is seeded from the clock (newer Essentia sources fix
the seed), so any clip with a silent frame (silent padding, a click in
silence) gets different shape descriptors (pitch, centroid, kurtosis, ZCR,
MFCC/GFCC of the silent frames, ...) on every run: up to the whole [0, 1] range
of a feature after min-max scaling, in our tests. soundsim therefore keeps
silent frames as they are by default (``keep``): deterministic, finite, same
frame count; digital silence reads as zero centroid, zero pitch, ... instead of
as -100 dB white noise. Clips without silent frames give the same values as Freesound's
setting. One case needs more: when *every* frame has zero pitch (a lone click
in silence), the extractor's SFX part aborts ("pitch array doesn't contain any
non-zero values"); soundsim then runs the clip again with a fixed-seed Gaussian
dither at -94 dBFS RMS added (still ``keep``: nothing random), which gives the
silent frames a pitch, and logs a warning: deterministic, and the clip is kept.
``silent_frames: noise`` reproduces Freesound's setting exactly (not
reproducible run to run; no dither fallback).

The extractor takes a file name, not an array: :meth:`FreesoundEmbedder.embed`
writes the (already resampled, mono) waveform to a temporary 32-bit float WAV
at 44.1 kHz in a :class:`tempfile.TemporaryDirectory` and runs the extractor on
it (float WAV is lossless, so the extractor sees exactly the given samples).

Silent and very quiet clips: the extractor rejects a clip whose ReplayGain
would exceed 40 dB ("File looks like a completely silent file"): digital
silence, but also any clip quieter than roughly -45 dBFS RMS (white noise at
-45 dBFS passes, at -50 dBFS it is rejected). embed raises
``RuntimeError("silent clip: FreesoundExtractor cannot analyse silence ...")``
(at once for an all-zero waveform) and extraction records the clip in
``/failed``, as Freesound has no analysis for such clips either. Short clips
are not padded (``min_duration`` 0): the extractor handles clips down to a few
samples. Long clips: every frame of the whole clip enters the statistics.

Memory: the extractor keeps every frame of every descriptor it computes (lowlevel,
rhythm, tonal, SFX) and several copies of the signal until the end: about 1 GB per
10 minutes of audio. Clips longer than :data:`CHUNK_SECONDS` (120 s; every FSD50K clip
is shorter, and is analysed whole, as before) are therefore analysed in chunks of
about that length, and only the per-frame values of the descriptors soundsim uses
are kept (141 floats per 23 ms frame: about 90 MB per hour) and summarised at
the end by the same ``PoolAggregator`` the extractor uses. The lowlevel descriptors
are per-frame computations on the extractor's frames (``FrameCutter`` 2048/1024 ->
``Windowing`` -> ``Spectrum`` -> ...; only ``spectral_flux`` also looks at the frame
before), so each chunk starts two frames (2048 samples) before its first kept frame on
a multiple of the hop, keeps its frames from there, and the last chunk runs to the
clip's end: each frame is cut, padded and analysed exactly as in the whole clip, and
the 846 values equal the whole-clip analysis **bit for bit** (tested). Each chunk gets
a loud 440 Hz guard tone (15 % of its length, whole frames, before the chunk; after the
first) whose frames are dropped, so that a quiet chunk of a long clip does not trip
the extractor's silent-file check or the SFX part's "no pitched frame" abort. What
differs for clips over 120 s: the silent-clip check and the no-pitch dither fallback
(both whole-clip decisions) are not made (a long clip is rejected as silent only when
every sample is 0), and the extractor's work grows by the guard tones (~15 %).

Processing order ``minmax-pca`` (:mod:`soundsim.process`): each of the 846
values is scaled to [0, 1] over the evaluated collection, then PCA, with no L2
normalisation before it, as the authors' ``freesound-create_clip_level_embedding.py``
does (and Gaia before it). The embeddings file keeps the extractor's own values,
so that a clip's rows never depend on the other clips.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from soundsim.errors import ConfigError
from soundsim.models import ModelInfo, OptionSpec, PaperInfo, check_sample_rate

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
FRAME, HOP = 2048, 1024  # FreesoundExtractor's lowlevelFrameSize / lowlevelHopSize defaults
WINDOW = "blackmanharris62"
STATS = ("mean", "dmean", "dmean2", "var", "dvar", "dvar2")  # reference code's PCA_DESCRIPTORS, in its order
FILL_VALUE = 0.0  # for a statistic the extractor did not output
SILENT_FRAMES = ("keep", "noise")  # FrameCutter's silentFrames settings soundsim offers
DEFAULT_SILENT_FRAMES = "keep"  # deterministic; Freesound's own setting is "noise" (see module docstring)
DITHER_DBFS = -94.0  # fallback dither, RMS (below Essentia's -90 dB silent-frame cutoff; inaudible)
DITHER_SEED = 0
CHUNK_SECONDS = 120.0  # clips longer than this are analysed in chunks of about this length (bounded memory)
GUARD_SECONDS = 0.15  # a loud tone added to each chunk, as a share of the chunk (see _chunked_pool)
SILENT_MESSAGE = "silent clip: FreesoundExtractor cannot analyse silence"
NO_PITCH_MESSAGE = "pitch array doesn't contain any non-zero values"

#: single-valued legacy lowlevel descriptors (same pool keys in the modern extractor), sorted
SINGLE_DESCRIPTORS: tuple[str, ...] = (
    "barkbands_kurtosis",
    "barkbands_skewness",
    "barkbands_spread",
    "dissonance",
    "hfc",
    "pitch",
    "pitch_instantaneous_confidence",
    "pitch_salience",
    "silence_rate_20dB",
    "silence_rate_30dB",
    "silence_rate_60dB",
    "spectral_centroid",
    "spectral_complexity",
    "spectral_crest",
    "spectral_decrease",
    "spectral_energy",
    "spectral_energyband_high",
    "spectral_energyband_low",
    "spectral_energyband_middle_high",
    "spectral_energyband_middle_low",
    "spectral_entropy",
    "spectral_flatness_db",
    "spectral_flux",
    "spectral_kurtosis",
    "spectral_rms",
    "spectral_rolloff",
    "spectral_skewness",
    "spectral_spread",
    "spectral_strongpeak",
    "zerocrossingrate",
)

#: multi-band legacy descriptors (the reference's MBAND_FEATURES), sorted:
#: legacy name -> (key in the modern extractor's pool, number of bands).
#: frequency_bands is computed by soundsim (see module docstring).
MULTIBAND_DESCRIPTORS: dict[str, tuple[str, int]] = {
    "barkbands": ("lowlevel.barkbands", 27),
    "erb_bands": ("lowlevel.erbbands", 18),
    "frequency_bands": ("lowlevel.frequency_bands", 28),
    "gfcc": ("lowlevel.gfcc", 13),
    "mfcc": ("lowlevel.mfcc", 13),
    "scvalleys": ("lowlevel.spectral_contrast_valleys", 6),
    "spectral_contrast": ("lowlevel.spectral_contrast_coeffs", 6),
}

#: (output name, pool key, band index or None), in vector order
DESCRIPTORS: tuple[tuple[str, str, int | None], ...] = tuple(
    [(name, f"lowlevel.{name}", None) for name in SINGLE_DESCRIPTORS]
    + [(f"{name}_{i}", key, i) for name, (key, n) in MULTIBAND_DESCRIPTORS.items() for i in range(n)]
)

#: the extractor's per-frame pool keys soundsim uses (frequency_bands is soundsim's own)
FRAME_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for _, key, _ in DESCRIPTORS if key != "lowlevel.frequency_bands"))

#: one name per output dimension: "<descriptor>.<stat>" ("mfcc_3.dvar", "pitch.mean")
FEATURE_NAMES: tuple[str, ...] = tuple(f"{name}.{stat}" for name, _, _ in DESCRIPTORS for stat in STATS)
DIM = len(FEATURE_NAMES)
assert DIM == 846, DIM
assert list(SINGLE_DESCRIPTORS) == sorted(SINGLE_DESCRIPTORS)
assert list(MULTIBAND_DESCRIPTORS) == sorted(MULTIBAND_DESCRIPTORS)

INFO = ModelInfo(
    name="freesound",
    variations=("freesound-extractor",),
    default_variation="freesound-extractor",
    sample_rate=SAMPLE_RATE,
    level="clip",
    hop=None,
    dim=DIM,
    env="soundsim",
    description=(
        "Freesound-style features (paper's baseline): 846 clip-level statistics of the legacy Freesound "
        "lowlevel descriptors, from Essentia's FreesoundExtractor; min-max scaled over the collection"
    ),
    weights="bundled",
    weights_hint="no weights: hand-engineered features (Essentia FreesoundExtractor)",
    min_duration=0.0,
    long_clips="statistics over every 2048-sample frame (hop 1024) of the whole clip",
    processing="minmax-pca",
    paper=PaperInfo("A", "-", "-", "-", 846),
    packages=("essentia",),
    options={"silent_frames": OptionSpec(str, DEFAULT_SILENT_FRAMES, "FrameCutter's silentFrames: keep "
                                         "(deterministic) or noise (Freesound's own setting, random run to run)",
                                         choices=SILENT_FRAMES)},
    # hand-made features (Essentia's FreesoundExtractor; paper Sec. II-A): nothing is learned, no training data
    trained_on=(),
)


def spectra(waveform: np.ndarray):
    """The magnitude spectra of the extractor's lowlevel frames: 2048-sample
    frames, hop 1024, the first centred on sample 0, zero-padded at both ends,
    Blackman-Harris 62 window (Essentia's FrameGenerator = the extractor's
    FrameCutter with silent frames kept as zeros; checked in the tests)."""
    import essentia.standard as es

    window, spectrum = es.Windowing(type=WINDOW, zeroPadding=0), es.Spectrum()
    for frame in es.FrameGenerator(np.ascontiguousarray(waveform, dtype=np.float32), frameSize=FRAME, hopSize=HOP):
        yield spectrum(window(frame))


def frequency_bands_stats(waveform: np.ndarray) -> dict[str, np.ndarray]:
    """Legacy ``lowlevel.frequency_bands`` statistics of a 44.1 kHz waveform:
    {"lowlevel.frequency_bands.<stat>": (28,) array}, on the extractor's
    lowlevel frames (:func:`spectra`), summarised by ``PoolAggregator``.
    (With ``silent_frames: noise`` the extractor fills silent frames with
    -100 dB noise; here they stay zeros: band energies differ by about 1e-10.)"""
    import essentia
    import essentia.standard as es

    bands = es.FrequencyBands(sampleRate=SAMPLE_RATE)
    pool = essentia.Pool()
    for spec in spectra(waveform):
        pool.add("lowlevel.frequency_bands", bands(spec))
    if "lowlevel.frequency_bands" not in pool.descriptorNames():
        return {}
    stats = es.PoolAggregator(defaultStats=list(STATS))(pool)
    return {n: np.asarray(stats[n]) for n in stats.descriptorNames()}


def select(pool_stats: dict[str, object] | object, where: str = "clip") -> np.ndarray:
    """The (846,) float32 vector of :data:`FEATURE_NAMES` from an extractor
    stats pool (or a dict with the same keys). Missing statistics become
    :data:`FILL_VALUE` (logged); a multi-band value of the wrong length is an error."""
    names = set(pool_stats.descriptorNames()) if hasattr(pool_stats, "descriptorNames") else set(pool_stats)
    out = np.empty(DIM, dtype=np.float64)
    missing: list[str] = []
    j = 0
    for name, key, band in DESCRIPTORS:
        for stat in STATS:
            full = f"{key}.{stat}"
            if full not in names:
                missing.append(f"{name}.{stat}")
                out[j] = FILL_VALUE
            else:
                value = np.asarray(pool_stats[full], dtype=np.float64)
                if band is None:
                    if value.size != 1:
                        raise ValueError(f"{full}: expected one value, got shape {value.shape}")
                    out[j] = value.reshape(-1)[0]
                else:
                    expected = MULTIBAND_DESCRIPTORS[name.rsplit("_", 1)[0]][1]
                    if value.shape != (expected,):
                        raise ValueError(f"{full}: expected {expected} bands, got shape {value.shape}")
                    out[j] = value[band]
            j += 1
    if missing:
        log.warning("%s: %d Freesound statistic(s) missing, set to %s: %s%s", where, len(missing), FILL_VALUE,
                    ", ".join(missing[:8]), " ..." if len(missing) > 8 else "")
    return out.astype(np.float32)


def dither(waveform: np.ndarray) -> np.ndarray:
    """The fallback input: the waveform plus fixed-seed Gaussian noise at
    :data:`DITHER_DBFS` RMS (same length, same for every run)."""
    x = np.asarray(waveform, dtype=np.float32)
    noise = np.random.default_rng(DITHER_SEED).standard_normal(len(x)).astype(np.float32)
    return x + np.float32(10 ** (DITHER_DBFS / 20)) * noise


def frequency_bands_frames(x: np.ndarray, first: int, count: int) -> np.ndarray:
    """(count, 28) ``FrequencyBands`` of the extractor's lowlevel frames ``first .. first + count - 1``
    (the frames of :func:`spectra`, cut from the samples they cover alone)."""
    import essentia.standard as es

    from soundsim.models._essentia_tf import centred_frames

    window, spectrum = es.Windowing(type=WINDOW, zeroPadding=0), es.Spectrum()
    bands = es.FrequencyBands(sampleRate=SAMPLE_RATE)
    out = np.empty((count, 28), dtype=np.float32)
    for i0 in range(0, count, 4096):
        frames = centred_frames(x, first + i0, min(4096, count - i0), FRAME, HOP)
        for j, frame in enumerate(frames):
            out[i0 + j] = bands(spectrum(window(frame)))
    return out


def aggregate(frames: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """``PoolAggregator`` statistics (:data:`STATS`) of per-frame values (key -> list of
    (frames,) or (frames, bands) arrays, in frame order), added to the pool frame by frame
    as the extractor's network adds them: the extractor's own statistics, bit for bit."""
    import essentia
    import essentia.standard as es

    pool = essentia.Pool()
    for key, parts in frames.items():
        for part in parts:
            for value in part:
                pool.add(key, value if part.ndim == 2 else float(value))
    stats = es.PoolAggregator(defaultStats=list(STATS))(pool)
    return {n: np.asarray(stats[n]) for n in stats.descriptorNames()}


class FreesoundEmbedder:
    """Runs ``FreesoundExtractor`` on a temporary WAV of the waveform; see module docstring."""

    def __init__(self, silent_frames: str = DEFAULT_SILENT_FRAMES) -> None:
        import essentia
        import essentia.standard as es

        essentia.log.infoActive = False  # the extractor logs several INFO lines per clip
        self.es = es
        self.silent_frames = silent_frames

    def _run(self, x: np.ndarray):
        """``FreesoundExtractor`` on a temporary float WAV of ``x``: (stats pool, frames pool)."""
        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="soundsim-freesound-") as tmp:
            path = str(Path(tmp) / "clip.wav")
            sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
            try:
                return self.es.FreesoundExtractor(lowlevelSilentFrames=self.silent_frames)(path)
            except RuntimeError as e:
                if "silent file" in str(e).lower():
                    raise RuntimeError(
                        f"{SILENT_MESSAGE} (it rejects silent and very quiet clips, about -45 dBFS RMS or lower, "
                        f"ReplayGain > 40 dB; Essentia said: {str(e).strip()})"
                    ) from e
                raise

    def extract(self, x: np.ndarray) -> dict[str, object]:
        """The extractor's ``lowlevel.*`` statistics of ``x`` plus soundsim's frequency_bands ones."""
        if len(x) > CHUNK_SECONDS * SAMPLE_RATE:
            return aggregate(self._chunked_frames(x))
        stats, _frames = self._run(x)
        pool: dict[str, object] = {n: stats[n] for n in stats.descriptorNames() if n.startswith("lowlevel.")}
        pool.update(frequency_bands_stats(x))
        return pool

    def _chunked_frames(self, x: np.ndarray) -> dict[str, list[np.ndarray]]:
        """The extractor's per-frame values (:data:`FRAME_KEYS`, plus ``lowlevel.frequency_bands``)
        of a long clip, by running it on chunks of about :data:`CHUNK_SECONDS` (module docstring)."""
        from soundsim.models._essentia_tf import frame_count

        total = frame_count(len(x), FRAME, HOP)
        per_chunk = max(4, int(CHUNK_SECONDS * SAMPLE_RATE) // HOP)
        parts = -(-total // per_chunk)
        guard_frames = max(8, int(GUARD_SECONDS * per_chunk))
        t = np.arange(guard_frames * HOP) / SAMPLE_RATE
        guard = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        frames: dict[str, list[np.ndarray]] = {k: [] for k in (*FRAME_KEYS, "lowlevel.frequency_bands")}
        import essentia

        warnings, essentia.log.warningActive = essentia.log.warningActive, False  # the guard tone's SFX warnings
        try:
            for k in range(parts):
                self._chunk(x, k, parts, total, guard, guard_frames, frames)
        finally:
            essentia.log.warningActive = warnings
        return frames

    def _chunk(self, x: np.ndarray, k: int, parts: int, total: int, guard: np.ndarray, guard_frames: int,
               frames: dict[str, list[np.ndarray]]) -> None:
        """Run the extractor on chunk ``k`` of ``parts`` and append its frames' values to ``frames``."""
        g0, g1 = k * total // parts, (k + 1) * total // parts  # global frames of this chunk
        lead = min(g0, 2)  # frames before g0: the first one sees the chunk's zero padding, the second feeds flux
        start = HOP * (g0 - lead)
        if k == parts - 1:
            seg, skip = x[start:], lead  # to the clip's end: framed and padded there as the whole clip
        else:
            seg, skip = x[start : HOP * g1], lead  # ends where frame g1 - 1 does
        if k == 0:  # the guard tone after the chunk: no kept frame reaches it
            seg = np.concatenate([seg, np.zeros(FRAME, np.float32), guard])
        else:  # the guard tone before the chunk, whole frames long: kept frames start >= 2 frames later
            seg = np.concatenate([guard, seg])
            skip += guard_frames
        _stats, pool = self._run(np.ascontiguousarray(seg, dtype=np.float32))
        for key in FRAME_KEYS:
            values = np.asarray(pool[key], dtype=np.float32)[skip : skip + g1 - g0]
            if len(values) != g1 - g0:
                raise RuntimeError(f"freesound: {len(values)} frames of {key} for frames {g0}-{g1 - 1}")
            frames[key].append(values)
        frames["lowlevel.frequency_bands"].append(frequency_bands_frames(x, g0, g1 - g0))

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("freesound", sample_rate, SAMPLE_RATE)
        x = np.ascontiguousarray(waveform, dtype=np.float32).reshape(-1)
        if x.size == 0:
            raise ValueError("empty waveform: FreesoundExtractor needs at least one sample")
        if not x.any():
            raise RuntimeError(f"{SILENT_MESSAGE} (every sample is 0)")
        try:
            pool = self.extract(x)
        except RuntimeError as e:
            if self.silent_frames != "keep" or NO_PITCH_MESSAGE not in str(e):
                raise
            log.warning("no frame has a pitch (Essentia: %s); analysing the clip again with a %.0f dBFS dither",
                        NO_PITCH_MESSAGE, DITHER_DBFS)
            pool = self.extract(dither(x))
        return select(pool)[None, :]


def load(variation: str, weights: str | None, device: str = "cpu", *, silent_frames: str) -> FreesoundEmbedder:
    """Option ``silent_frames`` ('keep', default; 'noise': Freesound's own setting,
    not reproducible run to run with this Essentia). See the module docstring."""
    if weights is not None:
        raise ConfigError(f"models.freesound.weights: the Freesound features have no weights; remove {weights!r}")
    return FreesoundEmbedder(silent_frames)
