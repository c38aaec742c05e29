"""BEATs network (Chen et al., ICML 2023) in plain torch, for inference only.

soundsim's own implementation of the model that ``microsoft/unilm``'s
``beats/BEATs.py`` and ``beats/backbone.py`` define, written so that the
official checkpoints (``torch.save({'cfg': {...}, 'model': state_dict})``) load
with their parameter names unchanged. Only the forward pass in evaluation mode
is implemented: dropout, layer drop, the gradient multiplier between layers
(``layer_wise_gradient_decay_ratio``, identity in the forward pass) and the
padding mask (soundsim embeds one clip at a time, unpadded) do not exist here.
Imported only when a BEATs model is loaded (torch is heavy).

Architecture (names = state_dict keys):

* ``patch_embedding``: ``Conv2d(1, embed_dim, 16, stride 16)`` over the
  normalised (time x 128) fbank: tokens in time-major order
  (``t * 8 + f``, 8 frequency patches per 16-frame time step);
  ``layer_norm`` (over ``embed_dim``); ``post_extract_proj`` (Linear to
  ``encoder_embed_dim``) when the two dimensions differ;
* ``encoder.pos_conv.0``: a grouped ``Conv1d`` with weight normalisation over
  dimension 2 (``weight_g``, ``weight_v``, ``bias``; kernel ``conv_pos``,
  padding ``conv_pos // 2``, the last output step dropped for an even kernel),
  GELU, added to the tokens; ``encoder.layer_norm`` before the layers
  (post-norm, ``layer_norm_first`` false) or after them (pre-norm);
* ``encoder.layers.<i>``: fairseq-style transformer layers with deep-norm
  residual scaling ``(2 N)^(1/4)``, multi-head attention whose scores are
  computed as ``((q * d^-0.5 / 32) . k - max) * 32``, plus a bucketed relative
  position bias (T5-style, ``num_buckets``/``max_distance``; one embedding
  shared by all layers, computed in layer 0) gated per query by
  ``grep_linear``/``grep_a`` (``gru_rel_pos``);
* ``predictor`` (fine-tuned checkpoints only): Linear to the AudioSet classes;
  kept so that those checkpoints load strictly, never used for embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FBANK_MEAN = 15.41663  # BEATs.preprocess defaults
FBANK_STD = 6.55582
NUM_MEL_BINS = 128
ATTENTION_ALPHA = 32  # fixed in upstream MultiheadAttention.forward
ACTIVATIONS = ("relu", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear", "glu")


@dataclass
class BEATsConfig:
    """The fields (and defaults) of upstream ``BEATsConfig``; a checkpoint's ``cfg`` overrides them."""

    input_patch_size: int = -1
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 1.0  # training only
    layer_norm_first: bool = False
    deep_norm: bool = False
    dropout: float = 0.1  # training only (all dropouts)
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> BEATsConfig:
        """Known fields from ``cfg`` (upstream ignores the others too)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names})

    def check(self) -> None:
        """ValueError for a configuration this implementation cannot build."""
        if self.input_patch_size <= 0:
            raise ValueError(f"input_patch_size {self.input_patch_size}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by "
                             f"encoder_attention_heads {self.encoder_attention_heads}")
        if self.layer_norm_first and self.deep_norm:
            raise ValueError("deep_norm and layer_norm_first are exclusive (upstream asserts it)")
        if self.activation_fn not in ACTIVATIONS:
            raise ValueError(f"activation_fn {self.activation_fn!r}; known: {', '.join(ACTIVATIONS)}")


def _activation(name: str):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return lambda x: F.gelu(x.float()).type_as(x)
    if name in ("gelu_fast", "gelu_accurate"):
        a = math.sqrt(2 / math.pi)
        return lambda x: 0.5 * x * (1 + torch.tanh(a * (x + 0.044715 * torch.pow(x, 3))))
    if name == "tanh":
        return torch.tanh
    return lambda x: x  # linear; glu applies its gate inside fc1


class GLULinear(nn.Module):
    """``fc1`` of ``activation_fn='glu'``: Linear to twice the width, first half times swish(second half)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.dim_out = dim_out
        self.linear = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        gate = x[..., self.dim_out:]
        return x[..., : self.dim_out] * (gate * torch.sigmoid(gate))


class WeightNormConv1d(nn.Module):
    """``Conv1d`` under ``weight_norm(dim=2)``: parameters ``weight_g`` (1, 1, k), ``weight_v``, ``bias``."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.zeros(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 2)  # what torch's weight_norm hook computes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class Attention(nn.Module):
    def __init__(self, cfg: BEATsConfig, rel_bias: nn.Embedding | None) -> None:
        super().__init__()
        d, h = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.num_heads, self.head_dim = h, d // h
        self.scaling = self.head_dim ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        if rel_bias is not None:
            self.relative_attention_bias = rel_bias  # one module shared by every layer, as upstream
        self.gru_rel_pos = cfg.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, h, 1, 1))

    def _buckets(self, rel: torch.Tensor) -> torch.Tensor:
        """Bidirectional T5 buckets of relative positions (key - query)."""
        half = self.num_buckets // 2
        buckets = (rel > 0).to(torch.long) * half
        rel = torch.abs(rel)
        max_exact = half // 2
        large = max_exact + (torch.log(rel.float() / max_exact) / math.log(self.max_distance / max_exact)
                             * (half - max_exact)).to(torch.long)
        large = torch.min(large, torch.full_like(large, half - 1))
        return buckets + torch.where(rel < max_exact, rel, large)

    def position_bias(self, length: int) -> torch.Tensor:
        """(heads, length, length) relative position bias."""
        pos = torch.arange(length, dtype=torch.long)
        buckets = self._buckets(pos[None, :] - pos[:, None]).to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute([2, 0, 1])

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (T, B, C), as upstream (fairseq layout)."""
        tgt_len, bsz, dim = x.shape
        h, hd = self.num_heads, self.head_dim
        if pos_bias is None and hasattr(self, "relative_attention_bias"):
            pos_bias = self.position_bias(tgt_len).unsqueeze(0).repeat(bsz, 1, 1, 1).view(bsz * h, tgt_len, tgt_len)
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q * self.scaling
        q = q * (1 / ATTENTION_ALPHA)
        q = q.contiguous().view(tgt_len, bsz * h, hd).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * h, hd).transpose(0, 1)
        v = v.contiguous().view(-1, bsz * h, hd).transpose(0, 1)
        w = torch.bmm(q, k.transpose(1, 2))
        w = (w - w.max(dim=-1, keepdim=True)[0]) * ATTENTION_ALPHA
        if pos_bias is not None:
            bias = pos_bias
            if self.gru_rel_pos:
                query = q.view(bsz, h, tgt_len, hd) * ATTENTION_ALPHA / self.scaling
                gates = torch.sigmoid(self.grep_linear(query).view(bsz, h, tgt_len, 2, 4).sum(-1, keepdim=False))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
                bias = gate.view(bsz * h, tgt_len, 1) * pos_bias
            w = w + bias.view(w.size())
        w = F.softmax(w, dim=-1)
        out = torch.bmm(w, v).transpose(0, 1).contiguous().view(tgt_len, bsz, dim)
        return self.out_proj(out), pos_bias


class Layer(nn.Module):
    def __init__(self, cfg: BEATsConfig, rel_bias: nn.Embedding | None) -> None:
        super().__init__()
        d, ffn = cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim
        self.self_attn = Attention(cfg, rel_bias)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = GLULinear(d, ffn) if cfg.activation_fn == "glu" else nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.activation = _activation(cfg.activation_fn)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 1 / 4) if cfg.deep_norm else 1

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        residual = x
        if self.layer_norm_first:
            x, pos_bias = self.self_attn(self.self_attn_layer_norm(x), pos_bias)
            x = residual + x
            residual = x
            x = self.fc2(self.activation(self.fc1(self.final_layer_norm(x))))
            return residual + x, pos_bias
        x, pos_bias = self.self_attn(x, pos_bias)
        x = self.self_attn_layer_norm(residual * self.alpha + x)
        residual = x
        x = self.fc2(self.activation(self.fc1(x)))
        return self.final_layer_norm(residual * self.alpha + x), pos_bias


class Encoder(nn.Module):
    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        d = cfg.encoder_embed_dim
        self.pos_conv = nn.Sequential(WeightNormConv1d(d, cfg.conv_pos, cfg.conv_pos_groups))
        self.pos_conv_trim = 1 if cfg.conv_pos % 2 == 0 else 0  # upstream SamePad
        rel = nn.Embedding(cfg.num_buckets, cfg.encoder_attention_heads) if cfg.relative_position_embedding else None
        self.layers = nn.ModuleList(Layer(cfg, rel) for _ in range(cfg.encoder_layers))
        self.layer_norm = nn.LayerNorm(d)
        self.layer_norm_first = cfg.layer_norm_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens -> (B, N, C) output of the last layer."""
        conv = self.pos_conv(x.transpose(1, 2))
        if self.pos_conv_trim:
            conv = conv[:, :, : -self.pos_conv_trim]
        x = x + F.gelu(conv).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = x.transpose(0, 1)
        pos_bias = None
        for layer in self.layers:
            x, pos_bias = layer(x, pos_bias)
        x = x.transpose(0, 1)
        return self.layer_norm(x) if self.layer_norm_first else x


class BEATs(nn.Module):
    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.post_extract_proj = (nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
                                  if cfg.embed_dim != cfg.encoder_embed_dim else None)
        p = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=p, stride=p, bias=cfg.conv_bias)
        self.encoder = Encoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class) if cfg.finetuned_model else None

    @staticmethod
    def normalise(fbank: torch.Tensor) -> torch.Tensor:
        return (fbank - FBANK_MEAN) / (2 * FBANK_STD)

    def tokens(self, fbank: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) normalised fbank -> (B, (T // p) * (128 // p), encoder_embed_dim) encoder output
        (what upstream ``extract_features`` returns for a pre-trained model)."""
        x = self.patch_embedding(fbank.unsqueeze(1))
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)

    def frames(self, fbank: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) normalised fbank -> (B, T // p, encoder_embed_dim): the tokens of each
        time step averaged over its 128 // p frequency patches."""
        x = self.tokens(fbank)
        per_step = NUM_MEL_BINS // self.cfg.input_patch_size
        return x.reshape(x.shape[0], -1, per_step, x.shape[-1]).mean(dim=2)
