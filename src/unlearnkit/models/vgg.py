"""VGG-16 with batch norm (Simonyan & Zisserman, ICLR 2015; BN variant as torchvision's ``vgg16_bn``), CIFAR form.

Features: the configuration D — 64, 64, M, 128, 128, M, 256×3, M, 512×3, M, 512×3, M — each number a
3×3 convolution (padding 1, with bias, as in torchvision and the CIFAR VGG code) followed by BN and
ReLU, each M a 2×2 max-pool. On a 32×32 input the five pools leave a 1×1×512 map.

Classifier, CIFAR form: adaptive average pooling to 1×1, then one ``Linear(512, num_classes)`` — what
the CIFAR VGG code of the unlearning papers does (the ImageNet form's three 4096-wide layers would
add ~120 M parameters for a 1×1 map). The pooling is adaptive, so any input of at least 32×32 works
(a 64×64 input is averaged over its 2×2 final map). 14,728,266 parameters for 10 classes.

Initialisation as torchvision's ``VGG``: convolutions ``kaiming_normal_(mode="fan_out",
nonlinearity="relu")`` with zero bias, BN weight 1 and bias 0, the linear layer ``normal_(0, 0.01)``
with zero bias. ``_init_weights`` is the per-module initialiser, so ``models.reinitialise`` redraws
with the same scheme.

Module names: ``features`` (the conv stack), ``avgpool``, ``penultimate`` (a Flatten: the ``[B, 512]``
features, the module registered just before the head) and ``classifier`` (the head).
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .registry import MODELS

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, cfg: tuple = VGG16, num_classes: int = 10, in_channels: int = 3, batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, item, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.penultimate = nn.Flatten(1)          # [B, 512] features, just before the head
        self.classifier = nn.Linear(channels, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """torchvision's scheme, one module at a time (also what ``reinitialise`` applies)."""
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.classifier(self.penultimate(self.avgpool(self.features(x))))


@MODELS.register("vgg16_bn")
def vgg16_bn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGG-16 with batch norm, CIFAR form (global average pool, one linear layer); inputs ≥ 32×32."""
    if len(input_shape) != 3 or min(input_shape[1:]) < 32:
        raise ConfigError(f"vgg16_bn needs [C, H, W] inputs of at least 32×32 (five 2× pools), got {tuple(input_shape)}")
    return VGG(VGG16, num_classes, in_channels=input_shape[0], batch_norm=True)
