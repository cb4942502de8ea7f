"""Same numbers twice, nothing touched outside the run (issue 18 §4)."""
import random

import numpy as np
import torch

import unlearnkit as uk
from unlearnkit.checkpoints import sha256_state
from unlearnkit.methods import RunContext
from unlearnkit.seeding import deterministic_algorithms


def _global_state():
    return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone()


def test_unlearn_leaves_the_callers_random_state_and_generator_alone(trained_mlp, task, class_split):
    torch.manual_seed(123)
    before = _global_state()
    a = uk.unlearn(trained_mlp, task, class_split, method="random_label", epochs=1)
    after = _global_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    # the same run from another global state: the same model (the run draws from its own seed)
    torch.manual_seed(999)
    b = uk.unlearn(trained_mlp, task, class_split, method="random_label", epochs=1)
    assert sha256_state(a) == sha256_state(b)
    # a caller's own generator is used as given (not reseeded): another order, another model
    mine = torch.Generator().manual_seed(7)
    c = uk.unlearn(trained_mlp, task, class_split, method="random_label", epochs=1, ctx=RunContext(generator=mine))
    assert sha256_state(c) != sha256_state(a)


def test_the_same_bench_cell_twice_is_bit_identical(tmp_path):
    from unlearnkit.bench import BenchPlan, run_bench

    runs = []
    for name in ("one", "two"):
        plan = BenchPlan(model="mlp", scenarios=["class:2"], methods=["ga", "random_label"], seeds=1,
                         audits=["accuracy", "mia"], out=tmp_path / name,
                         overrides={"train": {"epochs": 3}, "retrain": {"epochs": 2}})
        runs.append(run_bench(plan))
    for first, second in zip(*runs):
        assert first["cell"] == second["cell"]
        keep = {k: v for k, v in first["metrics"].items() if k not in ("seconds", "targets_per_s")
                and "rss" not in k and "gpu" not in k}
        assert keep == {k: second["metrics"][k] for k in keep}  # bit-identical numbers
        assert first["threads"] == second["threads"] == torch.get_num_threads()


def test_deterministic_switch_sets_and_restores_the_flags():
    was = torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled() == was


def test_the_same_cell_twice_gives_the_same_weights(tmp_path):
    from unlearnkit.bench import BenchPlan, run_bench

    hashes = []
    for name in ("one", "two"):
        plan = BenchPlan(model="mlp", scenarios=["class:2"], methods=["ga"], seeds=1, audits=["accuracy"],
                         out=tmp_path / name, overrides={"train": {"epochs": 2}, "retrain": {"epochs": 1}})
        hashes.append([r["weights_sha256"] for r in run_bench(plan)])
    assert hashes[0] == hashes[1] and len(set(hashes[0])) == 2  # retrain and ga: two models, each identical twice
