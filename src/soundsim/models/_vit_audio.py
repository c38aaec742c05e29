"""Plain-torch audio branches of CAV-MAE and ImageBind (private to ``cav_mae.py``
and ``imagebind.py``; no timm, torchaudio or torchvision).

Both networks are rebuilt from the shapes of the official checkpoint's tensors
(width, depth, MLP width, number of patches), so a small random checkpoint with
the same key names exercises the same code as the real one. The number of
attention heads is not stored in a checkpoint: both models use 64-dimensional
heads (CAV-MAE: 768 / 12, ImageBind audio: 768 / 12), so ``heads = width // 64``.

Each module's state-dict keys are the official ones (CAV-MAE: without the
``module.`` prefix of DataParallel; ImageBind: unchanged, e.g.
``modality_trunks.audio.blocks.0.attn.in_proj_weight``), so the checkpoint's
tensors load with ``load_state_dict(strict=True)`` without renaming.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundsim.errors import ConfigError

HEAD_DIM = 64  # both models: 768-wide transformers with 12 heads


def load_state_dict(weights: str | None, where: str, hint: str) -> dict[str, Any]:
    """The flat ``name -> tensor`` state dict in ``weights`` (a ``torch.save``d
    state dict, read with ``weights_only=True``; memory-mapped when the file
    allows it, so that only the tensors used are read from a large checkpoint).
    ``where`` is the config key named in errors (``models.<name>.weights.<variation>``)."""
    if not weights:
        raise ConfigError(f"{where}: no weights path given; this model needs local weights ({hint})")
    path = Path(weights)
    if not path.exists():
        raise ConfigError(f"{where}: {path} does not exist ({hint})")
    if not path.is_file():
        raise ConfigError(f"{where}: {path} is not a file; expected a PyTorch checkpoint ({hint})")
    import torch

    from soundsim.models import _torch_ckpt

    try:
        state = _torch_ckpt.read(path, mmap=True)
    except ValueError as e:
        raise ConfigError(f"{where}: {path} is {e}; expected {hint}") from e
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{where}: {path} is not a state dict of tensors (got {type(state).__name__}); "
                          f"expected {hint}")
    return dict(state)


def heads_for(width: int, where: str) -> int:
    if width % HEAD_DIM:
        raise ConfigError(f"{where}: transformer width {width} is not a multiple of the {HEAD_DIM}-dim heads")
    return width // HEAD_DIM


def load_exact(module, state: Mapping[str, Any], where: str, path: str) -> None:
    """Load the tensors of ``state`` that ``module`` has, checking that every one
    of its parameters and buffers is there with the same shape."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
           if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or bad:
        raise ConfigError(f"{where}: {path} does not match the architecture: "
                          + "; ".join(filter(None, [f"missing {', '.join(missing[:5])}" if missing else "",
                                                    f"shapes {', '.join(bad[:5])}" if bad else ""])))
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def mlp(dim: int, hidden: int):
    """The transformer MLP of both models (timm's ``Mlp``, ImageBind's ``Mlp``): ``fc1``,
    GELU, ``fc2``, with those parameter names."""
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    return Mlp()


def build_cavmae_audio(dim: int, depth_a: int, depth_u: int, hidden: int, heads: int, n_patches: int):
    """CAV-MAE's audio path (``forward_feat`` audio part), module names as in the checkpoint."""
    import torch
    from torch import nn

    class Attention(nn.Module):  # timm 0.4.5 Attention (qkv_bias=True, scale head_dim ** -0.5)
        def __init__(self) -> None:
            super().__init__()
            self.num_heads = heads
            self.scale = (dim // heads) ** -0.5
            self.qkv = nn.Linear(dim, dim * 3, bias=True)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))

    class Block(nn.Module):
        """CAV-MAE's Block: one attention and MLP, separate layer norms for the
        unified (``norm1``/``norm2``) and audio (``norm1_a``/``norm2_a``) streams
        (the visual ``*_v`` norms are not needed for audio)."""

        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm1_a = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = Attention()
            self.norm2, self.norm2_a = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.mlp = mlp(dim, hidden)

        def forward(self, x, modality: str | None = None):
            n1, n2 = (self.norm1, self.norm2) if modality is None else (self.norm1_a, self.norm2_a)
            x = x + self.attn(n1(x))
            return x + self.mlp(n2(x))

    class PatchEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(1, dim, kernel_size=16, stride=16)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class CavMaeAudio(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch_embed_a = PatchEmbed()
            self.pos_embed_a = nn.Parameter(torch.zeros(1, n_patches, dim))
            self.modality_a = nn.Parameter(torch.zeros(1, 1, dim))
            self.blocks_a = nn.ModuleList([Block() for _ in range(depth_a)])
            self.blocks_u = nn.ModuleList([Block() for _ in range(depth_u)])
            self.norm_a = nn.LayerNorm(dim)

        def forward(self, fbank):
            """(batch, frames, 128) normalised fbank -> (batch, patches, dim) audio tokens,
            as ``CAVMAE.forward_feat`` / ``CAVMAEFT.forward_feat(mode='a')``."""
            a = fbank.unsqueeze(1).transpose(2, 3)
            a = self.patch_embed_a(a)
            a = a + self.pos_embed_a
            a = a + self.modality_a
            for blk in self.blocks_a:
                a = blk(a)
            for blk in self.blocks_u:  # modality-specific normalisation in the unified blocks
                a = blk(a, "a")
            return self.norm_a(a)

    return CavMaeAudio()


def build_imagebind_audio(dim: int, depth: int, hidden: int, heads: int, n_tokens: int, out_dim: int,
                          kernel: int, stride: int):
    """ImageBind's audio preprocessor, trunk, head and postprocessor; the module
    tree mirrors ``ImageBindModel`` so the official keys load unchanged."""
    import torch
    from torch import nn

    class PatchEmbedGeneric(nn.Module):  # single-layer stem: ``proj`` is the Conv2d itself
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride, bias=False)
            self.norm_layer = nn.LayerNorm(dim)

        def forward(self, x):
            return self.norm_layer(self.proj(x).flatten(2).transpose(1, 2))

    class PosEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))

    class AudioPreprocessor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rgbt_stem = PatchEmbedGeneric()
            self.pos_embedding_helper = PosEmbed()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

        def forward(self, x):
            tokens = self.rgbt_stem(x)
            tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
            return tokens + self.pos_embedding_helper.pos_embed  # input is always 128 x 204: no interpolation

    class BlockWithMasking(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=True)
            self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = mlp(dim, hidden)
            self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

        def forward(self, x):  # x: (tokens, batch, dim), as ImageBind's trunk
            y = self.norm_1(x)
            x = x + self.attn(y, y, y, need_weights=False, attn_mask=None)[0]
            return x + self.mlp(self.norm_2(x))

    class SimpleTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(*[BlockWithMasking() for _ in range(depth)])

        def forward(self, tokens):
            x = tokens.transpose(0, 1)  # b l d -> l b d (pre_transformer_layer; no pre-LN for audio)
            for blk in self.blocks:
                x = blk(x)
            return x.transpose(0, 1)  # l b d -> b l d

    class SelectElement(nn.Module):
        def forward(self, x):
            return x[:, 0, ...]

    class LearnableLogitScaling(nn.Module):  # audio: learnable=False, a buffer in the checkpoint
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("log_logit_scale", torch.zeros([]))

        def forward(self, x):
            return torch.clip(self.log_logit_scale.exp(), max=100) * x

    class Normalize(nn.Module):
        def forward(self, x):
            return torch.nn.functional.normalize(x, dim=-1, p=2)

    class ImageBindAudio(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modality_preprocessors = nn.ModuleDict({"audio": AudioPreprocessor()})
            self.modality_trunks = nn.ModuleDict({"audio": SimpleTransformer()})
            self.modality_heads = nn.ModuleDict({"audio": nn.Sequential(
                nn.LayerNorm(dim, eps=1e-6), SelectElement(), nn.Linear(dim, out_dim, bias=False))})
            self.modality_postprocessors = nn.ModuleDict({"audio": nn.Sequential(
                Normalize(), LearnableLogitScaling())})

        def forward(self, clips):
            """(clips, 1, 128, 204) normalised fbanks -> (clips, out_dim) scaled unit vectors."""
            x = self.modality_preprocessors["audio"](clips)
            x = self.modality_trunks["audio"](x)
            x = self.modality_heads["audio"](x)
            return self.modality_postprocessors["audio"](x)

    return ImageBindAudio()
