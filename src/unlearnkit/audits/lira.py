"""Training-set membership: the shadow-model likelihood-ratio attack (LiRA, Carlini et al. 2022)
asking whether the forget examples look like *members* of the model's training set, against
held-out examples of the same distribution.

This is the classic member / non-member test aimed at the forget set, not U-LiRA: the shadows
here are never unlearned, and the question is "trained on x or not", where U-LiRA (Hayes et al. 2024, audits/ulira.py)
asks "unlearned x or retrained without it". A perfect unlearning gives the retrained model's score.

The attacker trains ``shadows`` models the way the original was trained (the context's
``trainer``), each on the retain set plus a random half of a candidate pool = forget ∪ held-out
examples (the test examples of the forgotten classes, or the test set); so every candidate is
IN about half the shadows and OUT of the others. For a candidate x with label y the statistic is
the logit-scaled confidence φ = log p(y|x) − log(1 − p(y|x)). Per candidate, Gaussians are fitted
to φ over its IN and OUT shadows; the target model's score is
    Λ(x) = log N(φ_target; μ_in, σ_in²) − log N(φ_target; μ_out, σ_out²).
Reported: ROC-AUC of Λ for forget (trained on by the original) vs held-out candidates
(``lira_auc``; 0.5 = indistinguishable) and TPR at 1 % FPR (``lira_tpr1``, %).
An unlearned model should score like ``retrain``; the benchmark reports the gap.

Cost: ``shadows`` trainings of the model (default 4 → ~4× a retrain at the default size), done
once per scenario and seed and shared by every method's cell through ``AuditContext.cache``.
With few shadows the variance is pooled over candidates (``variance="global"``, LiRA's
"fixed variance" variant); ``"per_example"`` is the alternative for many shadows.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.dataset import concat, subset
from ..data.split import Split
from ..errors import ConfigError
from ..tasks.base import Task
from .base import AUDITS, AuditContext, per_example
from .mia import attack_auc, non_members_for

SHADOWS = 4


def logit_confidence(log_likelihood: torch.Tensor) -> torch.Tensor:
    """φ = log p − log(1 − p), computed stably from log p."""
    ll = log_likelihood.double().clamp(max=-1e-12)
    return ll - torch.log(-torch.expm1(ll))


def lira_scores(target_phi: np.ndarray, shadow_phi: np.ndarray, in_mask: np.ndarray,
                variance: str = "global", min_std: float = 1e-3) -> np.ndarray:
    """Λ per candidate. ``shadow_phi`` and ``in_mask`` are ``[shadows, candidates]``."""
    in_mask = in_mask.astype(bool)
    if not (in_mask.any(axis=0).all() and (~in_mask).any(axis=0).all()):
        raise ValueError("every candidate needs at least one IN and one OUT shadow")
    counts_in, counts_out = in_mask.sum(0), (~in_mask).sum(0)
    mu_in = np.where(in_mask, shadow_phi, 0).sum(0) / counts_in
    mu_out = np.where(~in_mask, shadow_phi, 0).sum(0) / counts_out
    res_in = np.where(in_mask, shadow_phi - mu_in, 0.0)
    res_out = np.where(~in_mask, shadow_phi - mu_out, 0.0)
    if variance == "global":
        var_in = np.full_like(mu_in, (res_in**2).sum() / max(counts_in.sum() - len(mu_in), 1))
        var_out = np.full_like(mu_out, (res_out**2).sum() / max(counts_out.sum() - len(mu_out), 1))
    elif variance == "per_example":
        var_in = (res_in**2).sum(0) / np.maximum(counts_in - 1, 1)
        var_out = (res_out**2).sum(0) / np.maximum(counts_out - 1, 1)
    else:
        raise ConfigError(f"lira variance must be 'global' or 'per_example', got {variance!r}")
    var_in, var_out = np.maximum(var_in, min_std**2), np.maximum(var_out, min_std**2)

    def log_normal(x, mu, var):
        return -0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)

    return log_normal(target_phi, mu_in, var_in) - log_normal(target_phi, mu_out, var_out)


def shadow_statistics(task: Task, split: Split, ctx: AuditContext, shadows: int = SHADOWS):
    """Train (or fetch from ``ctx.cache``) the shadows; return (candidates, φ [K, n], IN mask [K, n], n_forget)."""
    key = ("lira", split.spec, tuple(split.forget_idx[:8].tolist()), len(split.forget_idx), shadows, ctx.seed)
    if key in ctx.cache:
        return ctx.cache[key]
    if ctx.trainer is None:
        raise ConfigError("the lira audit trains shadow models and needs AuditContext.trainer")
    candidates = concat([split.forget, non_members_for(split)])
    n = len(candidates)
    rng = np.random.default_rng(ctx.seed + 7919)
    # balanced IN/OUT: each candidate is IN for exactly half of the shadows (shadows must be even)
    half = max(shadows // 2, 1)
    in_mask = np.zeros((2 * half, n), dtype=bool)
    for j in range(n):
        in_mask[rng.permutation(2 * half)[:half], j] = True
    phis = []
    for k in range(2 * half):
        data = concat([split.retain, subset(candidates, np.flatnonzero(in_mask[k]))])
        shadow = ctx.trainer(data, ctx.seed * 1000 + k)
        phis.append(logit_confidence(per_example(shadow, task, candidates, task.log_likelihood, ctx)).numpy())
    result = (candidates, np.stack(phis), in_mask, len(split.forget))
    ctx.cache[key] = result
    return result


@AUDITS.register("lira")
def lira_audit(model: nn.Module, task: Task, split: Split, ctx: AuditContext) -> dict[str, float]:
    """Training-set membership of the forget examples (vs held-out ones) under LiRA: ``lira_auc``,
    ``lira_tpr1``; compare with retrain's (the benchmark reports ``lira_auc_gap``)."""
    candidates, shadow_phi, in_mask, n_forget = shadow_statistics(task, split, ctx)
    target_phi = logit_confidence(per_example(model, task, candidates, task.log_likelihood, ctx)).numpy()
    scores = lira_scores(target_phi, shadow_phi, in_mask)
    auc, tpr = attack_auc(scores[:n_forget], scores[n_forget:])
    return {"lira_auc": auc, "lira_tpr1": 100.0 * tpr}
