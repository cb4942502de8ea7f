"""A small Vision Transformer (Dosovitskiy et al., ICLR 2021) for 32×32 and 64×64 images, in plain torch.

``vit_small`` (our choice of configuration, stated here because "ViT" in the unlearning papers' CIFAR
tables means different sizes): patch 4, width 192, 3 heads of 64, MLP ratio 4, depth 6 — DeiT-Tiny's
width and heads (Touvron et al. 2021) at half its depth, ≈2.69 M parameters for 10 classes; a
32×32 input gives 8×8 = 64 patches + the class token. Any ``[C, H, W]`` input with H and W divisible
by the patch size works (64×64 Tiny-ImageNet: 256 patches); the position embeddings are sized at
build time from ``input_shape``. ``patch``, ``dim``, ``depth``, ``heads`` and ``mlp_ratio`` are
keywords of the factory for other sizes.

Architecture: a strided convolution embeds the patches, a learned class token is prepended, learned
position embeddings are added; pre-norm blocks ``x + Attn(LN(x))``, ``x + MLP(LN(x))`` with
``nn.functional.scaled_dot_product_attention`` (fused kernels where the device has them) and a GELU
MLP; a final LayerNorm (eps 1e-6, as timm); the class token's normed vector goes through
``penultimate`` (an Identity: the ``[B, dim]`` features, the module registered just before the
head) into the linear ``head``. No dropout. The blocks are an ``nn.ModuleList`` named ``blocks``
(so ``rmu``'s automatic layer choice treats them as a block stack, as it does an LM's layers).

Initialisation as timm's/DeiT's ViT: linear weights ``trunc_normal_(std=0.02)`` with zero bias,
LayerNorm weight 1 and bias 0, position embeddings and class token ``trunc_normal_(std=0.02)``, the
patch convolution at PyTorch's default. As in timm, the truncation bounds are torch's defaults ±2
(absolute, i.e. ±100 std), so these draws are in effect N(0, 0.02²). ``_init_weights`` is the per-module initialiser, so
``models.reinitialise`` redraws with the same scheme.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import MODELS


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"ViT width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # each [B, h, N, d/h]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image_size: tuple[int, int], num_classes: int, in_channels: int = 3, patch: int = 4,
                 dim: int = 192, depth: int = 6, heads: int = 3, mlp_ratio: float = 4.0):
        super().__init__()
        h, w = image_size
        if h % patch or w % patch:
            raise ConfigError(f"ViT: input {h}×{w} is not divisible by the patch size {patch}")
        self.patch, self.grid = patch, (h // patch, w // patch)
        num_patches = self.grid[0] * self.grid[1]
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.penultimate = nn.Identity()          # [B, dim] class-token features, just before the head
        self.head = nn.Linear(dim, num_classes)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """timm/DeiT's scheme, one module at a time (also what ``reinitialise`` applies)."""
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            module.reset_parameters()
        elif isinstance(module, ViT):
            nn.init.trunc_normal_(module.pos_embed, std=0.02)
            nn.init.trunc_normal_(module.cls_token, std=0.02)

    def forward(self, x):
        x = self.patch_embed(x)                                   # [B, dim, H/p, W/p]
        if tuple(x.shape[-2:]) != self.grid:
            raise ConfigError(f"ViT built for a {self.grid[0] * self.patch}×{self.grid[1] * self.patch} input "
                              f"got {x.shape[-2] * self.patch}×{x.shape[-1] * self.patch}")
        x = x.flatten(2).transpose(1, 2)                          # [B, N, dim]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.penultimate(self.norm(x[:, 0])))          # LayerNorm is per token: only the class token's


@MODELS.register("vit_small")
def vit_small(input_shape: tuple[int, ...], num_classes: int, *, patch: int = 4, dim: int = 192, depth: int = 6,
              heads: int = 3, mlp_ratio: float = 4.0) -> nn.Module:
    """Small ViT: patch 4, width 192, depth 6, 3 heads, MLP ratio 4 (DeiT-Tiny widths at half depth)."""
    if len(input_shape) != 3:
        raise ConfigError(f"vit_small needs [C, H, W] inputs, got {tuple(input_shape)}")
    return ViT(tuple(input_shape[1:]), num_classes, in_channels=input_shape[0], patch=patch, dim=dim,
               depth=depth, heads=heads, mlp_ratio=mlp_ratio)
