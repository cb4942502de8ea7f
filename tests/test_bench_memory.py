"""Per-cell peak memory: the sampler sees an allocation made and freed inside the block."""
import sys

import pytest
import torch

from unlearnkit.bench.memory import PeakMemory, current_rss_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS sampling reads /proc")


def test_peak_rss_sees_a_transient_allocation():
    with PeakMemory("cpu") as peak:
        block = torch.ones(64 * 2**20 // 4 * 4)  # 256 MiB of float32, touched
        block.add_(1)
        del block
    m = peak.metrics()
    assert m["rss_increase_mib"] > 200, m
    assert m["peak_rss_mib"] >= m["rss_increase_mib"]
    assert "peak_gpu_mib" not in m


def test_no_allocation_no_increase():
    with PeakMemory("cpu") as peak:
        current_rss_bytes()
    assert peak.metrics()["rss_increase_mib"] < 50
