"""Scale-out: a thin layer over ``torch.distributed`` so that every method runs unchanged on one
process or on several (``accelerate launch`` / ``torchrun``), with the result of one process over
the same global batches.

Set-up. The process group is created through Accelerate's ``PartialState`` (gloo on CPU, NCCL on
GPUs), lazily, the first time any function here is asked, when the launcher set ``WORLD_SIZE > 1``;
or explicitly with :func:`init`. Without Accelerate installed, ``torch.distributed`` is initialised
directly from the same environment variables. In one process (no ``WORLD_SIZE``, or 1) every
function here is a no-op that returns its input: today's behaviour and speed, bit for bit.

How a run is distributed (data parallel):

- Data. Every process draws the *global* batch from the same seeded generator (so the data order is
  the single-process one), moves it to its device (augmentation included, drawn for the global
  batch, so every example gets the draw it gets in one process) and keeps its rows with
  :func:`shard`: **contiguous slices**, as even as possible (the first ``B mod W`` processes hold one
  row more). A process that would hold no row (a last batch smaller than the world) holds a copy of
  the batch's last row as a *placeholder* with share 0: it runs the same code (so collectives stay
  matched) and contributes nothing.
- Shares. Process r's share of a batch of B rows of which it holds b_r is ``W·b_r/B`` (1 when the
  batch divides evenly). A gradient of a batch mean is combined as Σ_r share_r·g_r / W, which is the
  gradient of the global batch mean even when B is not divisible by W. :func:`shard` makes its batch's
  share the *current* one, which the reductions use unless told otherwise; :func:`weighted` scopes
  another batch's share (a method that takes a separate gradient of each stream), and
  :func:`weigh` multiplies one term of a multi-stream objective by its batch's share, to be reduced
  with ``share=1`` (exact for any mix of streams).
- Gradients. ``methods.gradients.grads_of`` (every extra gradient of a method: projections,
  look-aheads, surrogate points, importances) returns the all-reduced (share-weighted mean)
  gradient, so methods combine global quantities; the shared loop all-reduces ``.grad`` after each
  ``gradient_step`` (idempotent for gradients that are already global), before clipping and the
  optimizer step. Scalars that a method's math combines non-linearly go through
  :func:`global_mean` (value of the global batch, gradient of this shard's).
- Control flow must depend only on global values (every collective is matched on every process);
  ``check_finite`` decides on all processes' losses together.
- Norm-layer statistics: batch statistics are per shard (as DDP without SyncBatchNorm), so a model
  with BatchNorm in train mode does not reproduce the single-process run; the shared loop averages
  the running statistics after each step so that every process holds the same model.
- Audits, results and checkpoints: on the main process only, inside :func:`local` (collectives off,
  so an audit that trains shadow models does not wait for the other processes): :func:`on_main`
  runs a function there and hands its result (or its exception) to every process; :func:`main_first`
  lets the main process fill a cache before the others read it.

FSDP. :func:`shard_model` applies plain torch FSDP2 (``fully_shard`` on a 1-D device mesh: every
element of every ``nn.ModuleList``, i.e. transformer blocks, then the root). FSDP then reduces the
gradients itself during backward (an unweighted mean: exact when every batch divides by the world
size), and the loop leaves those (DTensor) gradients alone. Accelerate's own FSDP plugin is silently
replaced by DDP on CPU (Accelerate 1.15), hence plain torch here. Supported under FSDP: methods whose
step is one backward pass of their objective (the loop's default ``gradient_step``: ga, finetune,
graddiff, npo…); ``grads_of`` refuses sharded parameters (``torch.autograd.grad`` returns unsharded
local gradients there), so projection/look-ahead methods run with data parallelism only.
A shard_model'ed module cannot be deep-copied (FSDP2 refuses), so shard the *working copy*: copy
first, then :func:`shard_model`, then ``run_method`` (``unlearn`` deep-copies its input).

Frozen reference models (npo, graddiff-KL, rmu, scrub keep one) under FSDP: ``frozen_copy`` cannot
deep-copy an FSDP2 module, so :func:`shard_model` with ``reference=True`` builds the reference from
the unsharded model before sharding, freezes it and shards it the same way (each process holds 1/W
of it; its forward all-gathers one block at a time), and ``frozen_copy`` returns it
(tests/fsdp_worker.py: npo on 2 processes matches one). Not supported there: bad_teacher (its
random teacher is a re-initialised copy), mox (arithmetic between θ and θ_ref parameters).
Alternatives not implemented: offloading the reference (``CPUOffloadPolicy``), or precomputing its
outputs once (NPO/SimNPO need one float per forget example).

Launching (traps measured with Accelerate 1.15 on CPU): ``accelerate launch --cpu --num_processes 2``
silently runs ONE process, and ``--multi_gpu`` on a machine without GPUs and without
``ACCELERATE_USE_CPU=true`` starts two processes that each train alone. :func:`init` passes
``cpu=True`` when no GPU is visible, which removes the second trap, and refuses to go on when the
launcher asked for more processes than the process group holds; the first trap leaves no trace
in the process (no ``WORLD_SIZE``) and cannot be detected. Working commands::

    torchrun --standalone --nproc_per_node 2 script.py
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no --main_process_port 0 script.py        # ACCELERATE_USE_CPU=true on CPU

Known limits. ``lur`` matches one process only when its retain batch splits evenly over the
processes: its look-ahead takes g_in and g_out under the epoch stream's shares. The fix, not applied
yet: in ``lookahead_gradient`` take g_in under ``weighted(<inner stream's batch>)`` and g_out under
``weighted(<outer stream's batch>)``, then reduce the Hessian-vector product with
``all_reduce_mean(h, share=share(<inner stream's batch>))``. ``random_label``/``salun`` match
because ``ClassificationTask.relabel`` draws through :func:`draw_for`; ``l1_sparse`` is sensitive
to 1e-8 perturbations even in one process (the ℓ1 sign flips near zero).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from .extras import optional

@dataclass
class DistributedState:
    """The per-run state of the multi-process layer, held by the run's context
    (``RunContext.distributed``) and made current for the run by :func:`using`; outside a run a
    process-wide default serves (set-up, audits, the benchmark's own collectives)."""

    local_depth: int = 0  # > 0 inside local(): collectives off, one process's view
    share: float = 1.0  # the current share: of the batch last sharded, or scoped by weighted()
    last_sizes: list[int] = field(default_factory=list)  # rows each process holds of the batch last sharded
    last_start: int = 0  # where this process's rows of it start


_DEFAULT = DistributedState()
_CURRENT: ContextVar[DistributedState] = ContextVar("unlearnkit_distributed", default=_DEFAULT)
# whether the lazy set-up from the launcher's environment ran: a fact about the process, not a run
_ENV = {"checked": False}


def current() -> DistributedState:
    """The state of the run in progress (the process-wide default outside a run)."""
    return _CURRENT.get()


@contextmanager
def using(state: DistributedState) -> Iterator[DistributedState]:
    """Make ``state`` the current one inside (``methods.base.run_method`` does, with the run context's)."""
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------- set-up and identity

def init(cpu: bool | None = None) -> bool:
    """Join the process group the launcher describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``…);
    returns whether more than one process runs. ``cpu``: gloo on CPU (default: when no GPU is
    visible, or ``ACCELERATE_USE_CPU`` says so). Idempotent; a no-op without ``WORLD_SIZE > 1``."""
    _ENV["checked"] = True
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_available():
        if expected > 1:
            raise RuntimeError(f"the launcher started {expected} processes but this torch has no torch.distributed")
        return False
    if dist.is_initialized():  # set up already (by Accelerate, the user, or an earlier call): use it
        return dist.get_world_size() > 1
    if expected <= 1:
        return False
    flag = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    use_cpu = (flag or not torch.cuda.is_available()) if cpu is None else cpu
    accelerate = optional("accelerate")  # the [dist] extra; torch reads the same environment without it
    if accelerate is None:
        if not use_cpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("gloo" if use_cpu else "nccl")
    else:
        accelerate.PartialState(cpu=use_cpu)
    got = dist.get_world_size() if dist.is_initialized() else 1
    if got != expected:
        raise RuntimeError(
            f"the launcher started {expected} processes but the process group holds {got}: each process "
            "would train alone on all the data. On a machine without GPUs set ACCELERATE_USE_CPU=true "
            "(or call unlearnkit.distributed.init(cpu=True) before creating an Accelerator).")
    return True


def active() -> bool:
    """Whether several processes cooperate here (initialised, world > 1, not inside :func:`local`)."""
    if current().local_depth:
        return False
    if not _ENV["checked"]:
        init()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    if not active():
        return 1
    return dist.get_world_size()


def rank() -> int:
    if not active():
        return 0
    return dist.get_rank()


def is_main() -> bool:
    return rank() == 0


def backend() -> str | None:
    """The process group's backend (``gloo``, ``nccl``), or None in one process."""
    if not active():
        return None
    return str(dist.get_backend())


def device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` when GPUs are used, else the CPU."""
    if active() and backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cuda") if torch.cuda.is_available() and not active() else torch.device("cpu")


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    """Wait for every process, then leave the process group (end of a launched script: a process
    that exits while its peer still talks to it can abort in gloo's teardown)."""
    if active():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of process ``src`` on every process (pickled); ``obj`` itself in one process."""
    if not active():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


# --------------------------------------------------------------------------- main process only

@contextmanager
def local() -> Iterator[None]:
    """One process's view inside: no sharding, no collectives (audits and writes on the main process)."""
    state = current()
    state.local_depth += 1
    try:
        yield
    finally:
        state.local_depth -= 1


def on_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on the main process only (inside :func:`local`), its result broadcast to
    every process; an exception it raises is raised on every process. Use for audits and writes."""
    if not active():
        return fn(*args, **kwargs)
    outcome = None
    if is_main():
        try:
            with local():
                outcome = (True, fn(*args, **kwargs))
        except Exception as exc:  # handed to every process, so none waits forever
            outcome = (False, exc)
    ok, value = broadcast_object(outcome)
    if not ok:
        raise value
    return value


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (e.g. trains and caches a model), then the others
    (e.g. read that cache); each inside :func:`local`."""
    if not active():
        yield
        return
    if not is_main():
        barrier()
    try:
        with local():
            yield
    finally:
        if is_main():
            barrier()


# --------------------------------------------------------------------------- data sharding

def _rows(batch: Any) -> int:
    if type(batch) in (tuple, list, dict, _Tuple, _List, _Dict):
        for value in (batch.values() if isinstance(batch, dict) else batch):
            if isinstance(value, torch.Tensor):
                return len(value)
    raise TypeError(f"shard: a batch must be a tuple, list or dict holding tensors (rows on dim 0), "
                    f"got {type(batch).__name__}")


class _Tuple(tuple):  # a shard: ``share``, its ``rows`` (a slice) of a global batch of ``total`` rows
    share: float
    rows: slice
    total: int


class _List(list):
    share: float
    rows: slice
    total: int


class _Dict(dict):
    share: float
    rows: slice
    total: int


def _take(batch: Any, rows: slice, n: int) -> Any:
    def cut(value):
        return value[rows] if isinstance(value, torch.Tensor) and len(value) == n else value

    if isinstance(batch, dict):
        return _Dict({k: cut(v) for k, v in batch.items()})
    return (_Tuple if isinstance(batch, tuple) else _List)(cut(v) for v in batch)


def shard(batch: Any) -> Any:
    """This process's rows of a global batch (a tuple/list/dict of tensors with rows on dim 0; other
    values are kept whole): a contiguous slice, sizes as even as possible; a placeholder row with
    share 0 where a process would hold none. The result carries its ``share`` and makes it the
    current one (see the module docstring). In one process: ``batch`` itself."""
    if not active():
        return batch
    state = current()
    n, world, me = _rows(batch), world_size(), rank()
    base, extra = divmod(n, world)
    state.last_sizes = [base + (r < extra) for r in range(world)]
    size, start = state.last_sizes[me], me * base + min(me, extra)
    state.last_start = start
    part = _take(batch, slice(start, start + size) if size else slice(n - 1, n), n)
    state.share = part.share = world * size / n
    part.rows, part.total = slice(start, start + size) if size else slice(n - 1, n), n
    return part


def share(batch: Any = None) -> float:
    """``batch``'s share ``W·b_r/B`` (a batch :func:`shard` did not return: 1, it is the same on every
    process), or the current share; 1 in one process."""
    if not active():
        return 1.0
    if batch is None:
        return current().share
    return getattr(batch, "share", 1.0)


def draw_for(batch: Any, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """Per-example random draws for ``batch`` that equal one process's: ``draw(n)`` for the whole
    global batch (every process advances its generator alike), then this process's rows.
    E.g. random relabelling: ``draw_for(batch, lambda n: torch.randint(1, C, (n,), generator=g))``."""
    rows = getattr(batch, "rows", None)
    if not active() or rows is None:
        return draw(_rows(batch) if not isinstance(batch, torch.Tensor) else len(batch))
    return draw(batch.total)[rows]


def holds_rows(batch: Any = None) -> bool:
    """False for a placeholder (this process holds no row of that batch)."""
    return share(batch) > 0


@contextmanager
def weighted(batch: Any) -> Iterator[None]:
    """Reductions inside weigh by ``batch``'s share (a gradient taken on another stream's batch)."""
    state = current()
    previous, state.share = state.share, share(batch)
    try:
        yield
    finally:
        state.share = previous


def weigh(term: torch.Tensor, batch: Any) -> torch.Tensor:
    """``term`` (a batch mean on ``batch``) times its share: terms of several streams in one
    objective, reduced with ``share=1``, give the global objective's gradient. Identity in one process."""
    if not active():
        return term
    return term * share(batch)


# --------------------------------------------------------------------------- collectives

def _comm_dtype(dtype: torch.dtype) -> torch.dtype:
    # gloo has no bfloat16/float16 sum: reduce those in float32 (also more accurate)
    if dtype in (torch.bfloat16, torch.float16) and backend() == "gloo":
        return torch.float32
    return dtype


def _all_reduce(tensors: Sequence[torch.Tensor], scales: Sequence[float], divide: bool) -> list[torch.Tensor]:
    """Σ over processes of ``scale·t`` for each tensor (÷ W with ``divide``), one collective per
    (dtype, device) group; returns new tensors (views of one flat buffer per group)."""
    world = world_size()
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((_comm_dtype(t.dtype), t.device), []).append(i)
    out: list[torch.Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    for (dtype, _), index in groups.items():
        pieces = []
        for i in index:
            flat = tensors[i].detach().reshape(-1).to(dtype)
            pieces.append(flat * scales[i] if scales[i] != 1.0 else flat)
        buffer = torch.cat(pieces)
        dist.all_reduce(buffer)
        if divide:
            if buffer.is_floating_point():
                buffer.div_(world)
            else:
                buffer.floor_divide_(world)
        for i, piece in zip(index, buffer.split([tensors[i].numel() for i in index])):
            out[i] = piece.view(tensors[i].shape).to(tensors[i].dtype)
    return out


def all_reduce_mean(tensors: Sequence[torch.Tensor], *, share: float | None = None) -> list[torch.Tensor]:
    """The share-weighted mean over processes, Σ_r share_r·t_r / W (``share``: this process's
    weight, default the current share; 1 for tensors that are already global or pre-weighted by
    :func:`weigh`). New tensors, autograd-free; ``tensors`` themselves in one process."""
    tensors = list(tensors)
    if not active() or not tensors:
        return tensors
    weight = current().share if share is None else share
    return _all_reduce(tensors, [weight] * len(tensors), divide=True)


def all_reduce_mean_(tensors: Sequence[torch.Tensor], *, share: float | None = None) -> None:
    """:func:`all_reduce_mean` written back into ``tensors``."""
    tensors = list(tensors)
    if active() and tensors:
        torch._foreach_copy_(tensors, all_reduce_mean(tensors, share=share))


def all_reduce_sum_(tensors: Sequence[torch.Tensor]) -> None:
    """Σ over processes, in place (per-example sums and counts)."""
    tensors = list(tensors)
    if active() and tensors:
        torch._foreach_copy_(tensors, _all_reduce(tensors, [1.0] * len(tensors), divide=False))


def global_mean(value: torch.Tensor, batch: Any = None) -> torch.Tensor:
    """A batch mean whose *value* is the global batch's (share-weighted over processes) and whose
    gradient is this shard's, for scalars a method combines non-linearly (an ALM residual c in
    c², a weight): after the gradient reduction the step is the global objective's. Identity in one process."""
    if not active():
        return value
    total = all_reduce_mean([value.detach()], share=share(batch))[0]
    return value + (total - value.detach())


def all_true(flag: bool | torch.Tensor) -> bool:
    """Whether ``flag`` holds on every process (one decision for all: a divergence stop on one
    process stops all of them, instead of leaving the others waiting in a collective)."""
    local_ok = bool(flag)
    if not active():
        return local_ok
    bad = torch.tensor([0.0 if local_ok else 1.0], device=device())
    dist.all_reduce(bad)
    return float(bad) == 0.0


def sum_int(value: int) -> int:
    """Σ over processes of an integer (e.g. the targets each process consumed)."""
    if not active():
        return value
    total = torch.tensor([float(value)], dtype=torch.float64, device=device())
    dist.all_reduce(total)
    return int(round(float(total)))


def same_parameters(model: nn.Module) -> bool:
    """Whether every process holds bit-identical parameters and buffers (compared with the main
    process's; one broadcast of the whole model): a check for a model passed in, or after a step."""
    if not active():
        return True
    tensors = [t.detach() for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    mine = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    main = mine.clone()
    dist.broadcast(main, src=0)
    return all_true(torch.equal(mine, main))


def all_gather_rows(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The rows of the batch last sharded, gathered from every process in global order
    (placeholders left out), and where this process's own rows start in it: the global batch's
    values of a per-example quantity, for a batch-level statistic (a sort, a quantile). Not
    differentiable. In one process: ``(rows, 0)``."""
    if not active():
        return rows, 0
    sizes, start = current().last_sizes, current().last_start
    held = sizes[rank()]
    if held and len(rows) != held:
        raise ValueError(f"all_gather_rows: {len(rows)} rows, but this process holds {held} of the batch last sharded")
    padded = rows.detach().new_zeros((max(sizes), *rows.shape[1:]))
    padded[:held] = rows.detach()[:held]
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:c] for g, c in zip(gathered, sizes)]), start


def is_sharded_tensor(t: torch.Tensor | None) -> bool:
    """Whether ``t`` is an FSDP-sharded parameter or gradient (a DTensor)."""
    if t is None:
        return False
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:
        return False
    return isinstance(t, DTensor)


def reduce_grads_(params: Sequence[torch.Tensor], *, share: float | None = None) -> None:
    """All-reduce (share-weighted mean) the ``.grad`` of ``params`` in one collective per dtype.
    A parameter without a gradient on every process keeps ``None``; one with a gradient on some
    process gets the mean (zeros elsewhere). FSDP's gradients (DTensors, reduced in backward) are
    left alone."""
    if not active():
        return
    params = [p for p in params if not is_sharded_tensor(p) and not is_sharded_tensor(p.grad)]
    if not params:
        return
    weight = current().share if share is None else share
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([float(p.grad is not None) for p in params], device=grads[0].device)
    reduced = _all_reduce(grads + [present], [weight] * len(grads) + [1.0], divide=True)
    anyone = reduced[-1] > 0
    for i, (p, g) in enumerate(zip(params, reduced[:-1])):
        if p.grad is not None:
            p.grad.copy_(g)
        elif anyone[i]:
            p.grad = g


# --------------------------------------------------------------------------- FSDP

_FROZEN = "_unlearnkit_frozen_reference"  # model attribute: its sharded frozen reference (not a submodule)


def shard_model(model: nn.Module, blocks: Sequence[nn.Module] | None = None, *, reference: bool = False) -> nn.Module:
    """Plain torch FSDP2 over all processes: ``fully_shard`` each of ``blocks`` (default: every
    element of every ``nn.ModuleList``, i.e. transformer blocks), then the root; parameters become
    DTensors sharded on dim 0. The model must already be on this process's device. Returns ``model``
    (unchanged in one process).

    ``reference``: also keep a frozen copy of the model as it is now, sharded the same way, for the
    methods that compare with a frozen reference (NPO, GradDiff-KL, RMU, SCRUB…): FSDP2 modules
    cannot be deep-copied later, so ``methods.reference_model.frozen_copy`` returns this one. (The
    copy is made before sharding: the full model is held twice for a moment on each process.)"""
    if not active():
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cuda" if backend() == "nccl" else "cpu", (world_size(),))
    frozen = None
    if reference:
        import copy

        frozen = copy.deepcopy(model).eval()
        frozen.requires_grad_(False)
    for target in [m for m in (model, frozen) if m is not None]:
        chosen = blocks if target is model and blocks is not None else [
            block for module in target.modules() if isinstance(module, nn.ModuleList) for block in module]
        for block in chosen:
            fully_shard(block, mesh=mesh)
        fully_shard(target, mesh=mesh)
    if frozen is not None:
        object.__setattr__(model, _FROZEN, frozen)
    return model


def sharded_reference(model: nn.Module) -> nn.Module | None:
    """The frozen reference :func:`shard_model` kept for ``model`` (None if it kept none)."""
    return model.__dict__.get(_FROZEN)


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` is an FSDP2 module (its parameters DTensors)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule)


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict on every process (FSDP's DTensors gathered), on the CPU."""
    return {k: (v.full_tensor() if is_sharded_tensor(v) else v).detach().cpu() for k, v in model.state_dict().items()}
