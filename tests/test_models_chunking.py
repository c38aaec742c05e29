"""Bounded memory per clip (issue 12): models that embed a long clip in batches or blocks give
the rows of the single-batch computation (to float rounding) and never hold a whole-clip
intermediate. Models whose own test file holds the fixtures are tested there
(``test_models_beats.py``, ``test_models_msclap.py``, ...); this file covers the main-env
models without a test file of their own (aisfx) and ImageBind's clip copies."""

from __future__ import annotations

import numpy as np
import pytest

from soundsim import models

from conftest import chirp

pytestmark = pytest.mark.model_env("soundsim")


def test_aisfx_blocks_in_batches_equal_one_batch():
    """Blocks in batches of 3 (spectrogram frames computed per batch) = aisfx's own path:
    the whole clip's Essentia spectrogram, aisfx.preprocessing.blocking, one forward pass."""
    import torch
    from aisfx.preprocessing import blocking, compute_hopSize

    from soundsim.models import aisfx

    m = models.load("aisfx", options={"batch_size": 3})
    x = chirp(40.0, aisfx.SAMPLE_RATE, 1)
    spec = aisfx.mel_spectrogram(x)
    assert spec.shape[0] == aisfx.n_frames(len(x))
    np.testing.assert_array_equal(aisfx.mel_frames(x, 700, 300), spec[700:1000])  # bit for bit
    np.testing.assert_array_equal(aisfx.mel_frames(x, 0, 5), spec[:5])  # the first frames are zero-padded
    np.testing.assert_array_equal(aisfx.mel_frames(x, len(spec) - 5, 5), spec[-5:])  # and the last
    blocks = blocking(spec / aisfx.SPEC_MAX, aisfx.BLOCK, compute_hopSize(aisfx.BLOCK, 0.5, spec), True)
    with torch.no_grad():
        want = m.embedder.model.get_embedding(torch.from_numpy(blocks.astype(np.float32))).numpy()
    got = m.embed(x)
    assert got.shape == want.shape == (33, 512) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert aisfx.block_starts(100) == [0] and aisfx.block_starts(80) == [0] and aisfx.block_starts(215) == [0, 50, 100]


def test_aisfx_batch_size_option():
    from soundsim.errors import ConfigError

    with pytest.raises(ConfigError, match="^models.aisfx.options.batch_size: 0 is out of range; allowed values: "
                       "an integer >= 1$"):
        models.load("aisfx", options={"batch_size": 0})
    with pytest.raises(ConfigError, match="^models.aisfx.options.chunk: unknown option; allowed options: batch_size$"):
        models.load("aisfx", options={"chunk": 1})
    assert models.load("aisfx", options={"batch_size": 3}).embedder.batch_size == 3


def _imagebind_features_whole_copy(embedder, y: np.ndarray):
    """ImageBind's features as soundsim computed them before issue 12: on a copy of the whole waveform."""
    import torch

    from soundsim.models import imagebind as ib
    from soundsim.models._kaldi import fbank_torch

    buf = torch.tensor(y)
    out = []
    for start, end in ib.clip_bounds(buf.numel()):
        clip = buf[start:end]
        if clip.numel():
            clip -= clip.mean()
        fbank = fbank_torch(clip.numpy(), ib.SAMPLE_RATE, ib.NUM_MEL_BINS, "hanning").transpose(0, 1)
        p = ib.TARGET_LENGTH - fbank.shape[1]
        fbank = torch.nn.functional.pad(fbank, (0, p)) if p > 0 else fbank[:, : ib.TARGET_LENGTH]
        out.append((fbank.unsqueeze(0) - torch.tensor(ib.FBANK_MEAN)) / torch.tensor(ib.FBANK_STD))
    return torch.stack(out, dim=0)


@pytest.mark.parametrize("seconds", [0.5, 3.3, 100.0])
def test_imagebind_copies_only_its_three_clips(tmp_path, seconds):
    """Long clips: only the three 2 s clips are copied (overlapping ones share a copy, so the
    in-place mean removal is ImageBind's): the features of the whole-waveform copy, bit for bit."""
    import torch

    from test_models_imagebind import imagebind_state

    from soundsim.models import imagebind as ib

    ckpt = tmp_path / "imagebind_huge.pth"
    torch.save(imagebind_state(), ckpt)
    emb = models.load("imagebind", weights=str(ckpt)).embedder
    y = chirp(seconds, ib.SAMPLE_RATE, 3) + np.float32(0.1)  # a DC offset: the mean removal matters
    torch.testing.assert_close(emb.features(y), _imagebind_features_whole_copy(emb, y.copy()), rtol=0, atol=0)
    copies = {id(buf): buf for _, _, (_, buf) in ib._spans(y, ib.clip_bounds(len(y)))}
    assert sum(b.numel() for b in copies.values()) <= min(len(y), 3 * 2 * ib.SAMPLE_RATE)
