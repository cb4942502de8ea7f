"""Peak memory of a block of work: the CUDA allocator's peak on a GPU, and the process's peak
resident set (RSS) sampled by a background thread on any device.

``ru_maxrss`` cannot be reset between cells, so the CPU figure comes from sampling
``/proc/self/statm`` every ``interval`` seconds (Linux; elsewhere the figure is absent). Torch
releases the GIL inside its kernels, so the sampler keeps running during long operations; a
peak shorter than the interval can be missed, which makes the figure a lower bound.
"""
from __future__ import annotations

import os
import threading

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """``with PeakMemory(device) as peak: …`` then ``peak.metrics()``: ``peak_rss_mib`` (process
    peak RSS during the block), ``rss_increase_mib`` (that peak minus the RSS at entry) and, on
    CUDA, ``peak_gpu_mib`` (allocator peak)."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.005):
        self.device = torch.device(device)
        self.interval = interval
        self._stop = threading.Event()
        self.start_rss = self.peak_rss = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = current_rss_bytes()
            if rss is not None and rss > self.peak_rss:
                self.peak_rss = rss

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start_rss = self.peak_rss = current_rss_bytes()
        self._thread = None
        if self.start_rss is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-rss")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            rss = current_rss_bytes()
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.start_rss is not None:
            out["peak_rss_mib"] = self.peak_rss / 2**20
            out["rss_increase_mib"] = (self.peak_rss - self.start_rss) / 2**20
        if self.device.type == "cuda":
            out["peak_gpu_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out
