"""Batch image pipeline: shapes/dtypes kept, crop/flip are what they claim, reproducible per seed,
and applied by the task only while a method or the trainer augments."""
import pytest
import torch

from unlearnkit.data.transforms import ImagePipeline, random_crop, random_hflip, to_float
from unlearnkit.errors import ConfigError
from unlearnkit.tasks.classification import ClassificationTask


def _images(n=6, c=3, h=8, w=8):
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_to_float_scales_uint8_and_keeps_floats():
    x = _images()
    f = to_float(x)
    assert f.dtype == torch.float32 and f.max() <= 1 and torch.equal(f, x.float() / 255)
    same = torch.rand(2, 1, 3, 3)
    assert to_float(same) is same


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5) + 1
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # each output is one of the 25 windows of its own padded image
        windows = [padded[i, :, dy:dy + 5, dx:dx + 5] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_hflip_mirrors_exactly_the_drawn_rows():
    x = _images().float()
    out = random_hflip(x, torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_pipeline_reproducible_per_seed_and_normalises():
    pipe = ImagePipeline(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_padding=2, hflip=True)
    x = _images()
    a = pipe(x, augment=True, generator=torch.Generator().manual_seed(7))
    b = pipe(x, augment=True, generator=torch.Generator().manual_seed(7))
    c = pipe(x, augment=True, generator=torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    plain = pipe(x)  # no augmentation: exactly the normalised pixels
    assert torch.allclose(plain, (x.float() / 255 - 0.5) / 0.25)


def test_pipeline_rejects_bad_settings():
    with pytest.raises(ConfigError, match="std"):
        ImagePipeline(mean=(0.5,), std=(0.0,))
    with pytest.raises(ConfigError, match="channels"):
        ImagePipeline(mean=(0.5,), std=(1.0,))(_images())


def test_task_augments_only_inside_augmenting():
    pipe = ImagePipeline(mean=(0.5,) * 3, std=(0.5,) * 3, crop_padding=3, hflip=True)
    task = ClassificationTask(10, pipe)
    batch = (_images(), torch.zeros(6, dtype=torch.long))
    plain = task.to_device(batch, "cpu")[0]
    assert torch.equal(plain, pipe(batch[0]))
    with task.augmenting(torch.Generator().manual_seed(0)):
        augmented = task.to_device(batch, "cpu")[0]
    assert not torch.equal(augmented, plain)
    assert torch.equal(task.to_device(batch, "cpu")[0], plain)  # switched off again on exit
    with task.augmenting(None):
        assert torch.equal(task.to_device(batch, "cpu")[0], plain)


def test_unlearn_switches_augmentation_by_config(digits):
    """`augment` on: the method's batches are augmented (different result); off: as stored."""
    import unlearnkit as uk

    source = digits
    pipe = ImagePipeline(crop_padding=1, hflip=True)
    task = ClassificationTask(source.num_classes, pipe)
    split = uk.make_split(source, "class:0")
    model = uk.build_model("mlp", source.input_shape, source.num_classes, seed=0)
    plain_task = ClassificationTask(source.num_classes)
    ref = uk.unlearn(model, plain_task, split, method="finetune", epochs=1, seed=0)
    off = uk.unlearn(model, task, split, method="finetune", epochs=1, seed=0, augment=False)
    on = uk.unlearn(model, task, split, method="finetune", epochs=1, seed=0)
    params = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(params(off), params(ref))
    assert not torch.equal(params(on), params(ref))
