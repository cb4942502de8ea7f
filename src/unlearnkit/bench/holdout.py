"""Validation and final-test halves of a data source's held-out examples, for tuning.

Tuning chooses hyper-parameters on the validation half; the numbers it reports are measured on the
other half, which the search never saw. Images: the test set is split in two, stratified by class
(each class's examples shuffled with the seed, the first ⌈n/2⌉ to validation). Text: the test set
and every evaluation set (TOFU's forget / retain / real-authors / world-facts question sets, WMDP's
choice sets) are split row-wise the same way, without strata. The training set is untouched, so the
original model, the forget/retain split and the retrain reference are the same for both halves.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..data.dataset import labels_of, subset
from ..data.sources import DataSource
from ..data.text import ChoiceSet, EvalSet
from ..errors import ConfigError


def halve(n: int, seed: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions 0..n-1 split into two disjoint sorted halves, stratified by ``labels`` when given:
    each stratum's examples are shuffled (seeded) and its first ⌈n_c/2⌉ go to the first half."""
    generator = torch.Generator().manual_seed(seed)
    strata = [torch.arange(n)] if labels is None else [torch.nonzero(labels == c).flatten()
                                                       for c in torch.unique(labels)]
    first, second = [], []
    for members in strata:
        shuffled = members[torch.randperm(len(members), generator=generator)]
        cut = (len(members) + 1) // 2
        first.append(shuffled[:cut])
        second.append(shuffled[cut:])
    return torch.sort(torch.cat(first)).values, torch.sort(torch.cat(second)).values


def _rows(dataset, index: torch.Tensor):
    if isinstance(dataset, EvalSet):
        return EvalSet(dataset.name, [dataset.questions[i] for i in index], [dataset.answers[i] for i in index],
                       dataset.correct.subset(index),
                       None if dataset.paraphrased is None else dataset.paraphrased.subset(index),
                       [p.subset(index) for p in dataset.perturbed])
    if isinstance(dataset, ChoiceSet):
        return ChoiceSet(dataset.name, [dataset.questions[i] for i in index], [dataset.choices[i] for i in index],
                         dataset.answer[index], [o.subset(index) for o in dataset.options])
    return subset(dataset, index)


def _split(dataset, seed: int, name: str, labels: torch.Tensor | None = None) -> tuple:
    n = len(dataset)
    if n < 2:
        raise ConfigError(f"the {name} set has {n} example(s); tuning needs at least 2 to hold half out")
    first, second = halve(n, seed, labels)
    return _rows(dataset, first), _rows(dataset, second)


def holdout_halves(source: DataSource, seed: int = 0) -> tuple[DataSource, DataSource]:
    """(validation, final-test) copies of ``source``: same name and training set, held-out data halved."""
    labels = labels_of(source.test) if source.kind == "image" else None
    test_val, test_final = _split(source.test, seed, "test", labels)
    evals_val, evals_final = {}, {}
    for name, dataset in source.evals.items():
        evals_val[name], evals_final[name] = _split(dataset, seed, name)
    if source.fine_labels is not None:
        raise ConfigError(f"{source.name}: halve the source before relabelling it to groups")
    return (replace(source, test=test_val, evals=evals_val), replace(source, test=test_final, evals=evals_final))
