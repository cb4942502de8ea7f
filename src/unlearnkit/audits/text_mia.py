"""``text_mia`` — the membership-inference attacks language-model unlearning papers report, each as
ROC-AUC and TPR at 1 % and 0.1 % FPR, forget set (members) vs holdout (non-members).

Definitions follow OpenUnlearning (locuslab/open-unlearning @ d3d7cf9e, ``src/evals/metrics/mia/*.py``,
``configs/eval/tofu_metrics/mia_*.yaml``; its ``docs/links.md`` credits MIMIR, Duan et al. 2024, and
MUSE for the attack suite); per item, over the answer tokens of a QA row (every token
after the first of a plain-text row), with the causal shift of :mod:`unlearnkit.tasks.causal_lm`:

=============  ==========================================================================================
attack         score (OpenUnlearning's sign: higher = *less* likely a member)
=============  ==========================================================================================
``loss``       NLL = mean token NLL, final EOS included (Yeom et al. 2018; ``mia/loss.py`` →
               ``evaluate_probability``'s ``avg_loss``)
``zlib``       NLL / len(zlib.compress(text)) with text the decoded answer tokens (special tokens
               skipped), UTF-8 (Carlini et al. 2021, "Extracting training data from LLMs";
               ``mia/zlib.py``)
``mink``       −mean of the max(1, ⌊k·n⌋) lowest token log-probabilities, final EOS left out (Shi et al.
               2024, "Detecting pretraining data from LLMs"; ``mia/min_k.py``; k = 0.4 as in
               ``mia_min_k.yaml``)
``minkpp``     the same on z_t = (log p(x_t) − μ_t) / σ_t, μ_t = Σ_v p_v log p_v and
               σ_t² = Σ_v p_v (log p_v)² − μ_t² under the model's next-token distribution at t, σ_t² clamped
               at 1e-6 (Zhang et al. 2024, "Min-K%++"; ``mia/min_k_plus_plus.py``; k = 0.4 as in
               ``mia_min_k_plus_plus.yaml``)
``ref``        NLL(model) − NLL(reference) (Carlini et al. 2021; ``mia/reference.py``); the reference
               is the retrained model ``ctx.retrain`` — without one the attack is skipped (its three
               metrics are absent)
``gradnorm``   mean over the parameter tensors of ‖∂ NLL'/∂θ_i‖_p, p = 2, one item at a time, NLL' the mean
               token NLL without the final EOS (Wang et al. 2024, "Pandora's white-box", arXiv
               2402.17012, as OpenUnlearning's ``mia/gradnorm.py`` cites it; ``mia_gradnorm.yaml``
               p = 2, batch 1)
=============  ==========================================================================================

We negate every score so that higher = member and label members 1: the ROC-AUC is then exactly
OpenUnlearning's (which labels forget 0 and keeps the loss-like sign). AUC ≈ 1: the forget items are
recognised (still memorised); 0.5: cannot tell. Compare with the retrained model's values.

Ours:
- ROC-AUC and the ROC curve are computed here (rank statistic with ties counted ½; the ROC's vertices
  at every distinct score), so the numbers do not depend on scikit-learn; the tests check them against
  ``sklearn.metrics.roc_auc_score`` / ``roc_curve``.
- TPR at FPR α is read off the ROC polyline by linear interpolation (``np.interp`` of the vertices,
  the same convention as ``mia_tpr1`` of :mod:`.mia`), in percent. With N non-members the ROC moves in
  steps of 1/N: below α·N < 1 the value is an interpolation, not a measured point (0.1 % needs
  ≥ 1,000 non-members to be measured).
- the gradient-norm attack runs in eval mode (OpenUnlearning switches to train mode; the same for
  models without dropout) and with ``torch.autograd.grad``, so it never touches ``.grad`` buffers.
  It costs one backward pass per item; ``TextMIAConfig.gradnorm_max_items`` caps the items per side.

Data: the members and non-members the TOFU audit's attack uses
(:func:`~unlearnkit.audits.tofu.membership_sets`: non-members ``evals["holdoutXX"]`` for a split
``forgetXX``, else ``evals["holdout"]``, else the test set; members the forget EvalSet's QA rows when the
non-members are QA rows too, else ``split.forget``). OpenUnlearning's TOFU configs use
``forgetXX_perturbed``'s gold answers vs ``holdoutXX`` — the same QA.

Settings: ``ctx.options["text_mia"]``, a :class:`TextMIAConfig`.
Metrics: ``mia_<attack>_auc``, ``mia_<attack>_tpr1``, ``mia_<attack>_tpr01`` (:mod:`.metrics`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.dataset import iterate_batches, subset
from ..data.split import Split
from ..data.text import IGNORE
from ..errors import ConfigError
from ..tasks.base import Task
from .base import AUDITS, AuditContext, per_example
from .tofu import membership_sets, min_k_scores, without_final_eos

MIN_K = 0.4                       # OpenUnlearning's mia_min_k.yaml / mia_min_k_plus_plus.yaml
SIGMA2_FLOOR = 1e-6               # OpenUnlearning's clamp of the Min-K%++ variance
ATTACKS = ("loss", "zlib", "mink", "minkpp", "ref", "gradnorm")
FPR_LEVELS = (("tpr1", 0.01), ("tpr01", 0.001))


@dataclass
class TextMIAConfig:
    """``k``: Min-K% / Min-K%++ fraction.  ``attacks``: which to run.  ``p``: the gradient norm's
    order.  ``gradnorm_max_items``: at most this many items per side for the gradient-norm attack
    (the first ones; None = all)."""

    k: float = MIN_K
    attacks: tuple[str, ...] = ATTACKS
    p: float = 2.0
    gradnorm_max_items: int | None = None

    def __post_init__(self):
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ConfigError(f"unknown text MIA attack(s) {unknown}; known: {', '.join(ATTACKS)}")
        if not 0 < self.k <= 1:
            raise ConfigError(f"text MIA k must be in (0, 1], got {self.k}")
        if self.p not in (1.0, 2.0, float("inf")):
            raise ConfigError(f"gradient-norm order p must be 1, 2 or inf, got {self.p}")


# --- ROC: AUC and TPR at a fixed FPR ------------------------------------------------------------

def roc_auc(member_scores, non_member_scores) -> float:
    """ROC-AUC of a score where higher means "member": P(member > non-member) + ½ P(tie)."""
    from scipy.stats import rankdata

    members = np.asarray(member_scores, dtype=np.float64)
    others = np.asarray(non_member_scores, dtype=np.float64)
    if len(members) == 0 or len(others) == 0:
        raise ValueError("ROC-AUC needs at least one member and one non-member score")
    ranks = rankdata(np.concatenate([members, others]))                # average ranks: ties ½
    u = ranks[: len(members)].sum() - len(members) * (len(members) + 1) / 2.0   # Mann–Whitney U
    return float(u / (len(members) * len(others)))


def roc_points(member_scores, non_member_scores) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve's vertices (FPR, TPR), from (0, 0): one per distinct score, thresholds descending."""
    members = np.asarray(member_scores, dtype=np.float64)
    others = np.asarray(non_member_scores, dtype=np.float64)
    scores = np.concatenate([members, others])
    is_member = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_member = scores[order], is_member[order]
    last_of_value = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]  # a threshold takes ties together
    tp = np.cumsum(is_member)[last_of_value]
    fp = np.cumsum(1.0 - is_member)[last_of_value]
    return np.r_[0.0, fp / max(len(others), 1)], np.r_[0.0, tp / max(len(members), 1)]


def tpr_at_fpr(member_scores, non_member_scores, fpr: float) -> float:
    """TPR (fraction) at false-positive rate ``fpr``, linearly interpolated on the ROC polyline
    (at an FPR where the curve rises vertically, its top)."""
    fprs, tprs = roc_points(member_scores, non_member_scores)
    return float(np.interp(fpr, fprs, tprs))


def attack_metrics(name: str, member_scores, non_member_scores) -> dict[str, float]:
    """``mia_<name>_auc`` and ``mia_<name>_tpr1`` / ``_tpr01`` (TPR at 1 % / 0.1 % FPR, in %)."""
    out = {f"mia_{name}_auc": roc_auc(member_scores, non_member_scores)}
    for suffix, level in FPR_LEVELS:
        out[f"mia_{name}_{suffix}"] = 100.0 * tpr_at_fpr(member_scores, non_member_scores, level)
    return out


# --- per-item scores (higher = member) ----------------------------------------------------------

def zlib_length(text: str) -> int:
    """Bytes of the zlib-compressed UTF-8 text (Carlini et al.'s zlib entropy)."""
    return len(zlib.compress(text.encode("utf-8")))


def zlib_scores(nll, texts) -> np.ndarray:
    """−NLL / zlib length per item (higher = member)."""
    nll = np.asarray(nll, dtype=np.float64)
    lengths = np.array([zlib_length(t) for t in texts], dtype=np.float64)
    return -nll / lengths


def min_k_plus_plus_z(log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """z_t = (log p(x_t) − μ_t)/σ_t for each row of ``log_p`` [P, V] (log-distributions) and its
    target [P]; μ_t, σ_t² the mean and variance of log p under p, σ_t² ≥ 1e-6."""
    log_p = log_p.double()
    p = log_p.exp()
    mu = (p * log_p).sum(dim=-1)                                         # μ_t = E_p[log p]
    sigma2 = ((p * log_p.square()).sum(dim=-1) - mu.square()).clamp(min=SIGMA2_FLOOR)   # Var_p[log p]
    target_ll = log_p.gather(1, targets[:, None].to(log_p.device)).squeeze(1)
    return (target_ll - mu) / sigma2.sqrt()


def token_statistics(task: Task, model: nn.Module, batch):
    """One forward: per-token log-probabilities and Min-K%++ z-scores of the answer tokens, both
    ``[B, L]`` left-aligned (0 past each row's tokens), the targets ``[B, L]``, the lengths ``[B]``
    with a final EOS left out, and the full lengths ``[B]``."""
    labels = batch[1]
    mask = labels[:, 1:] != IGNORE
    log_p = task.log_probs(model, batch)                                 # [P, V]
    flat_targets = labels[:, 1:][mask].to(log_p.device)
    flat_ll = log_p.gather(1, flat_targets[:, None]).squeeze(1).double()
    flat_z = min_k_plus_plus_z(log_p, flat_targets)
    lengths = mask.sum(dim=1).to(log_p.device)
    rows = mask.nonzero()[:, 0].to(log_p.device)
    slots = (mask.long().cumsum(dim=1)[mask] - 1).to(log_p.device)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    token_ll = flat_ll.new_zeros(len(labels), width)
    token_z = flat_ll.new_zeros(len(labels), width)
    token_ll[rows, slots] = flat_ll
    token_z[rows, slots] = flat_z
    targets = torch.full((len(labels), width), IGNORE, dtype=torch.long, device=log_p.device)
    targets[rows, slots] = flat_targets
    return token_ll, token_z, targets, without_final_eos(task, targets, lengths), lengths


def likelihood_scores(task: Task, model: nn.Module, batch, k: float = MIN_K) -> torch.Tensor:
    """``[B, 3]`` per row: −NLL (the mean over all answer tokens, EOS included: ``task.loss``), Min-K%
    and Min-K%++ (EOS left out); one forward pass."""
    token_ll, token_z, _, lengths, full = token_statistics(task, model, batch)
    nll = -token_ll.sum(dim=1) / full.clamp(min=1).double()
    return torch.stack([-nll, min_k_scores(token_ll, lengths, k), min_k_scores(token_z, lengths, k)], dim=1)


def answer_texts(task: Task, data: Dataset) -> list[str]:
    """The decoded labelled tokens of each row (special tokens skipped), as OpenUnlearning's zlib
    attack reads them (``extract_target_texts_from_processed_data``)."""
    tokenizer = getattr(task, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError("the zlib attack needs a text task with a tokenizer")
    texts = []
    for _, labels in iterate_batches(data, 1024):
        for row in labels:
            texts.append(tokenizer.decode(row[row != IGNORE].tolist(), skip_special_tokens=True))
    return texts


def gradient_norms(model: nn.Module, task: Task, data: Dataset, ctx: AuditContext, p: float = 2.0) -> np.ndarray:
    """Per item: the mean over parameter tensors of the p-norm of ∂NLL'/∂θ_i (NLL' = mean answer-token
    NLL without the final EOS), one item at a time, in eval mode."""
    params = [q for q in model.parameters() if q.requires_grad]
    if not params:
        raise ConfigError("the gradient-norm attack needs a model with trainable parameters")
    was_training = model.training
    model.eval()
    norms = []
    try:
        with torch.enable_grad():
            for batch in iterate_batches(data, 1):
                batch = task.to_device(batch, ctx.device)
                labels = batch[1]
                mask = labels[:, 1:] != IGNORE
                log_p = task.log_probs(model, batch)
                token_ll = log_p.gather(1, labels[:, 1:][mask][:, None].to(log_p.device)).squeeze(1)
                targets = labels[:, 1:][mask][None, :]
                n = int(without_final_eos(task, targets, mask.sum(dim=1))[0])
                loss = -token_ll[:max(n, 1)].mean()                                   # NLL'
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                per_tensor = [g.detach().double().norm(p=p) for g in grads if g is not None]
                norms.append(float(torch.stack(per_tensor).mean()))                  # mean_i ‖∂/∂θ_i‖_p
    finally:
        model.train(was_training)
    return np.array(norms, dtype=np.float64)


# --- the audit ----------------------------------------------------------------------------------

def _first(data: Dataset, limit: int | None) -> Dataset:
    return data if limit is None or len(data) <= limit else subset(data, torch.arange(limit))


def _reference_nll(task, split, ctx, members: Dataset, non_members: Dataset, k: float):
    """The retrained model's per-item NLL on both sides (the same computation as the audited
    model's), computed once per context."""
    key = ("text_mia", split.spec)
    cached = ctx.cache.get(key)
    if cached is not None and cached[0] is ctx.retrain:
        return cached[1]
    score = lambda m, b: likelihood_scores(task, m, b, k)  # noqa: E731
    values = tuple(-per_example(ctx.retrain, task, data, score, ctx).double().numpy()[:, 0]
                   for data in (members, non_members))
    ctx.cache[key] = (ctx.retrain, values)
    return values


def text_mia_scores(model, task, split: Split, ctx: AuditContext, config: TextMIAConfig | None = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per attack, the (member, non-member) scores, higher = member; ``ref`` only with ``ctx.retrain``."""
    config = config or TextMIAConfig()
    members, non_members = membership_sets(split)
    if len(members) == 0 or len(non_members) == 0:
        raise ConfigError(f"the text_mia audit needs forget and holdout items; split {split.spec!r} has "
                          f"{len(members)} forget and {len(non_members)} holdout")
    wanted = set(config.attacks)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if wanted & {"loss", "zlib", "mink", "minkpp", "ref"}:
        score = lambda m, b: likelihood_scores(task, m, b, config.k)  # noqa: E731
        sides = [per_example(model, task, data, score, ctx).double().numpy() for data in (members, non_members)]
        for column, name in enumerate(("loss", "mink", "minkpp")):
            if name in wanted:
                out[name] = (sides[0][:, column], sides[1][:, column])
        if "zlib" in wanted:
            out["zlib"] = (zlib_scores(-sides[0][:, 0], answer_texts(task, members)),
                           zlib_scores(-sides[1][:, 0], answer_texts(task, non_members)))
        if "ref" in wanted and ctx.retrain is not None:
            ref_m, ref_n = _reference_nll(task, split, ctx, members, non_members, config.k)
            out["ref"] = (ref_m + sides[0][:, 0], ref_n + sides[1][:, 0])       # NLL_ref − NLL
    if "gradnorm" in wanted:
        limit = config.gradnorm_max_items
        out["gradnorm"] = tuple(-gradient_norms(model, task, _first(data, limit), ctx, config.p)
                                for data in (members, non_members))
    return {name: out[name] for name in ATTACKS if name in out}


@AUDITS.register("text_mia")
def text_mia_audit(model: nn.Module, task: Task, split: Split, ctx: AuditContext) -> dict[str, float]:
    if getattr(task, "kind", None) != "text":
        raise ConfigError("the text_mia audit scores language models on text data; for a classifier use the "
                          "mia (and lira) audits")
    config = ctx.options.get("text_mia") or TextMIAConfig()
    metrics: dict[str, float] = {}
    for name, (member, non_member) in text_mia_scores(model, task, split, ctx, config).items():
        metrics.update(attack_metrics(name, member, non_member))
    return metrics
