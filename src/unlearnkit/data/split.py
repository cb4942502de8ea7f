"""The validated Split: which training examples to forget and which to retain.

Indices point into ``source.train``; they are checked once here (in range, unique, disjoint,
non-empty) so no method ever handles raw indices.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

import torch
from torch.utils.data import Dataset

from ..errors import SpecError
from .dataset import subset
from .sources import DataSource


def canonical_ids(ids: Iterable[int] | torch.Tensor) -> str:
    """The one written form of a set of training-set row ids: sorted, each once, as a JSON list
    without spaces (``[3,17,42]``)."""
    values = ids.flatten().tolist() if isinstance(ids, torch.Tensor) else ids
    return json.dumps(sorted({int(i) for i in values}), separators=(",", ":"))


def forget_ids_sha256(ids: Iterable[int] | torch.Tensor) -> str:
    """SHA-256 (hex) of :func:`canonical_ids` encoded as UTF-8: the hash a deletion record cites for
    the forgotten examples. Anyone can recompute it without unlearnkit::

        hashlib.sha256(json.dumps(sorted(set(ids)), separators=(",", ":")).encode()).hexdigest()
    """
    return hashlib.sha256(canonical_ids(ids).encode("utf-8")).hexdigest()


def _as_index(values, what: str) -> torch.Tensor:
    index = torch.as_tensor(values, dtype=torch.long).flatten()
    return torch.sort(index).values


@dataclass(frozen=True, eq=False)
class Split:
    source: DataSource
    forget_idx: torch.Tensor
    retain_idx: torch.Tensor
    spec: str = "custom"
    forget_classes: tuple[int, ...] | None = None
    test_forget_mask: torch.Tensor | None = None
    related_idx: torch.Tensor | None = None

    def __post_init__(self):
        n = len(self.source.train)
        forget = _as_index(self.forget_idx, "forget")
        retain = _as_index(self.retain_idx, "retain")
        object.__setattr__(self, "forget_idx", forget)
        object.__setattr__(self, "retain_idx", retain)
        for name, index in (("forget", forget), ("retain", retain)):
            if index.numel() == 0:
                raise SpecError(f"{self.spec}: the {name} set is empty")
            if index.min() < 0 or index.max() >= n:
                bad = index[(index < 0) | (index >= n)][:5].tolist()
                raise SpecError(f"{self.spec}: {name} indices out of range 0..{n - 1}: {bad}")
            if torch.unique(index).numel() != index.numel():
                raise SpecError(f"{self.spec}: duplicate {name} indices")
        if self.test_forget_mask is not None and len(self.test_forget_mask) != len(self.source.test):
            raise SpecError(f"{self.spec}: test mask has {len(self.test_forget_mask)} entries for {len(self.source.test)} test examples")
        if self.related_idx is not None:
            related = _as_index(self.related_idx, "related")
            object.__setattr__(self, "related_idx", related)
            if not torch.isin(related, retain).all():
                raise SpecError(f"{self.spec}: related (adjacent) indices must be a subset of the retain set")
        overlap = torch.isin(forget, retain)
        if overlap.any():
            raise SpecError(f"{self.spec}: {int(overlap.sum())} indices are in both forget and retain, e.g. {forget[overlap][:5].tolist()}")

    # --- datasets the methods and audits see ---
    @property
    def forget(self) -> Dataset:
        return subset(self.source.train, self.forget_idx)

    @property
    def retain(self) -> Dataset:
        return subset(self.source.train, self.retain_idx)

    @property
    def related(self) -> Dataset | None:
        """Retain examples semantically entangled with the forget set (same coarse group), if known."""
        return None if self.related_idx is None else subset(self.source.train, self.related_idx)

    @property
    def test(self) -> Dataset:
        """Test examples the model should still get right: for class-wise and sub-class forgetting,
        those outside the forgotten classes."""
        if self.test_forget_mask is None:
            return self.source.test
        return subset(self.source.test, torch.nonzero(~self.test_forget_mask).flatten())

    @property
    def test_forget(self) -> Dataset | None:
        """For class-wise and sub-class forgetting, the test examples of the forgotten classes; otherwise None."""
        if self.test_forget_mask is None:
            return None
        return subset(self.source.test, torch.nonzero(self.test_forget_mask).flatten())

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    def forget_ids_sha256(self) -> str:
        """SHA-256 of the sorted forget indices (what a deletion record cites; :func:`forget_ids_sha256`)."""
        return forget_ids_sha256(self.forget_idx)

    def __repr__(self) -> str:
        return f"Split({self.describe()}, source={self.source.name})"

    def describe(self) -> str:
        return f"{self.spec}: forget {len(self.forget_idx)}, retain {len(self.retain_idx)}"
