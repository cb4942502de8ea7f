"""Image inputs on whole batches, on the batch's device, in plain torch (no torchvision).

Image sources keep their pixels as they come (``uint8`` ``[N, C, H, W]`` for CIFAR, Tiny-ImageNet,
MNIST…: 4× less memory than float32) and describe how a batch becomes a model input with an
:class:`ImagePipeline`: scale to [0, 1], per-channel normalisation, and — only while training,
with a seeded generator — random crop with zero padding and horizontal flip, the standard
CIFAR/Tiny-ImageNet augmentation of the papers' recipes.

Random draws (crop offsets, flips) come from a CPU ``torch.Generator`` so a run is reproducible
per seed on any device; the pixel work happens on the batch's device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def to_float(x: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels → float32 in [0, 1]; floating inputs pass unchanged."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise ConfigError(f"image inputs must be uint8 or floating point, got {x.dtype}")
    return x


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Per-channel ``(x − mean) / std`` for ``[B, C, H, W]``."""
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ConfigError(f"normalisation has {len(mean)} means / {len(std)} stds for {x.shape[1]} channels")
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image zero-padded by ``padding`` on every side, then cropped back to its size at an
    offset drawn uniformly per image (torchvision's ``RandomCrop(size, padding)``)."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device, non_blocking=True)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device, non_blocking=True)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]   # [B, 1, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]   # [B, 1, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Each image mirrored left–right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device, non_blocking=True)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@dataclass(frozen=True)
class ImagePipeline:
    """How a stored image batch becomes a model input.

    ``mean``/``std``: per-channel normalisation after scaling to [0, 1] (empty: none).
    ``crop_padding``: random crop with this much zero padding while training (0: off).
    ``hflip``: random horizontal flip while training.
    ``channels_last``: return the batch in channels-last memory format (faster convolutions on GPU).
    """

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    crop_padding: int = 0
    hflip: bool = False
    channels_last: bool = False

    def __post_init__(self):
        if len(self.mean) != len(self.std):
            raise ConfigError(f"ImagePipeline: {len(self.mean)} means but {len(self.std)} stds")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"ImagePipeline: std must be positive, got {self.std}")
        if self.crop_padding < 0:
            raise ConfigError(f"ImagePipeline: crop_padding must be >= 0, got {self.crop_padding}")

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.hflip

    def __call__(self, x: torch.Tensor, *, augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        x = to_float(x)
        if augment:
            x = random_crop(x, self.crop_padding, generator)
            if self.hflip:
                x = random_hflip(x, generator)
        if self.mean:
            x = normalise(x, self.mean, self.std)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def without_augmentation(self) -> "ImagePipeline":
        return ImagePipeline(self.mean, self.std, 0, False, self.channels_last)
