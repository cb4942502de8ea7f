"""The verdict rule of the claim scripts (benchmarks/claims_common.py) on hand-made numbers."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("claims_common", ROOT / "benchmarks" / "claims_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clear_effect_reproduces(common):
    # differences 4, 5, 6, 5, 5: mean 5, std 0.71 -> 5 > 2 x 0.71
    r = common.compare([84, 85, 86, 85, 85], [80, 80, 80, 80, 80], "higher")
    assert r["verdict"] == common.REPRODUCES
    assert r["n"] == 5 and r["mean_diff"] == pytest.approx(5.0) and r["std_diff"] == pytest.approx(math.sqrt(0.5))
    assert r["effect"] == pytest.approx(5.0) and r["mean_a"] == pytest.approx(85.0) and r["mean_b"] == 80.0


def test_direction_lower(common):
    # A below B by 3 +- 0.5-ish: reproduces for "lower", not for "higher"
    a, b = [1.0, 2.0, 1.5], [4.0, 5.0, 4.8]
    assert common.compare(a, b, "lower")["verdict"] == common.REPRODUCES
    assert common.compare(a, b, "higher")["verdict"] == common.NOT_REPRODUCED
    assert common.compare(a, b, "lower")["effect"] == pytest.approx(-common.compare(a, b, "higher")["effect"])


def test_right_direction_within_noise_is_partly(common):
    # differences +3, -1, +2, +4, -2: mean 1.2 > 0, std 2.59 -> 1.2 < 5.2
    r = common.compare([13, 9, 12, 14, 8], [10, 10, 10, 10, 10], "higher")
    assert r["verdict"] == common.PARTLY
    assert r["mean_diff"] == pytest.approx(1.2)


def test_boundary_is_strict(common):
    # differences 1 and 3: mean 2, std sqrt(2); with k = mean/std exactly the effect is not "larger than"
    r = common.compare([1.0, 3.0], [0.0, 0.0], "higher", k=2 / math.sqrt(2))
    assert r["verdict"] == common.PARTLY
    assert common.compare([1.0, 3.0], [0.0, 0.0], "higher", k=1.0)["verdict"] == common.REPRODUCES


def test_no_effect_or_opposite_is_not_reproduced(common):
    assert common.compare([0, 0, 0], [0, 0, 0], "higher")["verdict"] == common.NOT_REPRODUCED  # e.g. RCD 0 vs 0
    assert common.compare([5, 6, 7], [5, 6, 7], "lower")["verdict"] == common.NOT_REPRODUCED
    assert common.compare([70, 71, 69], [80, 82, 79], "higher")["verdict"] == common.NOT_REPRODUCED


def test_constant_positive_difference_reproduces(common):
    # zero spread: any effect in the claimed direction clears 2 x 0
    assert common.compare([2, 3, 4], [1, 2, 3], "higher")["verdict"] == common.REPRODUCES


def test_threshold_arm(common):
    # a plain number for B (a threshold) is used for every seed; the spread is A's own
    r = common.compare([99.0, 98.0, 97.0], 95.0, "higher")
    assert r["verdict"] == common.REPRODUCES and r["mean_b"] == 95.0 and r["std_diff"] == pytest.approx(1.0)
    assert common.compare([99.0, 93.0, 96.0], 95.0, "higher")["verdict"] == common.PARTLY


def test_missing_pairs_are_dropped(common):
    # seed 2 of A never reached the matched level (None), seed 3 of B is NaN: both pairs left out
    r = common.compare([10, 11, None, 12], [5, 6, 7, float("nan")], "higher")
    assert r["n"] == 2 and r["mean_diff"] == pytest.approx(5.0) and r["verdict"] == common.REPRODUCES


def test_fewer_than_two_pairs_is_not_measured(common):
    assert common.compare([10], [5], "higher")["verdict"] == common.NOT_MEASURED
    assert common.compare([None, 3], [1, None], "higher")["verdict"] == common.NOT_MEASURED


def test_bad_inputs(common):
    with pytest.raises(ValueError, match="direction"):
        common.compare([1, 2], [0, 0], "bigger")
    with pytest.raises(ValueError, match="paired"):
        common.compare([1, 2, 3], [0, 0], "higher")


def test_combine(common):
    R, P, N, M = common.REPRODUCES, common.PARTLY, common.NOT_REPRODUCED, common.NOT_MEASURED
    assert common.combine([R, R, R]) == R
    assert common.combine([R, N]) == P  # only some sub-claims
    assert common.combine([P, P]) == P  # the right direction within the noise
    assert common.combine([N, N]) == N
    assert common.combine([R, M]) == R  # an unmeasured sub-claim is left out
    assert common.combine([M]) == M and common.combine([]) == M


def test_subclaim_and_claim_records(common):
    sub = common.subclaim("RA at UA 10", "rosu", [80.0, float("nan"), 82.0], "uam", [75.0, 76.0, 78.0], "higher")
    assert sub["a"] == [80.0, None, 82.0]  # NaN stored as null (JSON has no NaN)
    assert sub["result"]["n"] == 2 and sub["result"]["verdict"] == common.REPRODUCES
    threshold = common.subclaim("RA vs 95", "rl", [96.0, 97.0], "95", 95.0, "higher")
    assert threshold["b"] == [95.0, 95.0]
    row = common.claim("rosu", "a claim", "a scenario", [sub, threshold])
    assert row["verdict"] == common.REPRODUCES
