"""ESResNeXt-fbsp, the audio head of AudioCLIP, in plain torch (no torchvision).

A re-implementation of ``model/esresnet/{base,fbsp,attention}.py`` and
``utils/transforms.py`` of https://github.com/AndreyGuzhov/AudioCLIP (commit
45327aa, the one the paper's authors used), restricted to inference. Module and
parameter names are the upstream ones, so that the ``audio.*`` entries of an
AudioCLIP checkpoint load unchanged (``strict``): ``conv1``, ``bn1``,
``layer1``-``layer4`` (ResNeXt bottlenecks: ``conv1``-``conv3``, ``bn1``-``bn3``,
``downsample.0/1``), ``att1``-``att5`` (``conv_depth``, ``conv_point``, ``bn``),
``fc``, ``fbsp`` (``m``, ``fb``, ``fc``, an empty ``bias``) and the ``window``
buffer. Imported only by :mod:`soundsim.models.audioclip`'s ``load``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_FFT, HOP_LENGTH, WIN_LENGTH, WINDOW = 2048, 561, 1654, "blackmanharris"
LOG10_EPS = 1e-18


def scale(x, old_min, old_max, new_min, new_max):
    """Linear map of [old_min, old_max] onto [new_min, new_max] (utils.transforms.scale)."""
    old_range = old_max - old_min
    new_range = new_max - new_min
    return (((x - old_min) * new_range) / old_range) + new_min


def frame_signal(signal: torch.Tensor, frame_length: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """(..., n) -> (..., frames, frame_length) windowed frames; the signal is zero-padded on both
    sides (half each, the extra sample on the right) to a whole number of hops (utils.transforms)."""
    n = signal.shape[-1]
    num_frames = 1 if n <= frame_length else 1 + int(np.ceil((1.0 * n - frame_length) / hop_length))
    pad_len = int((num_frames - 1) * hop_length + frame_length)
    if pad_len > n:
        pad = pad_len - n
        signal = F.pad(signal, (pad // 2, pad - pad // 2))
    return signal.unfold(-1, frame_length, hop_length)[..., :num_frames, :] * window


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """ResNeXt bottleneck (torchvision's, as copied into esresnet/base.py)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Attention2d(nn.Module):
    """esresnet/attention.py: max-pool to the target size, depthwise conv, pointwise conv, BN, sigmoid."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 padding_size: tuple[int, int]) -> None:
        super().__init__()
        self.conv_depth = nn.Conv2d(in_channels, in_channels, kernel_size=kernel_size, padding=padding_size,
                                    groups=in_channels)
        self.conv_point = nn.Conv2d(in_channels, out_channels, kernel_size=(1, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        x = F.adaptive_max_pool2d(x, tuple(size))
        return self.activation(self.bn(self.conv_point(self.conv_depth(x))))


class LinearFBSP(nn.Module):
    """The learnable frequency B-spline (fbsp) time-frequency transform (esresnet/fbsp.py):
    ``out_features`` complex kernels over a frame, each a sinc window raised to a power ``m``,
    with bandwidth ``fb`` and centre frequency ``fc``."""

    def __init__(self, out_features: int, normalized: bool = False) -> None:
        super().__init__()
        self.out_features = out_features
        self.normalized = normalized
        self.eps = 1e-8
        self.m = nn.Parameter(torch.zeros(out_features))
        self.fb = nn.Parameter(torch.ones(out_features))
        self.fc = nn.Parameter(torch.arange(out_features, dtype=torch.get_default_dtype()))
        # upstream builds it with bias=False as Parameter(None): an empty parameter that is saved
        self.bias = nn.Parameter(torch.empty(0))

    @staticmethod
    def power(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Complex power x1 ** x2, both as (..., 2) real/imaginary pairs."""
        magnitudes = (x1[..., 0] ** 2 + x1[..., 1] ** 2) ** 0.5
        phases = x1[..., 1].atan2(x1[..., 0])
        power_real, power_imag = x2[..., 0], x2[..., 1]
        mag_out = (magnitudes ** 2) ** (0.5 * power_real) * torch.exp(-power_imag * phases)
        arg = power_real * phases + 0.5 * power_imag * (magnitudes ** 2).log()
        return mag_out.unsqueeze(-1) * torch.stack((arg.cos(), arg.sin()), dim=-1)

    @staticmethod
    def sinc(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x == 0, torch.ones_like(x), torch.sin(x) / x)

    def kernels(self, in_features: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(out_features, in_features, 2) real/imaginary weights."""
        t = np.pi * torch.linspace(-1.0, 1.0, in_features, dtype=dtype, device=device).reshape(1, -1, 1) + self.eps
        m, fb, fc = (p.reshape(-1, 1, 1) for p in (self.m, self.fb, self.fc))
        kernel = torch.cat((torch.cos(fc * t), -torch.sin(fc * t)), dim=-1)
        win = self.sinc(fb * t / (m + self.eps))
        win = self.power(torch.cat((win, torch.zeros_like(win)), dim=-1), torch.cat((m, torch.zeros_like(m)), dim=-1))
        weights = fb.sqrt() * torch.cat((
            win[..., :1] * kernel[..., :1] - win[..., 1:] * kernel[..., 1:],
            win[..., :1] * kernel[..., 1:] + win[..., 1:] * kernel[..., :1],
        ), dim=-1)
        if self.normalized:
            weights = weights / (in_features ** 0.5)
        return weights

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Real frames (..., in_features) -> (..., out_features, 2)."""
        w = self.kernels(x.shape[-1], x.dtype, x.device) if weights is None else weights
        out = torch.stack((F.linear(x, w[..., 0]), F.linear(x, w[..., 1])), dim=-1)
        if self.bias.numel() == self.out_features * 2:
            out = out + self.bias
        return out


class ESResNeXtFBSP(nn.Module):
    """ESResNeXt-fbsp with attention, as AudioCLIP's ``audio`` branch (forward = ``encode_audio``:
    the ``fc`` output, before AudioCLIP's L2 normalisation). ``layers``, ``groups`` and
    ``width_per_group`` default to ResNeXt-50 32x4d, the official model."""

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), groups: int = 32, width_per_group: int = 4,
                 num_classes: int = 1024, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                 win_length: int = WIN_LENGTH, window: str = WINDOW, normalized: bool = True) -> None:
        super().__init__()
        import scipy.signal as sps

        self.groups, self.base_width, self.inplanes = groups, width_per_group, 64
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        e = Bottleneck.expansion
        self.layer1 = self._make_layer(64, layers[0])
        self.att1 = Attention2d(64, 64 * e, (3, 1), (1, 0))
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.att2 = Attention2d(64 * e, 128 * e, (1, 5), (0, 2))
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.att3 = Attention2d(128 * e, 256 * e, (3, 1), (1, 0))
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.att4 = Attention2d(256 * e, 512 * e, (1, 5), (0, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.att5 = Attention2d(512 * e, 512 * e, (3, 5), (1, 2))
        self.fc = nn.Linear(512 * e, num_classes)
        self.fbsp = LinearFBSP(int(round(n_fft / 2)) + 1, normalized=normalized)
        win = torch.from_numpy(sps.get_window(window=window, Nx=win_length, fftbins=True))
        self.register_buffer("window", win.to(torch.get_default_dtype()))
        self._kernels: torch.Tensor | None = None

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                                       nn.BatchNorm2d(planes * Bottleneck.expansion))
        out = [Bottleneck(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * Bottleneck.expansion
        out += [Bottleneck(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
                for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def freeze(self) -> ESResNeXtFBSP:
        """Inference mode; the fbsp kernels (fixed once the weights are) are computed once."""
        self.eval()
        with torch.no_grad():
            self._kernels = self.fbsp.kernels(self.n_fft, self.window.dtype, self.window.device)
        return self

    def _apply(self, fn, *args, **kwargs):  # .to(device) moves the cached kernels too
        out = super()._apply(fn, *args, **kwargs)
        if self._kernels is not None:
            self._kernels = fn(self._kernels)
        return out

    def log_power(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, samples) in int16 units -> (batch, 1, 3, bins // 3, frames) dB: the fbsp power
        spectrogram split into 3 frequency bands used as the 3 image channels (_forward_pre_processing)."""
        batch = x.shape[0]
        x = scale(x.to(torch.get_default_dtype()), -32768.0, 32767, -1.0, 1.0)
        frames = frame_signal(x.view(-1, x.shape[-1]), self.win_length, self.hop_length, self.window)
        if self.n_fft > self.win_length:
            pad = self.n_fft - self.win_length
            frames = F.pad(frames, [pad // 2, pad - pad // 2])
        spec = self.fbsp(frames, self._kernels).transpose(-2, -3)  # (batch, bins, frames, 2)
        per_band = spec.shape[-3] // 3
        spec = spec[:, : 3 * per_band].reshape(batch, -1, per_band, *spec.shape[-2:])
        power = spec[..., 0] ** 2 + spec[..., 1] ** 2
        power = torch.where(power > 0.0, power, torch.full_like(power, LOG10_EPS))
        power = power.reshape(batch, -1, 3, *power.shape[-2:])
        return torch.log10(power).mul(10.0)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer, att in ((self.layer1, self.att1), (self.layer2, self.att2), (self.layer3, self.att3),
                           (self.layer4, self.att4)):
            x_att = x.clone()
            x = layer(x)
            x = x * att(x_att, x.shape[-2:])
        return x

    def _reduction(self, x: torch.Tensor) -> torch.Tensor:
        x_att = x.clone()
        x = self.avgpool(x)
        x = x * self.att5(x_att, x.shape[-2:])
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, samples) waveform in int16 units -> (batch, num_classes)."""
        x_db = self.log_power(x)
        pooled = [self._reduction(self._features(x_db[:, ch])) for ch in range(x_db.shape[1])]
        return self.fc(torch.stack(pooled, dim=-1).sum(dim=-1))


def architecture(state: dict[str, torch.Tensor]) -> dict:
    """ESResNeXtFBSP keyword arguments read from an audio-head state dict (keys without 'audio.')."""
    layers = []
    for i in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state if k.startswith(f"layer{i}.")}
        if not idx or idx != set(range(len(idx))):
            raise ValueError(f"layer{i}: no or non-consecutive bottleneck blocks")
        layers.append(len(idx))
    width = state["layer1.0.conv1.weight"].shape[0]
    per_group = state["layer1.0.conv2.weight"].shape[1]
    groups = width // per_group
    return {
        "layers": tuple(layers),
        "groups": groups,
        "width_per_group": per_group,  # layer1: planes 64, so width = per_group * groups
        "num_classes": state["fc.weight"].shape[0],
        "n_fft": 2 * (state["fbsp.m"].shape[0] - 1),
        "win_length": state["window"].shape[0] if "window" in state else WIN_LENGTH,
    }
