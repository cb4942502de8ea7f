"""Every registered method runs on a causal LM through the Task seam (CausalLMTask), unchanged.

A tiny random Llama, a generated fictitious-author QA set (``encode_qa``) and a hand-made
``DataSource(kind="text")`` with a named split. Each method runs one short ``unlearn`` (1 epoch,
batch 4) and must return a new, finite model that differs from the input (``original`` must
return it unchanged), leaving the input untouched. ``entangle`` gets its adjacent set from an
explicit indices file here; its automatic "nearest" adjacency on text is tested on its own.

Defining properties on text: ROSU's perturbation is retain-orthogonal (its trace, and a finite
difference of the retain loss against UAM's), GA raises the forget loss, the refusal methods make
the refusal more likely.
"""
from __future__ import annotations

import copy
import math
import dataclasses

import pytest
import torch

from lm_helpers import text_source, tiny_llama, tiny_tokenizer
from unlearnkit import METHODS, make_split, unlearn
from unlearnkit.data import iterate_batches
from unlearnkit.methods import RunContext
from unlearnkit.methods.gradients import add_to_params, dot, grads_of, norm, trainable
from unlearnkit.methods.minmax import uam_perturbation
from unlearnkit.methods.rosu import retain_orthogonal_perturbation
from unlearnkit.tasks.causal_lm import CausalLMTask

pytest.importorskip("transformers").utils.logging.disable_progress_bar()

SHORT = {"epochs": 1, "batch_size": 4}


@pytest.fixture(scope="module")
def source(tok):
    return text_source(tok, n=24, n_forget=4)


@pytest.fixture(scope="module")
def split(source):
    return make_split(source, "forget")


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok, seed=0)


def hparams(name: str, tmp_path) -> dict:
    fields = {f.name for f in dataclasses.fields(METHODS.get(name).Config)}
    hp = {k: v for k, v in SHORT.items() if k in fields}
    if name == "ssd":
        hp["importance"] = "per_batch"  # per_example needs vmap through the LM loss (not applicable on text)
        hp["alpha"] = 1.0  # the default α 10 selects nothing on this 4-of-20 forget split (α < 1/f is needed)
    if name == "entangle":
        adjacent = tmp_path / "adjacent.txt"
        adjacent.write_text("4 5 6 7 8 9")  # retain rows (the split's retain set is rows 4..23)
        hp.update(adjacency="file", adjacent_indices_file=str(adjacent))
    return hp


def forget_loss(model, task, split):
    with torch.no_grad():
        return torch.cat([task.loss(model, b) for b in iterate_batches(split.forget, 64)]).mean().item()


def test_source_is_text_with_a_named_split(source, split):
    assert source.kind == "text" and split.spec == "forget"
    assert len(split.forget) == 4 and len(split.retain) == 20


@pytest.mark.parametrize("name", METHODS.names())
def test_method_runs_on_text_and_edits_a_copy(name, model, lm_task, split, tmp_path):
    before = copy.deepcopy(model.state_dict())
    ctx = RunContext()
    out = unlearn(model, lm_task, split, method=name, ctx=ctx, **hparams(name, tmp_path))
    assert out is not model
    for key, value in model.state_dict().items():  # the input is untouched
        assert torch.equal(value, before[key]), key
    params = dict(out.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, params[n])]
    if name == "original":
        assert not changed
    else:
        assert changed, f"{name} left every parameter unchanged"
    assert forget_loss(out, lm_task, split) == forget_loss(out, lm_task, split)  # not NaN


def test_ga_raises_the_forget_loss(model, lm_task, split):
    before = forget_loss(model, lm_task, split)
    out = unlearn(model, lm_task, split, method="ga", epochs=3, batch_size=4, lr=0.05)
    assert forget_loss(out, lm_task, split) > before + 0.1


@pytest.mark.parametrize("name", [n for n in ("random_label", "idk") if n in METHODS])
def test_refusal_methods_make_the_refusal_likely(name, model, lm_task, split):
    refused = lm_task.relabel(next(iterate_batches(split.forget, 64)), torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = lm_task.loss(model, refused).mean().item()
    out = unlearn(model, lm_task, split, method=name, epochs=5, batch_size=4, lr=0.05)
    with torch.no_grad():
        after = lm_task.loss(out, refused).mean().item()
    assert after < before - 0.5


def test_rosu_perturbation_is_retain_orthogonal_on_text(model, lm_task, split):
    """⟨ε, g_r⟩ ≈ 0: from ROSU's own trace on a text run, then by an independent route (a finite
    difference of the retain loss, float64): moving θ by ROSU's ε changes L_r only at second
    order, while UAM's ε of the same norm changes it at first order."""
    ctx = RunContext()
    unlearn(model, lm_task, split, method="rosu", ctx=ctx, epochs=1, batch_size=4, rho=0.5)
    dots = torch.tensor(ctx.trace["eps_dot_gr"])
    scale = torch.tensor(ctx.trace["eps_norm"]) * torch.tensor(ctx.trace["gr_norm"])
    assert len(dots) > 0 and (dots.abs() <= 1e-5 * scale).all()

    m = copy.deepcopy(model).double()
    forget = next(iterate_batches(split.forget, 4))
    retain = next(iterate_batches(split.retain, 4))
    params = trainable(m)
    g_f = grads_of(lm_task.loss(m, forget).mean(), params)
    loss_r = lm_task.loss(m, retain).mean()
    g_r = grads_of(loss_r, params)
    rho = 1e-4
    changes = {}
    for kind, eps in (("rosu", retain_orthogonal_perturbation(g_f, g_r, rho)), ("uam", uam_perturbation(g_f, rho))):
        assert float(norm(eps)) == pytest.approx(rho, rel=1e-6)
        with torch.no_grad():
            add_to_params(params, eps)
            changes[kind] = abs(float(lm_task.loss(m, retain).mean() - loss_r))
            add_to_params(params, eps, alpha=-1.0)
    first_order = abs(float(dot(uam_perturbation(g_f, rho), g_r)))
    assert changes["uam"] == pytest.approx(first_order, rel=0.01)      # UAM: ΔL_r ≈ ⟨ε, g_r⟩ ≠ 0
    assert changes["rosu"] < 1e-3 * changes["uam"]                      # ROSU: only O(ρ²)


def test_lur_second_order_runs_on_an_sdpa_attention_model():
    """Regression: the fused SDPA kernels have no double backward; lur must route around them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    source = text_source(tok, 16, 4)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config._attn_implementation = "sdpa"
    model = LlamaForCausalLM(config)
    split = make_split(source, "forget")
    out = unlearn(model, CausalLMTask(tok), split, method="lur", epochs=1, batch_size=4)
    assert any(not torch.equal(a, b) for a, b in zip(out.parameters(), model.parameters()))


@pytest.mark.parametrize("name", ["uam", "rosu"])
def test_minmax_npo_forget_loss_on_text(tok, lm_task, source, name):
    """The LLM variant: the perturbation ascends F = −L_NPO against the frozen original."""
    split = make_split(source, "forget")
    model = tiny_llama(tok, seed=0)
    beta = 0.5
    ctx = RunContext()
    out = unlearn(model, lm_task, split, method=name, ctx=ctx, forget_loss="npo", npo_beta=beta, epochs=1,
                  batch_size=4, optimizer="adamw", lr=1e-3, rho=0.05)
    # at the first step θ = θ_ref, so r = 0 and F = −(2/β)·log 2 exactly
    assert ctx.trace["loss_f"][0] == pytest.approx(-(2.0 / beta) * math.log(2.0), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(out.parameters(), model.parameters()))
    if name == "rosu":
        for dot_value, eps, gr in zip(ctx.trace["eps_dot_gr"], ctx.trace["eps_norm"], ctx.trace["gr_norm"]):
            assert abs(dot_value) <= 1e-4 * eps * gr + 1e-12


def test_entangle_nearest_adjacency_on_text_picks_the_retain_rows_nearest_to_some_forget_row(model, lm_task, split):
    """Without class labels, the adjacent set is the k retain examples whose mean-pooled last-layer
    feature is nearest (Euclidean) to some forget example's; checked against a direct computation."""
    from unlearnkit.methods.entangle import EntangleConfig, resolve_adjacency
    from unlearnkit.tasks.base import head_layer

    config = EntangleConfig(adjacency="nearest", auto_adjacent_examples=5)
    task = lm_task
    adjacency = resolve_adjacency(model, task, split, config, torch.device("cpu"))
    assert head_layer(model) == "lm_head"  # its input, the final-norm hidden state, is the feature

    def pooled(rows):
        ids = next(iter(iterate_batches(rows, 1000)))[0]
        with torch.no_grad():
            h = model(input_ids=ids, attention_mask=(ids != task.pad_id), output_hidden_states=True).hidden_states[-1]
        mask = (ids != task.pad_id).float()[..., None]
        return (h * mask).sum(1) / mask.sum(1)

    model.eval()
    f, r = pooled(split.forget), pooled(split.retain)
    distance = torch.cdist(r, f).min(dim=1).values
    expected = split.retain_idx[torch.argsort(distance)[:5]]
    assert torch.equal(adjacency.adjacent_idx, torch.sort(expected).values)
    assert adjacency.source == "nearest" and len(adjacency.remote_idx) == len(split.retain_idx) - 5
    # default k: as many as the forget set, at most half the retain set (a forget corpus as large as
    # the retain corpus, as in wmdp-mini, still leaves a remote set)
    default = resolve_adjacency(model, task, split, EntangleConfig(adjacency="nearest"), torch.device("cpu"))
    assert len(default.adjacent_idx) == min(len(split.forget_idx), len(split.retain_idx) // 2)


def test_entangle_nearest_adjacency_leaves_a_remote_set_when_forget_is_as_large_as_retain(tok, model, lm_task):
    """Regression (wmdp-mini: 500 forget rows, 500 retain rows): the default adjacent set is capped at
    half the retain set instead of refusing to run."""
    from unlearnkit.methods.entangle import EntangleConfig, resolve_adjacency

    split = make_split(text_source(tok, n=10, n_forget=5), "forget")
    adjacency = resolve_adjacency(model, lm_task, split, EntangleConfig(adjacency="nearest"), torch.device("cpu"))
    assert len(adjacency.adjacent_idx) == len(split.retain_idx) // 2 and len(adjacency.remote_idx) > 0
