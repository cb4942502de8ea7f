"""What the speed scripts share: the expected pass counts per method and step timing.

Import from a script run as ``python benchmarks/<script>.py`` (``speed.py``, ``vision_speed.py``).

Timing: :class:`StepClock` is a ``RunContext.on_step`` callback. It starts the clock when the
``warmup``-th optimizer step has finished and stops it at the ``warmup + steps``-th, then raises
:class:`Enough` so a long run ends there (``steps=None``: time to the end of the run). On a GPU
the clock synchronises the device only at those two points and at the end of the first step (for
the set-up time), so inside the window the loop under test keeps whatever overlap of host and
device work it has; a bare loop is timed the same way
with :meth:`StepClock.tick` after each of its steps.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import torch

# Forward+backward passes per optimizer step, in units of one plain step (forward, backward and
# SGD step on one batch of the same size), by construction of each method at its defaults. A
# forward without backward counts 1/3 (a backward costs about two forwards). None: no single
# figure (the method's phases differ, or it takes no optimizer steps).
PASSES: dict[str, float | None] = {
    "ga": 1,             # forget fwd+bwd
    "finetune": 1,       # retain fwd+bwd
    "retrain": 1,        # retain fwd+bwd (training from scratch)
    "l1_sparse": 1,      # retain fwd+bwd; the L1 term is a parameter-wise op, no pass
    "neggrad_plus": 2,   # forget + retain fwd+bwd
    "random_label": 1,   # one fwd+bwd of a batch from relabelled forget ∪ retain (feed="union", the official code)
    "idk": 2,            # relabelled forget + retain fwd+bwd (random_label with retain weight α)
    "graddiff": 2,       # forget + retain fwd+bwd (retain_loss="nll")
    "simnpo": 2,         # forget + retain fwd+bwd, no reference model
    "salun": 1,          # as random_label (feed="union"); the saliency mask is built once
    "idk_dpo": 3.67,     # refusal + forget answer fwd+bwd, their two reference fwds, retain fwd+bwd
    "ieu": 2,            # forget + retain fwd+bwd; decay and noise are parameter-wise ops
    "npo": 2 + 1 / 3,    # forget + retain fwd+bwd, frozen-reference forward on forget
    "mox": 2 + 1 / 3,    # memorisation: forget + retain fwd+bwd, frozen-reference forward on retain (KL)
    "rmu": 2 + 1 / 3,    # forget + retain forward (captured at layer ℓ) and backward, frozen forward on retain
    "scrub": 1 + 1 / 3,  # student fwd+bwd + teacher forward, on a forget (max) or retain (min) batch
    "bad_teacher": 1 + 1 / 3,  # student fwd+bwd + the teachers' forwards, which cover the batch once
                               # between them (incompetent on its forget rows, competent on its retain rows)
    "uam": 3,            # fwd+bwd on [forget; retain] (2 batches) + retain fwd+bwd at θ+ε
    "rosu": 4,           # UAM + retain fwd+bwd at θ (fresh g_r)
    "lur": 4,            # retain fwd+bwd with create_graph, forget fwd+bwd at θ', double backward (the
                         # HVP: a backward through the backward graph, ≈ 2 passes; an independent
                         # second-order step measured 4.7 plain steps on CPU ResNet-18; 2 if first_order)
    "entangle": None,    # phase 1 (ALM) 2 passes, phase 2 (W-PGD) 1 + 2K: no single figure
    "ssd": None,         # no optimizer steps: Fisher importances once, then dampening
}


class Enough(Exception):
    """Raised by :class:`StepClock` once it has timed its steps: ends the run being timed."""


def device_sync(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


class StepClock:
    """Seconds per optimizer step after ``warmup`` steps, over ``steps`` steps.

    Use as ``RunContext(on_step=clock)`` (or call :meth:`tick` after each step of a hand-written
    loop) and run the timed code inside ``with clock.running():``, which swallows :class:`Enough`.
    Then read :attr:`seconds_per_step`, :attr:`timed` (steps in the window) and :attr:`first` (from
    entering :meth:`running` to the end of the first step: set-up plus one step).
    ``steps=None`` times to the last step of the run; it then synchronises after every step (the
    end is not known in advance), which costs a GPU loop its host/device overlap: use it on CPU.
    ``clock``: the time source; ``time.process_time`` (CPU seconds of this process) makes CPU
    timings robust to other processes sharing the cores (wall time is then irrelevant)."""

    def __init__(self, warmup: int, steps: int | None = None, sync: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.perf_counter):
        if warmup < 0 or (steps is not None and steps < 1):
            raise ValueError(f"StepClock needs warmup >= 0 and steps >= 1, got {warmup}, {steps}")
        self.warmup, self.steps, self.sync, self.clock = warmup, steps, sync, clock
        self.index = 0
        self.start = self.t0 = self.t1 = self.first = None
        self.t1_index = 0

    def __call__(self, _model=None, index: int | None = None) -> None:
        self.tick(index)

    def tick(self, index: int | None = None) -> None:
        """One optimizer step has finished (``index``: steps done so far, 1-based; default: counted here)."""
        self.index = self.index + 1 if index is None else index
        boundary = (self.index == 1 or self.index == self.warmup or self.steps is None
                    or self.index == self.warmup + self.steps)
        if not boundary:
            return
        self.sync()
        now = self.clock()
        if self.index == 1:
            self.first = now - self.start
        if self.index == self.warmup:
            self.t0 = now
        elif self.index > self.warmup:
            self.t1, self.t1_index = now, self.index
            if self.steps is not None:
                raise Enough

    @contextmanager
    def running(self):
        self.sync()
        self.start = self.clock()
        if self.warmup == 0:
            self.t0 = self.start
        try:
            yield self
        except Enough:
            pass

    @property
    def timed(self) -> int:
        """Steps inside the timed window (0 when the run was not longer than the warm-up)."""
        return self.t1_index - self.warmup if self.t1 is not None else 0

    @property
    def seconds_per_step(self) -> float:
        return (self.t1 - self.t0) / self.timed if self.timed else float("nan")
