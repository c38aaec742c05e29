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

Install: ``pip install --no-deps aisfx==0.1.2`` (its pins do not build on
Python 3.11); the checkpoint is a pickle of (state_dict, datasets), loaded with
``torch.load(..., weights_only=False)`` as torch >= 2.6 requires.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundsim.models import ModelInfo

SAMPLE_RATE = 44100
FRAME, HOP, N_MELS = 2048, 1024, 96
BLOCK, BLOCK_HOP = 100, 50
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize('original')

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
)


def bundled_checkpoint() -> Path:
    """Path of the checkpoint shipped inside the aisfx package."""
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the aisfx package is not installed (pip install --no-deps aisfx==0.1.2)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"


def mel_spectrogram(x: np.ndarray) -> np.ndarray:
    """(frames, 96) log-mel spectrogram, Essentia, as aisfx.spectrogram.spectrogram_essentia."""
    import essentia.standard as es

    window = es.Windowing(type="hann", zeroPadding=0, normalized=False)
    spectrum = es.Spectrum(size=FRAME)
    mel = es.MelBands(
        inputSize=FRAME // 2 + 1, numberBands=N_MELS, sampleRate=SAMPLE_RATE, lowFrequencyBound=0.0,
        highFrequencyBound=SAMPLE_RATE / 2, warpingFormula="htkMel", weighting="warping", normalize="unit_sum",
        type="power", log=False,
    )
    frames = [mel(spectrum(window(f))) for f in es.FrameGenerator(x.astype(np.float32), frameSize=FRAME, hopSize=HOP)]
    return np.log10(1e4 * np.asarray(frames, dtype=np.float32) + 1.0)


class AisfxEmbedder:
    def __init__(self, weights: str | None, device: str) -> None:
        import torch
        from aisfx.models.cnn2d import CrossNet, EmbeddingNet

        path = weights or str(bundled_checkpoint())
        state, datasets = torch.load(path, map_location=device, weights_only=False)
        model = CrossNet(EmbeddingNet("max", 3, 1, 64), datasets, device)
        model.load_state_dict(state)
        self.model = model.to(device).eval()
        self.device = device
        self.torch = torch

    def embed(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        from aisfx.preprocessing import blocking, compute_hopSize

        assert sample_rate == SAMPLE_RATE
        spec = mel_spectrogram(waveform) / SPEC_MAX
        blocks = blocking(spec, BLOCK, compute_hopSize(BLOCK, BLOCK_HOP / BLOCK, spec), drop_partial_block=True)
        with self.torch.no_grad():
            out = self.model.get_embedding(self.torch.from_numpy(blocks.astype(np.float32)).to(self.device))
        return out.cpu().numpy().astype(np.float32)


def load(variation: str, weights: str | None, device: str = "cpu", **options: object) -> AisfxEmbedder:
    if options:
        raise TypeError(f"aisfx takes no options, got {sorted(options)}")
    return AisfxEmbedder(weights, device)
