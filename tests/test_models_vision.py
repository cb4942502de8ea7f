"""The vision architectures: resnet18 (CIFAR stem), resnet18_imagenet, vgg16_bn, vit_small.

Small CPU batches (2 images); the parameter counts are checked against the architectures'
published counts (torchvision's ResNet-18: 11,689,512 at 1,000 classes; the CIFAR ResNet-18 and
VGG-16-BN of the CIFAR code: 11,173,962 and 14,728,266 at 10 classes) and, for the ViT, against a
count written out layer by layer.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unlearnkit import ClassificationTask
from unlearnkit.errors import ConfigError
from unlearnkit.models import MODELS, build_model, reinitialise
from unlearnkit.tasks.base import head_layer

CIFAR = (3, 32, 32)
TINY = (3, 64, 64)
FEATURES = {"resnet18": 512, "resnet18_imagenet": 512, "vgg16_bn": 512, "vit_small": 192}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    """One model per architecture at 32×32, 10 classes (built once: ResNet/VGG init is the slow part)."""
    return {name: build_model(name, CIFAR, 10, seed=0) for name in FEATURES}


def _images(shape=CIFAR, n=2, seed=0):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def test_registered():
    for name in FEATURES:
        assert name in MODELS.names()


@pytest.mark.parametrize("name", list(FEATURES))
def test_forward_backward(models, name):
    model = models[name]
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(_images())
    assert logits.shape == (2, 10)
    nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    model.zero_grad(set_to_none=True)


def _vit_count(dim, depth, mlp, patch, channels, tokens, classes):
    layer_norm = 2 * dim
    block = (2 * layer_norm + (dim * 3 * dim + 3 * dim) + (dim * dim + dim)
             + (dim * mlp + mlp) + (mlp * dim + dim))
    embed = channels * patch * patch * dim + dim + tokens * dim + dim   # patch conv, pos embed, class token
    return embed + depth * block + layer_norm + dim * classes + classes


@pytest.mark.parametrize("name, shape, classes, expected", [
    ("resnet18", CIFAR, 10, 11_173_962),                 # CIFAR ResNet-18 (kuangliu/Unlearn-Sparse code)
    ("resnet18_imagenet", (3, 224, 224), 1000, 11_689_512),  # torchvision resnet18
    ("resnet18_imagenet", TINY, 200, 11_689_512 - 800 * 513),  # same body, 200-way head
    ("vgg16_bn", CIFAR, 10, 14_728_266),                 # CIFAR VGG-16-BN, one Linear(512, 10)
    ("vit_small", CIFAR, 10, _vit_count(192, 6, 768, 4, 3, 65, 10)),
    ("vit_small", TINY, 200, _vit_count(192, 6, 768, 4, 3, 257, 200)),
])
def test_parameter_count(name, shape, classes, expected):
    model = build_model(name, shape, classes)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_stems_downsample_as_published(models):
    """CIFAR stem: a 32×32 input reaches layer4 at 4×4; ImageNet stem: 64×64 → 2×2 (stride 32)."""
    task = ClassificationTask(10)
    batch = (_images(), torch.zeros(2, dtype=torch.long))
    models["resnet18"].eval()
    assert task.hidden(models["resnet18"], batch, "layer4").shape == (2, 512, 4, 4)
    tiny = build_model("resnet18_imagenet", TINY, 200, seed=0).eval()
    out = task.hidden(tiny, (_images(TINY), torch.zeros(2, dtype=torch.long)), "layer4")
    assert out.shape == (2, 512, 2, 2)
    assert tiny(_images(TINY)).shape == (2, 200)
    assert models["resnet18"].maxpool.__class__ is nn.Identity and tiny.conv1.kernel_size == (7, 7)


def test_vit_on_64x64_and_wrong_sizes():
    model = build_model("vit_small", TINY, 200, seed=0).eval()
    assert model(_images(TINY)).shape == (2, 200)
    assert model.pos_embed.shape == (1, 16 * 16 + 1, 192)
    with pytest.raises(ConfigError, match="built for a 64×64"):
        model(_images(CIFAR))
    with pytest.raises(ConfigError, match="not divisible"):
        build_model("vit_small", (3, 30, 30), 10)
    with pytest.raises(ConfigError, match="at least 32"):
        build_model("vgg16_bn", (1, 8, 8), 10)


def test_deterministic_init_per_seed():
    for name in ("resnet18", "vit_small"):
        a = build_model(name, CIFAR, 10, seed=3).state_dict()
        b = build_model(name, CIFAR, 10, seed=3).state_dict()
        c = build_model(name, CIFAR, 10, seed=4).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["head.weight" if name == "vit_small" else "fc.weight"],
                               c["head.weight" if name == "vit_small" else "fc.weight"])


@pytest.mark.parametrize("name", list(FEATURES))
def test_channels_last_input_same_output(models, name):
    model = models[name].eval()
    x = _images(seed=1)
    with torch.no_grad():
        expected = model(x)
        got = model(x.contiguous(memory_format=torch.channels_last))
        got_model = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_model, expected, rtol=1e-4, atol=1e-5)


HEADS = {"resnet18": "fc", "resnet18_imagenet": "fc", "vgg16_bn": "classifier", "vit_small": "head"}


@pytest.mark.parametrize("name", list(FEATURES))
def test_penultimate_features_feed_the_head(models, name):
    """``task.features`` (the input of ``head_layer``, the last Linear) is the ``[B, D]`` output of
    the module named ``penultimate``, and the head maps it exactly to the logits."""
    model = models[name].eval()
    assert head_layer(model) == HEADS[name]
    task = ClassificationTask(10)
    batch = (_images(), torch.tensor([0, 1]))
    with torch.no_grad():
        features = task.features(model, batch)
        named = task.hidden(model, batch, "penultimate")
        logits = task.logits(model, batch)
    assert features.shape == (2, FEATURES[name])
    torch.testing.assert_close(named, features)
    torch.testing.assert_close(getattr(model, HEADS[name])(features), logits)


def test_reinitialise_uses_the_model_scheme():
    """``reinitialise`` redraws with each model's own scheme (Kaiming fan-out convs and fresh BN
    statistics for ResNet/VGG, N(0, 0.01) VGG head, truncated-normal ViT embeddings), reproducibly."""
    model = build_model("resnet18", CIFAR, 10, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
        model.bn1.running_mean.fill_(3.0)
    reinitialise(model, seed=1)
    conv = model.layer3[0].conv2.weight                       # 256 → 256, 3×3: std √(2 / (256·9))
    assert abs(conv.std().item() / math.sqrt(2 / (256 * 9)) - 1) < 0.05
    assert torch.equal(model.bn1.weight, torch.ones(64)) and torch.equal(model.bn1.running_mean, torch.zeros(64))
    again = build_model("resnet18", CIFAR, 10, seed=0)
    reinitialise(again, seed=1)
    assert torch.equal(again.layer3[0].conv2.weight, conv)

    vgg = build_model("vgg16_bn", CIFAR, 10, seed=0)
    reinitialise(vgg, seed=2)
    assert abs(vgg.classifier.weight.std().item() / 0.01 - 1) < 0.1 and not vgg.classifier.bias.any()

    vit = build_model("vit_small", CIFAR, 10, seed=0)
    before = vit.pos_embed.detach().clone()
    reinitialise(vit, seed=5)
    assert not torch.equal(vit.pos_embed, before)
    assert abs(vit.pos_embed.std().item() / 0.02 - 1) < 0.1   # timm's trunc_normal_(std=.02): bounds ±2 absolute
    assert abs(vit.blocks[0].mlp.fc1.weight.std().item() / 0.02 - 1) < 0.1


def test_zero_init_residual_is_off_by_default():
    default = build_model("resnet18", CIFAR, 10, seed=0)
    zeroed = MODELS.get("resnet18")(CIFAR, 10, zero_init_residual=True)
    blocks = [m for m in zeroed.modules() if m.__class__.__name__ == "BasicBlock"]
    assert len(blocks) == 8 and all(not b.bn2.weight.any() for b in blocks)
    assert all(b.bn1.weight.eq(1).all() for b in blocks)
    assert all(m.bn2.weight.eq(1).all() for m in default.modules() if m.__class__.__name__ == "BasicBlock")
    reinitialise(zeroed, seed=0)                             # the keyword survives a re-initialisation
    assert all(not b.bn2.weight.any() for b in blocks)
