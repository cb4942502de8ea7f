"""In-memory datasets and the one batching function every loop uses.

:class:`TensorData` holds whole tensors plus an optional index view, so subsets (forget,
retain, test-of-remaining-classes) cost no copy and batches are gathered with one index op.
Any other ``torch.utils.data.Dataset`` yielding ``(input, label)`` also works: it is batched
through a ``DataLoader``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..extras import optional


class TensorData(Dataset):
    """``(x[i], y[i])`` pairs over shared tensors; ``index`` selects a view without copying."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None):
        if len(x) != len(y):
            raise ValueError(f"inputs ({len(x)}) and labels ({len(y)}) differ in length")
        self.x, self.y = x, y
        self.index = index

    def __len__(self) -> int:
        return len(self.y) if self.index is None else len(self.index)

    def _rows(self, positions: torch.Tensor) -> torch.Tensor:
        return positions if self.index is None else self.index[positions]

    def gather(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._rows(positions)
        return self.x[rows], self.y[rows]

    def __getitem__(self, i: int):
        x, y = self.gather(torch.as_tensor([i]))
        return x[0], y[0]

    def subset(self, positions: torch.Tensor) -> "TensorData":
        return TensorData(self.x, self.y, self._rows(torch.as_tensor(positions, dtype=torch.long)))

    @property
    def targets(self) -> torch.Tensor:
        return self.y if self.index is None else self.y[self.index]


def subset(dataset: Dataset, positions: Sequence[int] | torch.Tensor) -> Dataset:
    positions = torch.as_tensor(positions, dtype=torch.long)
    if isinstance(dataset, TensorData):
        return dataset.subset(positions)
    return Subset(dataset, positions.tolist())


def labels_of(dataset: Dataset) -> torch.Tensor:
    """All labels of a classification dataset, without loading inputs when the dataset exposes them."""
    if isinstance(dataset, TensorData):
        return dataset.targets
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets, dtype=torch.long)
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


def iterate_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``dataset`` in batches (the last may be smaller)."""
    n = len(dataset)
    if isinstance(dataset, TensorData):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield dataset.gather(order[start : start + batch_size])
        return
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    yield from loader


def cycle_batches(
    dataset: Dataset, batch_size: int, *, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless reshuffled passes: the secondary stream of a paired forget/retain loop."""
    while True:
        yield from iterate_batches(dataset, batch_size, shuffle=True, generator=generator)


def num_batches(dataset: Dataset, batch_size: int) -> int:
    return (len(dataset) + batch_size - 1) // batch_size


def concat(datasets: Sequence[Dataset]) -> Dataset:
    """One dataset of all examples; in-memory datasets stay in memory (gathered once)."""
    if all(isinstance(d, TensorData) for d in datasets):
        parts = [d.gather(torch.arange(len(d))) for d in datasets]
        return TensorData(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    return torch.utils.data.ConcatDataset(list(datasets))


def unreadable_arrow_file(folder: Path) -> Path | None:
    """The first ``.arrow`` file under ``folder`` that pyarrow cannot read to its end (a truncated or
    corrupt shard of a ``save_to_disk`` folder), or None."""
    pa = optional("pyarrow")  # comes with the [hf] extra (datasets); without it nothing can be named
    if pa is None:
        return None
    for arrow in sorted(Path(folder).rglob("*.arrow")):
        try:
            with pa.memory_map(str(arrow)) as source:
                pa.ipc.open_stream(source).read_all()
        except Exception:  # pyarrow raises several kinds for a bad file
            return arrow
    return None
