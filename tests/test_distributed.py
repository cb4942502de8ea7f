"""Several processes give the one-process result (unlearnkit.distributed).

Two CPU processes on gloo, launched like a user would (``torchrun`` through ``torch.distributed.run``,
and ``accelerate launch``), run tests/dist_worker.py; the same worker runs here in this process.
Checked: the world size really is 2 with the gloo backend (inside the workers: both launch traps are
silent), every process holds bit-identical parameters after every step (inside the workers), the
processes' final hashes agree, and the unlearned parameters match one process over the same global
batches within atol 1e-5 / rtol 1e-4 (measured: max |diff| ≤ 1e-7), the accuracy audit (main process
only) within 1e-6. The mlp has no BatchNorm: batch statistics would legitimately differ per shard.
FSDP: plain torch FSDP2 on a CPU mesh (tests/fsdp_worker.py). A 2-process launch costs ~4 s of start-up.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearnkit import distributed

HERE = Path(__file__).parent
METHODS = ["ga", "ga_placeholder", "finetune", "rosu", "entangle", "ssd", "lur"]  # labels of dist_worker.SETTINGS
ATOL, RTOL = 1e-5, 1e-4

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is needed")


def _env(tmp_path: Path, cpu_flag: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU")}
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", HF_HOME=str(tmp_path / "hf"))  # no user accelerate config
    if cpu_flag:
        env["ACCELERATE_USE_CPU"] = "true"
    return env


def _launch(launcher: list[str], script: str, args: list[str], env: dict) -> None:
    done = subprocess.run([sys.executable, "-m", *launcher, str(HERE / script), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


TORCHRUN = ["torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ACCELERATE = ["accelerate.commands.launch", "--multi_gpu", "--num_processes=2", "--num_machines=1",
              "--mixed_precision=no", "--dynamo_backend=no", "--main_process_port=0"]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The worker in this process: the one-process reference."""
    import dist_worker

    out = tmp_path_factory.mktemp("single")
    dist_worker.run(out, METHODS)
    return out


def _assert_matches(single: Path, multi: Path, methods: list[str]) -> None:
    for rank in (0, 1):
        info = json.loads((multi / f"info.rank{rank}.json").read_text())
        assert info == {"world_size": 2, "rank": rank, "backend": "gloo", "launched": 2}
    for method in methods:
        hashes = {(multi / f"{method}.rank{r}.sha").read_text() for r in (0, 1)}
        assert len(hashes) == 1, f"{method}: the processes disagree"
        one, two = torch.load(single / f"{method}.pt"), torch.load(multi / f"{method}.pt")
        assert one.keys() == two.keys()
        for key in one:
            torch.testing.assert_close(two[key], one[key], atol=ATOL, rtol=RTOL, msg=f"{method} {key}")
        m1 = json.loads((single / f"{method}.metrics.json").read_text())
        m2 = json.loads((multi / f"{method}.metrics.json").read_text())
        assert m1.keys() == m2.keys()
        for key in m1:
            assert m2[key] == pytest.approx(m1[key], abs=1e-6), f"{method} {key}"


def test_one_process_is_untouched():
    """Without a launcher every helper hands its input back: today's behaviour, bit for bit."""
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    batch = (torch.arange(6.0), torch.arange(6))
    assert distributed.shard(batch) is batch
    tensors = [torch.randn(3), torch.randn(2, 2)]
    assert distributed.all_reduce_mean(tensors) == tensors
    value = torch.tensor(2.0, requires_grad=True)
    assert distributed.global_mean(value) is value and distributed.weigh(value, batch) is value
    assert distributed.on_main(lambda x: x + 1, 1) == 2 and distributed.broadcast_object("x") == "x"
    assert distributed.all_true(True) and not distributed.all_true(False)
    assert torch.equal(distributed.draw_for(batch, torch.arange), torch.arange(6))
    assert distributed.same_parameters(torch.nn.Linear(2, 2))


def test_torchrun_two_processes_match_one(single, tmp_path):
    multi = tmp_path / "torchrun"
    _launch(TORCHRUN, "dist_worker.py", [str(multi), ",".join(METHODS)], _env(tmp_path))
    _assert_matches(single, multi, METHODS)


def test_accelerate_launch_matches_one(single, tmp_path):
    """``accelerate launch --multi_gpu`` on a machine without GPUs and *without* ACCELERATE_USE_CPU:
    Accelerate alone would start two processes that each train alone (silently); ``distributed.init``
    asks for the CPU when no GPU is visible, so the two processes share the batch."""
    pytest.importorskip("accelerate")
    multi = tmp_path / "accelerate"
    _launch(ACCELERATE, "dist_worker.py", [str(multi), "ga"], _env(tmp_path, cpu_flag=False))
    _assert_matches(single, multi, ["ga"])


def test_fsdp_two_processes_match_one(tmp_path):
    """ga, and npo with its frozen reference sharded like the model (FSDP2 modules cannot be copied)."""
    import fsdp_worker

    methods = ("ga", "npo")
    fsdp_worker.run(tmp_path / "single", methods)
    _launch(TORCHRUN, "fsdp_worker.py", [str(tmp_path / "fsdp"), ",".join(methods)], _env(tmp_path))
    for method in methods:
        hashes = {(tmp_path / "fsdp" / f"{method}.rank{r}.sha").read_text() for r in (0, 1)}
        assert len(hashes) == 1
        one = torch.load(tmp_path / "single" / f"{method}.pt")
        two = torch.load(tmp_path / "fsdp" / f"{method}.pt")
        assert any(not torch.equal(a, b) for a, b in zip(one.values(), torch.load(tmp_path / "single" / "ga.pt")
                                                              .values())) or method == "ga"
        for key in one:
            torch.testing.assert_close(two[key], one[key], atol=ATOL, rtol=RTOL, msg=f"{method} {key}")


def test_forget_command_under_torchrun_writes_once_and_matches_one_process(tmp_path):
    """`unlearnkit forget` launched on 2 processes: one model and one record (main process only),
    the model equal to the one-process command's within tolerance."""
    from safetensors.torch import load_file

    from unlearnkit import build_model
    from unlearnkit.checkpoints import save_weights

    ckpt = save_weights(build_model("mlp", (1, 8, 8), 10, seed=1), tmp_path / "m.safetensors")
    env = {**_env(tmp_path), "UNLEARNKIT_CACHE": str(tmp_path / "cache")}
    args = ["forget", "--checkpoint", str(ckpt), "--model", "mlp", "--forget", "class:1", "--method", "rosu",
            "--set", "epochs=1", "--audits", "accuracy"]
    multi = subprocess.run([sys.executable, "-m", *TORCHRUN, "-m", "unlearnkit.cli", *args, "--out",
                            str(tmp_path / "multi")], env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stdout.count("forgot 146 examples") == 1  # printed by the main process only
    one = subprocess.run([sys.executable, "-m", "unlearnkit.cli", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = load_file(str(tmp_path / "multi" / "model.safetensors")), load_file(str(tmp_path / "one" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=ATOL, rtol=RTOL)
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == ["model.safetensors", "record.html", "record.json"]
