"""Worker of tests/test_distributed.py: the same unlearning runs in one process or in several.

    python tests/dist_worker.py OUT ga,rosu                         # one process (labels of SETTINGS)
    torchrun --standalone --nproc_per_node 2 tests/dist_worker.py OUT ga,rosu   # ACCELERATE_USE_CPU=true

Digits with the ``mlp`` (no BatchNorm: batch statistics would legitimately differ per shard), an
original trained 2 epochs (data-parallel too when launched so), then each method through
``unlearnkit.unlearn``. Checks inside the worker: the world size really is the launcher's and the
backend gloo; after every optimizer step every process holds bit-identical parameters. Writes
``OUT/LABEL.pt`` (the unlearned parameters) and ``OUT/LABEL.metrics.json`` (accuracy audit, run on
the main process only and handed to all, plus the targets the steps consumed) from the main
process, ``OUT/LABEL.rankR.sha`` (a hash of the parameters) and ``OUT/info.rankR.json`` from every
process.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from unlearnkit import ClassificationTask, audit, build_model, distributed, fit, load_data, make_split, unlearn  # noqa: E402
from unlearnkit.methods import RunContext, TrainConfig  # noqa: E402
from unlearnkit.seeding import seed_everything  # noqa: E402

# label: (method, forget spec, hyper-parameters); small budgets, since the comparison with one
# process is tested, not the forgetting. Batches whose last one is odd are split unevenly (weighted by
# shares): class:0 has forget 142 (64, 64, 14) and retain 1295 (.., 15); class:7 forget 143 (.., 15),
# retain 1294 (.., 14). Batches of 47 leave a last forget batch of 1 row: a placeholder on rank 1.
SETTINGS = {
    "ga": ("ga", "class:7", dict(epochs=2, lr=0.01)),           # one stream, ragged last batch
    "ga_placeholder": ("ga", "class:0", dict(epochs=1, lr=0.01, batch_size=47)),
    "finetune": ("finetune", "class:0", dict(epochs=1)),        # retain only, ragged last batch
    "rosu": ("rosu", "class:7", dict(epochs=1)),                # g_f on a ragged forget batch, retain even
    "entangle": ("entangle", "class:7", dict(phase1_epochs=1, phase2_epochs=1)),  # c global, W2 over the global batch
    "ssd": ("ssd", "class:0", dict(batch_size=47, importance="per_example", alpha=5.0)),             # per-example importances summed; a placeholder
    # second-order look-ahead (create_graph). class:0 keeps its batches even: LUR's Hessian term is of
    # the retain stream but reaches .grad, which the loop weighs by the forget stream's shares
    "lur": ("lur", "class:0", dict(epochs=1)),
}


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().numpy().tobytes())
    return h.hexdigest()


def same_on_every_process(model: torch.nn.Module, step: int) -> None:
    """Called after each optimizer step: the parameters are bit-identical to the main process's."""
    assert distributed.same_parameters(model), f"rank {distributed.rank()}: parameters differ after step {step}"


def original_model(source, task) -> torch.nn.Module:
    model = build_model("mlp", source.input_shape, source.num_classes, seed=0)
    ctx = RunContext(generator=seed_everything(0), on_step=same_on_every_process)
    return fit(model, task, source.train, TrainConfig(epochs=2), ctx).eval()


def run(out: Path, labels: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    info = {"world_size": distributed.world_size(), "rank": distributed.rank(), "backend": distributed.backend(),
            "launched": launched}
    if launched > 1:  # both silent launch traps end here
        assert distributed.world_size() == launched == 2, info
        assert distributed.backend() == "gloo", info
    (out / f"info.rank{distributed.rank()}.json").write_text(json.dumps(info))
    source = load_data("digits")
    task = ClassificationTask(source.num_classes)
    model = original_model(source, task)
    for label in labels:
        method, spec, hparams = SETTINGS[label]
        split = make_split(source, spec)
        ctx = RunContext(on_step=same_on_every_process)
        unlearned = unlearn(model, task, split, method, ctx=ctx, **hparams)
        state = parameters(unlearned)
        (out / f"{label}.rank{distributed.rank()}.sha").write_text(digest(state))
        metrics = distributed.on_main(audit, unlearned, task, split, ["accuracy"])  # main only, handed to all
        metrics["targets_seen"] = ctx.targets_seen
        if distributed.is_main():
            torch.save(state, out / f"{label}.pt")
            (out / f"{label}.metrics.json").write_text(json.dumps(metrics, sort_keys=True))
    distributed.shutdown()


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2].split(","))
