"""Bring your own data and model: any ``torch.utils.data.Dataset`` yielding ``(input, label)`` and any
``nn.Module`` classifier go through every method and audit (the contract in the README)."""
import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from unlearnkit import METHODS, audit, make_split, unlearn
from unlearnkit.data.sources import DataSource
from unlearnkit.tasks.classification import ClassificationTask


class Blobs(Dataset):
    """A user's dataset: computed on access, labels exposed only through ``__getitem__``."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.points = torch.randn(n, 6, generator=g) + 2.0 * nn.functional.one_hot(self.labels, 6)[:, :6].float()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.points[i], int(self.labels[i])


class UserNet(nn.Module):
    """A user's classifier with its own structure (no nn.Sequential)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(self.body(x))


@pytest.fixture(scope="module")
def source():
    return DataSource(name="blobs", train=Blobs(120, 0), test=Blobs(40, 1), num_classes=4, input_shape=(6,))


SHORT = {"epochs": 1, "batch_size": 16}


@pytest.mark.parametrize("name", [n for n in METHODS.names() if n != "original"])
def test_every_method_and_audit_on_a_user_dataset_and_model(name, source, tmp_path):
    split = make_split(source, "class:1")
    task = ClassificationTask(source.num_classes)
    torch.manual_seed(0)
    model = UserNet()
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).Config)}
    hp = {k: v for k, v in SHORT.items() if k in fields}
    if name == "entangle":
        hp.update(phase1_epochs=1, phase2_epochs=1)
    if name == "ssd":  # this untrained net has no parameter 5× (the default α) more forget-specific
        hp.update(alpha=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    out = unlearn(model, task, split, method=name, **hp)
    assert isinstance(out, UserNet) and out is not model
    assert all(torch.isfinite(p).all() for p in out.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))  # the user's model untouched
    # the method did something to the user's model (a method that returns its input fails here)
    assert any(not torch.equal(p, q) for p, q in zip(out.parameters(), before)), name
    metrics = audit(out, task, split, ["accuracy", "mia", "relearn", "weights"], original=model)
    assert 0.0 <= metrics["ua"] <= 100.0 and 0.0 <= metrics["mia_efficacy"] <= 100.0
