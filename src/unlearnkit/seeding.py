"""Seeds: one place that turns an integer into reproducible random state, without touching the caller's.

- :func:`generator_for` — a fresh CPU ``torch.Generator`` for a run's own draws (data order, random
  labels, noise): every method takes its draws from ``RunContext.generator``.
- :func:`seeded` — around a run: the *global* random state that libraries draw from behind our back
  (dropout inside a Hugging Face model, ``torch.nn.init``) is forked, seeded from the run's seed, and
  restored afterwards, so a run is reproducible and the caller's global state is left as it was
  (Python's ``random``, NumPy's legacy state, torch's CPU and current-CUDA-device generators).
- :func:`deterministic_algorithms` — ``--deterministic``: ``torch.use_deterministic_algorithms``, the
  cuDNN flags and the cuBLAS workspace variable, restored afterwards.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def generator_for(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (the run's data order and draws); global state untouched."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def seed_everything(seed: int) -> torch.Generator:
    """Kept for callers of earlier versions: the run's generator (:func:`generator_for`). It no longer
    reseeds the global state; runs do that inside :func:`seeded` and restore it afterwards."""
    return generator_for(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside: Python, NumPy and torch's global generators seeded from ``seed``; afterwards: the
    caller's states back exactly as they were."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(int(seed) % (2**32))
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


CUBLAS_WORKSPACE = ":4096:8"  # what torch's reproducibility notes ask for deterministic cuBLAS (CUDA ≥ 10.2)


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Inside (when ``enabled``): deterministic kernels only (an op without one raises), cuDNN
    deterministic and not benchmarking, ``CUBLAS_WORKSPACE_CONFIG`` set; the previous settings after."""
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[1], previous[2]
        if previous[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = previous[3]
