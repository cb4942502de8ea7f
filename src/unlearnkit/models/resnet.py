"""ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) in plain torch.

Two stems, one body:

- ``resnet18``: the CIFAR stem used by the unlearning papers' CIFAR-10/100 tables (SalUn,
  Unlearn-Sparse, SCRUB, …): one 3×3 convolution, stride 1, no max-pool, so a 32×32 input reaches
  the last stage at 4×4. 11,173,962 parameters for 10 classes.
- ``resnet18_imagenet``: the original ImageNet stem (7×7 convolution, stride 2, then a 3×3 max-pool,
  stride 2): the "ResNet-18" of the papers' Tiny-ImageNet (64×64) tables. 11,689,512 parameters for
  1,000 classes, torchvision's count.

Body: BasicBlocks [2, 2, 2, 2] at widths 64-128-256-512, batch norm, a 1×1 convolution + BN on
the shortcut when the shape changes, global average pooling. Both accept any input size (the
pooling is adaptive).

Initialisation as torchvision's ``ResNet``: convolutions ``kaiming_normal_(mode="fan_out",
nonlinearity="relu")``, BN weight 1 and bias 0, the linear head at PyTorch's default.
``zero_init_residual=True`` (default False, as torchvision) starts the last BN of each block at
weight 0, so each residual branch starts as the identity (Goyal et al. 2017); the papers' recipes
do not use it.

Module names: the head is ``fc``; ``penultimate`` (a Flatten after the average pool) outputs the
``[B, 512]`` features: the head's input, what ``task.features`` returns by default, and the leaf
registered just before the head, which ``rmu``'s default layer picks. ``_init_weights`` is the per-module
initialiser, so ``models.reinitialise`` redraws with this same scheme. ReLUs are not in-place (unlike
torchvision's), so an activation captured by a forward hook (``task.hidden``) is never overwritten
later in the forward pass.
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .registry import MODELS


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with a residual connection; ReLU after the sum."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet of BasicBlocks. ``stem``: ``"cifar"`` (3×3/1, no pool) or ``"imagenet"`` (7×7/2 + max-pool)."""

    def __init__(self, num_blocks: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3,
                 stem: str = "cifar", widths: tuple[int, ...] = (64, 128, 256, 512),
                 zero_init_residual: bool = False):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ConfigError(f"ResNet stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.zero_init_residual = zero_init_residual
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        layers, in_planes = [], widths[0]
        for i, (width, blocks) in enumerate(zip(widths, num_blocks)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks):
                stage.append(BasicBlock(in_planes, width, stride if j == 0 else 1))
                in_planes = width
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.penultimate = nn.Flatten(1)          # [B, 512] features, just before the head
        self.fc = nn.Linear(in_planes, num_classes)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """torchvision's scheme, one module at a time (also what ``reinitialise`` applies)."""
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            module.reset_parameters()
        elif isinstance(module, BasicBlock) and self.zero_init_residual:
            nn.init.zeros_(module.bn2.weight)   # children are visited before their parent by apply()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.penultimate(self.avgpool(x)))


@MODELS.register("resnet18")
def resnet18(input_shape: tuple[int, ...], num_classes: int, *, zero_init_residual: bool = False) -> nn.Module:
    """ResNet-18 with the CIFAR stem (3×3 conv, stride 1, no max-pool); any input size."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels=input_shape[0], stem="cifar",
                  zero_init_residual=zero_init_residual)


@MODELS.register("resnet18_imagenet")
def resnet18_imagenet(input_shape: tuple[int, ...], num_classes: int, *, zero_init_residual: bool = False) -> nn.Module:
    """ResNet-18 with the ImageNet stem (7×7 conv stride 2 + 3×3 max-pool), e.g. for 64×64 Tiny-ImageNet."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels=input_shape[0], stem="imagenet",
                  zero_init_residual=zero_init_residual)
