"""Wav2CLIP's audio encoder in plain torch (no torchaudio).

A re-implementation of ``wav2clip/model/resnet.py`` and ``wav2clip/model/encoder.py``
(PyPI ``wav2clip`` 0.1.0, https://github.com/descriptinc/lyrebird-wav2clip) for
inference: the ResNet-18 audio encoder on a log power spectrogram and the MLP
projection (``audio_transform``). Module and parameter names are the upstream ones
(``spectrogram.window``, ``conv1``, ``bn1``, ``layer1``-``layer4`` of basic blocks,
``sequential.0`` / ``sequential.3``), so that the ``audio_encoder.*`` and
``audio_transform.*`` entries of ``Wav2CLIP.pt`` load unchanged. The spectrogram is
``torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)`` written with
``torch.stft`` (periodic Hann window of 512, centred frames with reflect padding,
power 2). Imported only by :mod:`soundsim.models.wav2clip`'s ``load``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

N_FFT, HOP_LENGTH = 512, 353


class Spectrogram(nn.Module):
    """torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353): (..., n) -> (..., 257, frames) power."""

    def __init__(self, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        spec = torch.stft(x.reshape(-1, shape[-1]), n_fft=self.n_fft, hop_length=self.hop_length,
                          win_length=self.n_fft, window=self.window, center=True, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)
        spec = spec.reshape(shape[:-1] + spec.shape[-2:])
        return spec.abs().pow(2.0)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Wav2CLIP's audio encoder (``audio_encoder``): log spectrogram, standardised over the whole
    input tensor (one clip here), ResNet on one channel, global average pooling -> (batch, 512)."""

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.spectrogram = Spectrogram()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        out = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        out += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spectrogram(x.unsqueeze(1))
        x = torch.log(x + 1e-7)
        x = (x - torch.mean(x)) / (torch.std(x) + 1e-9)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return x.reshape(x.size(0), -1)


class MLPLayers(nn.Module):
    """``audio_transform``: Linear, ReLU, Dropout, Linear (units 512-512-512)."""

    def __init__(self, units: Sequence[int] = (512, 512, 512), dropout: float = 0.1) -> None:
        super().__init__()
        seq: list[nn.Module] = []
        for u0, u1 in zip(units[:-1], units[1:]):
            seq += [nn.Linear(u0, u1), nn.ReLU(), nn.Dropout(dropout)]
        self.sequential = nn.Sequential(*seq[:-2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


def blocks_per_stage(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Basic blocks per stage of an ``audio_encoder`` state dict (keys without the prefix)."""
    out = []
    for i in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state if k.startswith(f"layer{i}.")}
        if not idx or idx != set(range(len(idx))):
            raise ValueError(f"layer{i}: no or non-consecutive residual blocks")
        out.append(len(idx))
    return tuple(out)


def mlp_units(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Units of an ``audio_transform`` state dict: (in, hidden..., out)."""
    idx = sorted({int(k.split(".")[1]) for k in state if k.startswith("sequential.") and k.endswith(".weight")})
    if not idx or idx != list(range(0, 3 * len(idx), 3)):
        raise ValueError("audio_transform: not Wav2CLIP's MLP (Linear layers at sequential.0, .3, ...)")
    return (state["sequential.0.weight"].shape[1],) + tuple(state[f"sequential.{i}.weight"].shape[0] for i in idx)
