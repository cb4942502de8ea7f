"""FSDP worker of tests/test_distributed.py: ``ga`` (and ``npo``, whose frozen reference is sharded
like the model) on an FSDP2-sharded mlp (plain torch ``fully_shard`` on a CPU device mesh, gloo), or
the same runs in one process.

    python tests/fsdp_worker.py OUT [ga,npo]                                  # one process
    torchrun --standalone --nproc_per_node 2 tests/fsdp_worker.py OUT [ga,npo]  # ACCELERATE_USE_CPU=true

The original is trained data-parallel (as in dist_worker.py); the working copy is sharded with
``distributed.shard_model`` (FSDP2 refuses deep copies, so copy first, then shard, then
``run_method``). Asserts inside: world size 2, every parameter a DTensor holding part of the
tensor on this process (the frozen reference's too). Writes ``OUT/METHOD.pt`` (the gathered
parameters, main process) and ``OUT/METHOD.rankR.sha``. class:0's forget batches (64, 64, 14) divide evenly: FSDP's own reduction
is an unweighted mean.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from dist_worker import digest, original_model  # noqa: E402
from unlearnkit import ClassificationTask, distributed, load_data, make_split  # noqa: E402
from unlearnkit.methods import RunContext, build_config  # noqa: E402
from unlearnkit.methods.base import run_method  # noqa: E402
from unlearnkit.seeding import seed_everything  # noqa: E402


def run(out: Path, methods=("ga",)) -> None:
    out.mkdir(parents=True, exist_ok=True)
    source = load_data("digits")
    task = ClassificationTask(source.num_classes)
    split = make_split(source, "class:0")
    original = original_model(source, task)
    for method in methods:
        working = distributed.shard_model(copy.deepcopy(original), reference=True)
        if distributed.active():
            from torch.distributed.tensor import DTensor

            assert distributed.world_size() == 2 and distributed.backend() == "gloo"
            assert distributed.is_sharded(working), type(working)
            frozen = distributed.sharded_reference(working)
            for model in (working, frozen):
                for name, p in model.named_parameters():
                    assert isinstance(p, DTensor), name
                    assert p.to_local().numel() < p.numel(), f"{name} is not sharded"
        config = build_config(method, epochs=2, lr=0.01)
        ctx = RunContext(generator=seed_everything(config.seed))
        unlearned = run_method(method, working, task, split, config, ctx)
        state = distributed.full_state(unlearned)
        (out / f"{method}.rank{distributed.rank()}.sha").write_text(digest(state))
        if distributed.is_main():
            torch.save(state, out / f"{method}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else ("ga",))
