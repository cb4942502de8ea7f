"""The practitioner's workflow: honour one deletion request and keep the evidence.

``unlearnkit forget`` takes a trained model (a safetensors checkpoint + a registered architecture,
a local Hugging Face folder, or — with neither — the embedded default's cached original), the data
it was trained on and a forget spec, runs one unlearning method on a copy, and writes into a new
output folder:

- ``model.safetensors`` (classifiers) or ``model/`` (a ``save_pretrained`` folder, language models);
- ``record.json`` — what was asked (data, forget spec, how many examples, SHA-256 of their sorted
  training-set row ids), the method and its full config, the seeds, library versions, SHA-256 of
  the input and output weights, wall time and peak memory, the audits of the result (accuracy or
  TOFU measures, membership inference, relearning delay; gaps to a retrained reference when one is
  given or requested), and the command that reproduces it;
- ``record.html`` — the same, laid out for a reviewer (self-contained, no scripts).

The input checkpoint is only read; nothing in the output folder is ever replaced (a second run
into the same folder is refused), and every file is written atomically.
"""
from __future__ import annotations

import copy
import dataclasses
import html
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .atomic import write_text_atomic
from .audits.api import audit
from .audits.base import AuditContext
from .audits.gap import gaps_to_retrain
from .audits.metrics import METRICS
from .bench.memory import PeakMemory
from .bench.originals import original_model, original_path
from .bench.runner import REFERENCE, BenchPlan, shadow_trainer, versions
from .bench.workload import workload_for
from .checkpoints import load_weights, save_weights, sha256_file, sha256_state
from .data.forget import make_split
from .data.split import forget_ids_sha256
from .data.sources import load_data
from .errors import CheckpointError, ConfigError
from .devices import resolve_device
from .methods.base import METHODS, RunContext, run_method
from .methods.callbacks import CSVLogger, History
from .methods.precision import Precision
from .models.lm_options import LMOptions
from .methods.training import fit
from .models.registry import build_model
from .resolve import typed_overrides
from .seeding import seed_everything

RECORD_VERSION = 1


@dataclass
class ForgetRequest:
    """Everything ``unlearnkit forget`` needs; the CLI fills it from its flags."""

    data: str
    forget: str
    method: str
    out: Path
    checkpoint: Path | None = None     # a safetensors checkpoint of a classifier (with ``arch``)
    arch: str | None = None            # the registered architecture (of ``checkpoint``, or of the embedded default)
    hf_model: Path | None = None       # a local save_pretrained folder (causal LM)
    overrides: dict[str, str] = field(default_factory=dict)   # the method's hyper-parameters
    data_options: dict[str, str] = field(default_factory=dict)
    audits: list[str] | None = None    # None: the data's defaults
    retrain: bool = False              # train a retrain reference (on the retain set) for the gaps
    retrain_model: Path | None = None  # or use this checkpoint (an HF folder with --hf-model) as the reference
    retain_logs: Path | None = None    # or a retain model's evaluation log (audits/reference_logs.py)
    seed: int = 0
    split_seed: int = 0
    train_seed: int = 0
    device: str = "auto"
    argv: list[str] | None = None
    precision: Precision = field(default_factory=Precision)
    log_dir: Path | None = None        # the run's training curve as CSV
    lm: LMOptions = field(default_factory=LMOptions)  # a language model's dtype, prompt format, lengths, reference device

    def check(self) -> None:
        METHODS.get(self.method)
        if self.method in ("original", REFERENCE):
            raise ConfigError(f"--method {self.method} does not unlearn; choose an unlearning method")
        typed_overrides(self.method, self.overrides)  # unknown or mistyped hyper-parameters fail before any work
        if self.hf_model and (self.checkpoint or self.arch):
            raise ConfigError("give either --hf-model DIR or --checkpoint CKPT --model ARCH, not both")
        if self.checkpoint and not self.arch:
            raise ConfigError(f"--checkpoint {self.checkpoint} needs --model ARCH (the registered architecture it "
                              "was built with)")
        if self.checkpoint and not Path(self.checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {self.checkpoint}")
        if sum(map(bool, (self.retrain, self.retrain_model, self.retain_logs))) > 1:
            raise ConfigError("give one reference: --retrain (train one), --retain-model CKPT, or --retain-logs FILE")
        for name in ("model.safetensors", "model", "adapter", "record.json", "record.html"):
            if (Path(self.out) / name).exists():
                raise CheckpointError(f"{Path(self.out) / name} already exists; unlearnkit forget never replaces "
                                      "an earlier result — choose a new --out folder")


def sha256_ids(ids: torch.Tensor) -> str:
    """SHA-256 of the sorted row ids in the one canonical form (``data.split.forget_ids_sha256``:
    a JSON list without spaces, ``[3,17,42]``, UTF-8): reproducible by anyone."""
    return forget_ids_sha256(ids)


def _load_source(req: ForgetRequest):
    """(source, the user's HF model or None), loaded as ``req.lm`` says (models/lm_options.py)."""
    from .models.lm_options import load_lm_source

    return load_lm_source(req.data, req.hf_model, req.lm, req.data_options)


def _original(req: ForgetRequest, given, split, task, plan, recipe, work, device):
    """(the model to unlearn, where it came from, how to build a fresh one of its architecture)."""
    source = split.source  # for subclass:K, the coarse-label problem the model must solve
    if given is not None:
        return given.to(device), {"kind": "hf_model", "path": str(req.hf_model), "sha256": sha256_state(given)}, None
    if req.checkpoint:  # safetensors or a torch.save state dict (never unpickled beyond tensors)
        from .checkpoints import load_into

        make = lambda seed: build_model(req.arch, source.input_shape, source.num_classes, seed=seed)  # noqa: E731
        model = make(0)
        loaded = load_into(model, req.checkpoint, arch=req.arch)
        origin = {"kind": "checkpoint", **loaded, "path": str(req.checkpoint)}
        return model.to(device), origin, make
    # the embedded default's original, trained once and cached as bench does
    make = lambda seed: work.make_model(plan.model, source, seed)  # noqa: E731
    model = original_model(source, plan.data_key, plan.model, task, recipe, RunContext(device=device), make)
    cached = original_path(f"{plan.data_key}|{source.name}", model, plan.model, recipe, source.fingerprint())
    origin = {"kind": "cached original (trained by unlearnkit)", "arch": plan.model, "path": str(cached),
              "sha256": sha256_file(cached), "train_config": recipe.to_dict()}
    return model, origin, make


def run_forget(req: ForgetRequest) -> dict[str, Any]:
    """Unlearn, save, audit, and write the record; returns the record."""
    req.check()
    device = resolve_device(req.device)
    started = datetime.now(timezone.utc)
    source, given = _load_source(req)
    work = workload_for(source)
    plan = BenchPlan(data=req.data, model=req.arch, overrides={req.method: dict(req.overrides)},
                     train_seed=req.train_seed, split_seed=req.split_seed, data_options=dict(req.data_options),
                     hf_model=str(req.hf_model) if req.hf_model else None, lm=req.lm)
    plan = plan.resolve(source)
    recipe = plan.recipe(work)
    split = make_split(source, req.forget, seed=req.split_seed)
    task = work.make_task(split.source, **plan.task_options(work))
    with distributed.main_first():  # several processes: the main one trains/caches, the others load
        model, origin, make = _original(req, given, split, task, plan, recipe, work, device)
    config = plan.method_config(req.method, req.seed, recipe, work)
    history = History()  # the run's loss curve, kept in the record
    ctx = RunContext(device=device, generator=seed_everything(req.seed), precision=req.precision, callbacks=[history])
    if req.log_dir is not None and distributed.is_main():
        ctx.callbacks.append(CSVLogger(Path(req.log_dir) / f"forget-{req.method}.csv"))  # never replaces a file
    start = time.perf_counter()
    with PeakMemory(device) as memory:
        unlearned = run_method(req.method, copy.deepcopy(model), task, split, config, ctx)
    seconds = time.perf_counter() - start
    return distributed.on_main(_finish, req, started, source, split, task, plan, recipe, work, model, origin, make,
                               unlearned, config, ctx, memory, seconds, device)


def _finish(req, started, source, split, task, plan, recipe, work, model, origin, make, unlearned, config, ctx,
            memory, seconds, device) -> dict[str, Any]:
    """Save, audit and write the record (the main process only, when several run)."""
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    if req.hf_model and req.lm.lora and req.lm.lora_save == "adapter":
        from .models.hf import save_lora_adapter

        saved = save_lora_adapter(unlearned, source.tokenizer, out / "adapter")
        output = {"path": str(saved), "format": "peft LoRA adapter (apply to the input model)",
                  "lora": req.lm.lora_settings(), "sha256": sha256_state(unlearned)}
    elif req.hf_model:
        from .models.hf import save_hf_model

        saved = save_hf_model(unlearned, source.tokenizer, out / "model")
        output = {"path": str(saved), "format": "save_pretrained", "sha256": sha256_state(unlearned)}
        if req.lm.lora:
            output["lora"] = {**req.lm.lora_settings(), "saved": "merged into the weights"}
    else:
        saved = save_weights(unlearned, out / "model.safetensors")
        output = {"path": str(saved), "format": "safetensors", "sha256": sha256_file(saved)}

    audits = list(req.audits or plan.audits)
    audit_ctx = AuditContext(device=device, seed=req.seed, original=model, options=dict(work.audit_options),
                             trainer=shadow_trainer(make, task, recipe, device) if make else None)
    reference = _retrain_reference(req, model, task, split, recipe, plan, make, device)
    reference_metrics = None
    if req.retain_logs:
        from .audits.reference_logs import read_retain_logs

        audit_ctx.reference_logs = read_retain_logs(req.retain_logs)
        reference = {"kind": "retain_logs", "path": str(req.retain_logs), "sha256": sha256_file(req.retain_logs)}
    elif reference is not None:
        audit_ctx.retrain = reference["model"]
        reference_metrics = audit(reference["model"], task, split, audits, ctx=audit_ctx)
    metrics = audit(unlearned, task, split, audits, ctx=audit_ctx)
    if reference_metrics is not None:
        metrics.update(gaps_to_retrain(metrics, reference_metrics))
    original_metrics = audit(model, task, split, audits, ctx=audit_ctx)

    record = {
        "record_version": RECORD_VERSION,
        "created": started.isoformat(timespec="seconds"),
        "request": {
            "data": req.data, "data_options": dict(req.data_options), "forget": req.forget,
            "forget_examples": int(len(split.forget_idx)), "retain_examples": int(len(split.retain_idx)),
            "forget_ids_sha256": sha256_ids(split.forget_idx),
            "forget_ids_note": "SHA-256 of the sorted training-set row ids of the forgotten examples, written as a "
                               "JSON list without spaces ([3,17,42]) and encoded as UTF-8",
            "data_fingerprint": split.source.fingerprint(),
            "data_fingerprint_note": "SHA-256 of the loaded data's contents (unlearnkit DataSource.fingerprint: "
                                     "inputs, labels, class names, groups, image pipeline; for subclass:K the "
                                     "group-labelled data the model was trained on)",
            "data_loader_options": _loader_options(req, model),
            "how_to_verify": _how_to_verify(req, _loader_options(req, model)),
        },
        "method": {"name": req.method, "summary": METHODS.get(req.method).summary, "config": config.to_dict()},
        "seeds": {"unlearn": req.seed, "split": req.split_seed, "train": req.train_seed},
        "input_model": origin,
        "output_model": output,
        "run": {"seconds": seconds, "device": str(device), **memory.metrics(),
                "precision": dataclasses.asdict(req.precision),
                "targets_seen": ctx.targets_seen},
        "audits": audits,
        "metrics": metrics,
        "original_metrics": original_metrics,
        "retrain_reference": None if reference is None else {k: v for k, v in reference.items() if k != "model"},
        "retrain_metrics": reference_metrics,
        "trace_summary": {k: v[-1] for k, v in ctx.trace.items() if v and isinstance(v[-1], (int, float))},
        "curves": {"loss": ctx.callbacks[0].curve()} if len(ctx.callbacks[0]) else {},
        "versions": {**versions(), **_optional_versions()},
        "platform": platform.platform(),
        "command": _command(req),
    }
    _write_atomic(out / "record.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    _write_atomic(out / "record.html", render_record_html(record))
    return record


def _loader_options(req: ForgetRequest, model) -> dict[str, Any]:
    """The keyword arguments the data was loaded with (``load_data(data, **these)``), as JSON; for a
    language model also the tokenizer's folder and the options it was loaded with."""
    options = req.lm.loader_options(req.data, req.data_options, model=model if req.hf_model else None)
    out = json.loads(json.dumps(options, default=str))
    if req.hf_model:
        out = {"options": out, "tokenizer": str(req.hf_model), "lm": json.loads(json.dumps(
            dataclasses.asdict(req.lm), default=str))}
    return out


def _how_to_verify(req: ForgetRequest, loader_options: dict[str, Any]) -> dict[str, Any]:
    """The command that re-checks every hash of the record, and three lines of Python that recompute
    the forgotten ids' hash (and the data fingerprint) by hand."""
    out = Path(req.out) / "record.json"
    options = loader_options["options"] if req.hf_model else loader_options
    load = f"load_data({req.data!r}{''.join(f', {k}={v!r}' for k, v in options.items())}" + (
        f", tokenizer=load_hf_tokenizer({str(req.hf_model)!r}))" if req.hf_model else ")")
    first = "from unlearnkit import load_data, make_split; from unlearnkit.data.split import forget_ids_sha256"
    if req.hf_model:
        first += "; from unlearnkit.models.hf import load_hf_tokenizer"
    return {
        "command": f"unlearnkit verify {shlex.quote(str(out))}",
        "python": [
            first,
            f"split = make_split({load}, {req.forget!r}, seed={req.split_seed})",
            "print(forget_ids_sha256(split.forget_idx), split.source.fingerprint())  "
            "# = forget_ids_sha256, data_fingerprint",
        ],
        "by_hand": "hashlib.sha256(json.dumps(sorted(set(ids)), separators=(',', ':')).encode()).hexdigest()",
    }


def _retrain_reference(req, model, task, split, recipe, plan, make, device) -> dict | None:
    if req.retrain_model and req.hf_model:  # a retain-finetuned language model: evaluated, never trained
        from .models.hf import load_hf_model

        reference = load_hf_model(req.retrain_model, device=device, dtype=req.lm.dtype,
                                  trust_remote_code=req.lm.trust_remote_code)
        return {"model": reference, "kind": "given", "path": str(req.retrain_model), "sha256": sha256_state(reference)}
    if req.retrain_model:
        reference = load_weights(copy.deepcopy(model), req.retrain_model)
        return {"model": reference, "kind": "given", "path": str(req.retrain_model),
                "sha256": sha256_file(req.retrain_model)}
    if not req.retrain:
        return None
    if make is None:
        raise ConfigError("--retrain needs a model whose architecture can be rebuilt (--checkpoint with --model, or "
                          "the embedded default); a pretrained --hf-model is never retrained from scratch: give "
                          "--retain-model DIR (its retain-finetuned checkpoint) or --retain-logs FILE")
    config = plan.method_config(REFERENCE, req.seed, recipe, workload_for(split.source))
    start = time.perf_counter()
    reference = fit(make(req.seed).to(device), task, split.retain, config,
                    RunContext(device=device, generator=seed_everything(req.seed)))
    return {"model": reference, "kind": "trained here on the retain set", "config": config.to_dict(),
            "seconds": time.perf_counter() - start, "sha256": sha256_state(reference)}


def _optional_versions() -> dict[str, str]:
    out = {}
    for name in ("transformers", "tokenizers", "safetensors"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "__version__"):
            out[name] = module.__version__
    return out


def _command(req: ForgetRequest) -> str:
    if req.argv:
        return "unlearnkit " + " ".join(shlex.quote(a) for a in req.argv)
    parts = ["unlearnkit", "forget", "--data", req.data, "--forget", req.forget, "--method", req.method,
             "--out", str(req.out), "--seed", str(req.seed), "--split-seed", str(req.split_seed)]
    if req.checkpoint:
        parts += ["--checkpoint", str(req.checkpoint)]
    if req.arch:
        parts += ["--model", str(req.arch)]
    if req.hf_model:
        parts += ["--hf-model", str(req.hf_model)]
    for key, value in req.overrides.items():
        parts += ["--set", f"{key}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


def _write_atomic(path: Path, text: str) -> None:
    if path.exists():
        raise CheckpointError(f"{path} already exists; refusing to replace it")
    write_text_atomic(path, text)


# --------------------------------------------------------------------------- the HTML record

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:60rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:1.8rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;font-size:.92rem} td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;width:14rem} td table th{width:10rem} td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;word-break:break-all}
.muted{color:#57606a;font-size:.88rem}
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, (dict, list)):
        return f"<td><code>{html.escape(json.dumps(value, sort_keys=True))}</code></td>"
    return f"<td><code>{html.escape(str(value))}</code></td>"


def _kv_table(rows: dict[str, Any]) -> str:
    """Key/value rows; nested objects become nested tables, values stay as written in record.json."""
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return f"<td>{_kv_table(v)}</td>"
        return f"<td><code>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</code></td>"

    body = "".join(f"<tr><th>{html.escape(str(k))}</th>{value(v)}</tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _metrics_table(record: dict) -> str:
    columns = [("after unlearning", record["metrics"]), ("original", record.get("original_metrics") or {})]
    if record.get("retrain_metrics"):
        columns.append(("retrain reference", record["retrain_metrics"]))
    names = [k for k in record["metrics"] if k in METRICS and isinstance(record["metrics"][k], (int, float))]
    head = "<tr><th>metric</th>" + "".join(f"<th>{html.escape(c)}</th>" for c, _ in columns) + "<th>meaning</th></tr>"
    rows = []
    for name in names:
        meaning = METRICS.get(name, ("", ""))[1]
        cells = "".join(_cell(float(m[name])) if isinstance(m.get(name), (int, float)) else "<td>–</td>"
                        for _, m in columns)
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}<td class=muted>{html.escape(meaning)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def render_record_html(record: dict) -> str:
    """The record as one self-contained page (inline CSS, no scripts, nothing fetched)."""
    req, method = record["request"], record["method"]
    title = f"Deletion record: {req['forget']} forgotten from {req['data']} with {method['name']}"
    sections = [
        ("What was asked", _kv_table(req)),
        ("Audits of the result", _metrics_table(record)),
        ("Method", _kv_table({"name": method["name"], "summary": method["summary"], **method["config"]})),
        ("Models", _kv_table({"input": record["input_model"], "output": record["output_model"],
                              "retrain reference": record.get("retrain_reference") or "none"})),
        ("Diagnostics", "<p class=muted>Per-layer distances and the audits' auxiliary values (after unlearning).</p>"
                        + _kv_table({k: v for k, v in record["metrics"].items() if k not in METRICS})),
        ("Run", _kv_table({**record["run"], "seeds": record["seeds"]})),
        ("Reproduce", f"<p>Run on the same inputs (the SHA-256 sums above identify them):</p>"
                      f"<p><code>{html.escape(record['command'])}</code></p>"),
        ("Environment", _kv_table({**record["versions"], "platform": record["platform"],
                                   "created (UTC)": record["created"]})),
    ]
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class=muted>Written by unlearnkit {html.escape(record['versions'].get('unlearnkit', ''))}; "
            f"the machine-readable record is record.json beside this page.</p>{body}</body></html>\n")
