"""aiSFX (Ma & Lerch, ISMIR 2022): a CNN trained on sound-effects libraries.

PyPI ``aisfx`` 0.1.2 ships the best checkpoint (X-Sequential-CE,
``aisfx/models/checkpoint.pth``): nothing to download. Input: 44.1 kHz mono,
96-band mel spectrogram computed with Essentia exactly as the package's
original (ISMIR) Essentia path (2048-sample Hann frames, hop 1024, HTK mel
0-22050 Hz, unit-sum, power, ``log10(10000 x + 1)``, min-max with the paper's
constants 0 and 9.4578). The package's librosa path returns the spectrogram
transposed (mel x time); soundsim does not use it.

Output: one 512-dim vector per block of 100 spectrogram frames (2.32 s) with a
hop of 50 frames (1.16 s), the package's defaults (``emb_hop_size=0.5``,
``drop_partial_block=True``). Clips shorter than 2.4 s are zero-padded at the
end so that at least one full block exists. Deterministic: no random crops;
long clips give proportionally more frames.

Memory per clip is bounded whatever its length: the blocks go through the CNN
:data:`BATCH_SIZE` (option ``batch_size``) at a time, and each batch's
spectrogram frames are computed for that batch only (:func:`mel_frames`, the
same Essentia frames as ``FrameGenerator`` over the whole clip, bit for bit),
so neither the spectrogram nor the CNN's activations of the whole clip ever
exist at once (embedding all blocks in one batch took 12.3 GB for a 30-minute
clip). The rows equal the one-batch result up to float rounding (the CNN's
convolutions may sum in another order for another batch size;
``tests/test_models_chunking.py``).

Install: ``pip install --no-deps aisfx==0.1.2`` (its pins do not build on
Python 3.11); the checkpoint is a pickle of (state_dict, datasets), loaded with
``torch.load(..., weights_only=False)`` as torch >= 2.6 requires.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundsim.models import ModelInfo, OptionSpec, check_sample_rate

SAMPLE_RATE = 44100
FRAME, HOP, N_MELS = 2048, 1024, 96
BLOCK, BLOCK_HOP = 100, 50
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize('original')
BATCH_SIZE = 32  # blocks per forward pass (option batch_size): about 4 MB of activations per block

INFO = ModelInfo(
    name="aisfx",
    variations=("x-sequential-ce",),
    default_variation="x-sequential-ce",
    sample_rate=SAMPLE_RATE,
    level="frame",
    hop=BLOCK_HOP * HOP / SAMPLE_RATE,
    dim=512,
    env="soundsim",
    description="aiSFX CNN (ISMIR 2022), trained on sound-effects libraries (UCS); PyPI aisfx ships the weights",
    weights="bundled",
    weights_hint="bundled with PyPI aisfx 0.1.2 (aisfx/models/checkpoint.pth); a local path overrides it",
    min_duration=2.4,
    long_clips="every 2.32 s block with a 1.16 s hop over the whole clip",
    packages=("aisfx", "torch", "essentia"),
    options={"batch_size": OptionSpec(int, BATCH_SIZE, "blocks per forward pass (memory, not values)", min=1)},
    # Ma & Lerch, ISMIR 2022 ("Representation learning for the automatic indexing of sound effects
    # libraries"): trained on commercial sound-effects libraries labelled with the Universal Category System
    trained_on=("UCS",),
    trained_on_notes={"UCS": "UCS-labelled sound-effects libraries"},
)


def bundled_checkpoint() -> Path:
    """Path of the checkpoint shipped inside the aisfx package."""
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the aisfx package is not installed (pip install --no-deps aisfx==0.1.2)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"


def _mel_algorithms():
    import essentia.standard as es

    window = es.Windowing(type="hann", zeroPadding=0, normalized=False)
    spectrum = es.Spectrum(size=FRAME)
    mel = es.MelBands(
        inputSize=FRAME // 2 + 1, numberBands=N_MELS, sampleRate=SAMPLE_RATE, lowFrequencyBound=0.0,
        highFrequencyBound=SAMPLE_RATE / 2, warpingFormula="htkMel", weighting="warping", normalize="unit_sum",
        type="power", log=False,
    )
    return window, spectrum, mel


def mel_spectrogram(x: np.ndarray) -> np.ndarray:
    """(frames, 96) log-mel spectrogram of the whole clip, Essentia, as
    aisfx.spectrogram.spectrogram_essentia (``FrameGenerator`` over the clip)."""
    import essentia.standard as es

    window, spectrum, mel = _mel_algorithms()
    frames = [mel(spectrum(window(f))) for f in es.FrameGenerator(x.astype(np.float32), frameSize=FRAME, hopSize=HOP)]
    return np.log10(1e4 * np.asarray(frames, dtype=np.float32) + 1.0)


def n_frames(n_samples: int) -> int:
    """Spectrogram frames of a clip of ``n_samples`` (Essentia ``FrameGenerator``'s count)."""
    from soundsim.models._essentia_tf import frame_count

    return frame_count(n_samples, FRAME, HOP)


def centred_frames(x: np.ndarray, first: int, count: int, frame: int = FRAME, hop: int = HOP) -> np.ndarray:
    """(count, frame) float32: frames ``first .. first + count - 1`` as Essentia's ``FrameCutter``
    cuts them with its defaults (frame k centred on sample ``k * hop``, zeros outside the clip)."""
    from soundsim.models._essentia_tf import centred_frames as cut

    return cut(x, first, count, frame, hop)


def mel_frames(x: np.ndarray, first: int, count: int, algorithms=None) -> np.ndarray:
    """Rows ``first .. first + count - 1`` of :func:`mel_spectrogram` (bit for bit), computed
    from those frames alone: memory independent of the clip's length."""
    window, spectrum, mel = algorithms or _mel_algorithms()
    frames = centred_frames(np.asarray(x, dtype=np.float32), first, count)
    rows = np.asarray([mel(spectrum(window(f))) for f in frames], dtype=np.float32).reshape(count, N_MELS)
    return np.log10(1e4 * rows + 1.0)


def block_starts(total_frames: int) -> list[int]:
    """First frame of every block, as ``aisfx.preprocessing.blocking(spec, 100, 50,
    drop_partial_block=True)`` cuts them (at least one block; a short clip's is zero-padded)."""
    hop = int(np.round(BLOCK * (BLOCK_HOP / BLOCK)))  # compute_hopSize
    num = int(np.ceil((total_frames - BLOCK) / hop + 1))
    if (total_frames - BLOCK) % hop != 0:
        num -= 1
    return [i * hop for i in range(max(num, 1))]


class AisfxEmbedder:
    def __init__(self, weights: str | None, device: str, batch_size: int = BATCH_SIZE) -> None:
        import torch
        from aisfx.models.cnn2d import CrossNet, EmbeddingNet

        path = weights or str(bundled_checkpoint())
        state, datasets = torch.load(path, map_location=device, weights_only=False)
        model = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, device)
        model.load_state_dict(state)
        self.model = model.to(device).eval()
        self.device = device
        self.torch = torch
        self.batch_size = int(batch_size)
        self.algorithms = _mel_algorithms()

    def blocks(self, waveform: np.ndarray, starts: list[int], total_frames: int) -> np.ndarray:
        """(len(starts), 100, 96) normalised spectrogram blocks, zero past the last frame."""
        lo, hi = starts[0], min(starts[-1] + BLOCK, total_frames)
        spec = mel_frames(waveform, lo, hi - lo, self.algorithms) / SPEC_MAX
        out = np.zeros((len(starts), BLOCK, N_MELS), dtype=np.float32)
        for i, s in enumerate(starts):
            part = spec[s - lo : s - lo + BLOCK]
            out[i, : len(part)] = part
        return out

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        check_sample_rate("aisfx", sample_rate, SAMPLE_RATE)
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        total = n_frames(len(x))
        if total <= BLOCK_HOP:  # aisfx's compute_hopSize asserts hop < frames
            raise ValueError(f"clip too short for aisfx: {total} spectrogram frames (pad clips to "
                             f"{INFO.min_duration} s)")
        starts = block_starts(total)
        rows = []
        with self.torch.no_grad():
            for i in range(0, len(starts), self.batch_size):
                batch = self.blocks(x, starts[i : i + self.batch_size], total)
                out = self.model.get_embedding(self.torch.from_numpy(batch).to(self.device))
                rows.append(out.cpu().numpy().astype(np.float32))
        return np.concatenate(rows)


def load(variation: str, weights: str | None, device: str = "cpu", *, batch_size: int) -> AisfxEmbedder:
    """Option ``batch_size`` (blocks per forward pass, default :data:`BATCH_SIZE`; memory, not values)."""
    return AisfxEmbedder(weights, device, batch_size)
