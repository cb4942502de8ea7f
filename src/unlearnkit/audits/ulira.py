"""U-LiRA: can a per-example attacker tell a model that *unlearned* an example from one *retrained
without it*? (Hayes, Shumailov, Triantafillou, Khalifa, Papernot, "Inexact Unlearning Needs More
Careful Evaluations to Avoid a False Sense of Privacy", SaTML 2025, arXiv:2403.01218.)

Where ``lira`` (audits/lira.py) asks the membership question "was x in the training set?", U-LiRA
asks the unlearning question, with the method under test inside the attacker's shadow models:

1. Shadow originals. K models are trained the way the original was (``ctx.trainer``), shadow k on a
   random half H_k of the training pool (forget ∪ retain): each example is in exactly K/2 halves
   (the balanced assignment of Carlini et al.'s LiRA code).
2. For each shadow k: the **unlearned** shadow U_k = the method under test (``ctx.unlearner``, the
   cell's configuration with a seed of the shadow's own: independent runs) run on shadow k with
   forget set F_k = targets ∩ H_k and retain set H_k \\ targets; the **retrained** shadow R_k = a
   fresh model trained on H_k \\ targets. Targets = the split's forget examples.
3. Statistic: the logit-scaled confidence φ = log p(y|x) − log(1 − p(y|x)) of each target (LiRA's).
4. Per target x, Gaussians are fitted to φ over the unlearned shadows that had x to forget
   (x ∈ F_k) and over the retrained shadows; a model's score on x is the likelihood ratio
       Λ(x) = log N(φ; μ_unlearned, σ_u²) − log N(φ; μ_retrained, σ_r²),
   and the attack says "unlearned" when Λ > 0 (equal priors).
5. The game (Hayes et al.'s: the attacker faces models drawn from the same population, half
   unlearned, half retrained): each shadow k in turn is the target; the Gaussians are fitted on the
   other K − 1, and the attack scores U_k and R_k on x ∈ F_k. Reported over all k and x:
   ``ulira_acc`` (balanced accuracy of Λ > 0) and ``ulira_auc`` (ROC-AUC of Λ, unlearned vs
   retrained). 0.5 = the method's models cannot be told from retraining: perfect unlearning; both
   under-forgetting and over-forgetting (confidence pushed *below* retrain's) raise them, because
   the "unlearned" Gaussian is fitted to the method's own outputs.
6. With ``ctx.retrain`` (the benchmark's retrained reference of the same seed), the same attack, fitted
   on all K shadows, is also applied to the audited model itself against that retrained model on
   the forget examples: ``ulira_target_acc`` / ``ulira_target_auc`` (retrain's own row: 0.5 by
   construction, the model is compared with itself).

From the paper (as far as its abstract and the U-MIA framing we could read state it): per-example
attacker, shadow models that unlearn with the method under test vs shadows that never trained on
the example, likelihood-ratio test on logit-scaled confidences, attack accuracy with 50% = as good
as retraining. Ours (the paper's full method section was not readable to us; every choice below
is a parameter or stated here):

- K is small (default 4, ``AuditContext.options["ulira"]``; Hayes et al. train hundreds), so the
  Gaussians' variance is pooled over the targets (``variance="global"``, LiRA's fixed-variance
  variant; ``"per_example"`` for many shadows) and each held-out game fits the unlearned mean of x
  on as few as K/2 − 1 shadows;
- the retrained shadows are trained explicitly on H_k \\ targets (2K trainings), rather than taking
  the shadows that never drew x as "retrained": that shortcut holds for random forget sets, not
  for class-wise ones, where the other shadows still saw the rest of the class;
- the held-out (leave-one-shadow-out) game instead of a separate population of target models;
- the decision threshold Λ > 0 and one query per example (no augmentations);
- φ is clipped to ±1000 (a diverged model's NaN counts as −1000); a shadow whose unlearning run
  diverges is left out (``ulira_diverged``).

Cost (recorded): 2K trainings of the original's recipe (K originals, K retrains), once per scenario
and seed, shared by its cells through ``ctx.cache`` (``ulira_shadow_seconds``), plus K runs of the
method per cell; ``ulira_models_trained`` counts what this call trained or unlearned and
``ulira_seconds`` its wall-clock time. The per-shadow accuracies go to ``ctx.curves["ulira"]``.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.dataset import subset
from ..data.split import Split
from ..errors import ConfigError, DivergenceError
from ..tasks.base import Task
from .base import AUDITS, AuditContext, compact, per_example
from .lira import logit_confidence
from .mia import attack_auc

log = logging.getLogger(__name__)

PHI_CLIP = 1000.0
MIN_STD = 1e-3  # floor of the Gaussians' standard deviation (as lira.py)
# trainer and unlearner seeds: ctx.seed * 1000 + offset + k (lira's shadows use ctx.seed * 1000 + k)
ORIGINAL_SEED_OFFSET, RETRAIN_SEED_OFFSET, UNLEARN_SEED_OFFSET = 300, 500, 700
MAX_SHADOWS = 200


@dataclass(frozen=True)
class ULiRAConfig:
    """``shadows``: K, even, ≥ 4 (each example is in K/2 halves; the held-out game needs an unlearned
    observation of x among the other K − 1); ``variance``: ``global`` (pooled, for few shadows) or
    ``per_example``."""

    shadows: int = 4
    variance: str = "global"

    def __post_init__(self):
        if not 4 <= self.shadows <= MAX_SHADOWS or self.shadows % 2:
            raise ConfigError(f"ulira shadows must be even, 4 to {MAX_SHADOWS}; got {self.shadows}")
        if self.variance not in ("global", "per_example"):
            raise ConfigError(f"ulira variance must be 'global' or 'per_example', got {self.variance!r}")


def ulira_config(value) -> ULiRAConfig:
    """``AuditContext.options["ulira"]``: a :class:`ULiRAConfig`, a dict of its fields, the shadow
    count, or None (the defaults)."""
    if value is None:
        return ULiRAConfig()
    if isinstance(value, ULiRAConfig):
        return value
    if isinstance(value, dict):
        return ULiRAConfig(**value)
    if isinstance(value, int) and not isinstance(value, bool):
        return ULiRAConfig(shadows=value)
    raise ConfigError(f"ulira options must be a ULiRAConfig, a dict or a shadow count, got {value!r}")


def phi_of(model: nn.Module, task: Task, data, ctx: AuditContext) -> np.ndarray:
    """Logit-scaled confidence per example, non-finite values clipped (a NaN counts as −PHI_CLIP)."""
    phi = logit_confidence(per_example(model, task, data, task.log_likelihood, ctx)).numpy()
    return np.clip(np.nan_to_num(phi, nan=-PHI_CLIP, posinf=PHI_CLIP, neginf=-PHI_CLIP), -PHI_CLIP, PHI_CLIP)


@dataclass
class ShadowPopulation:
    """The shared part: K shadow originals, which targets each one trained on, and the retrained
    shadows' φ on the targets."""

    halves: list[torch.Tensor]  # H_k: indices into source.train
    in_mask: np.ndarray  # [K, n]: target x ∈ H_k
    originals: list[nn.Module]
    retrained_phi: np.ndarray  # [K, n]: φ of R_k on the targets
    seconds: float

    def split(self, split: Split, k: int) -> Split | None:
        """Shadow k's unlearning request: forget targets ∩ H_k, retain H_k \\ targets (None when H_k
        holds no target)."""
        half = self.halves[k]
        is_target = torch.isin(half, split.forget_idx)
        if not is_target.any() or is_target.all():
            return None
        retain = half[~is_target]
        related = None
        if split.related_idx is not None:
            related = split.related_idx[torch.isin(split.related_idx, retain)]
            related = related if related.numel() else None
        return dataclasses.replace(split, forget_idx=half[is_target], retain_idx=retain, related_idx=related)


def shadow_population(task: Task, split: Split, ctx: AuditContext, config: ULiRAConfig) -> tuple[ShadowPopulation, int]:
    """Train (or fetch from ``ctx.cache``) the shadow originals and retrains; return them and the
    number of models trained by this call (0 when cached)."""
    key = ("ulira", split.spec, tuple(split.forget_idx[:8].tolist()), len(split.forget_idx), len(split.retain_idx),
           config.shadows, ctx.seed)
    if key in ctx.cache:
        return ctx.cache[key], 0
    if ctx.trainer is None:
        raise ConfigError("the ulira audit trains shadow models and needs AuditContext.trainer")
    start = time.perf_counter()
    K = config.shadows
    pool = torch.sort(torch.cat([split.forget_idx, split.retain_idx])).values
    rng = np.random.default_rng(ctx.seed + 104729)
    keep = rng.random((K, len(pool))).argsort(axis=0) < K // 2  # each example in exactly K/2 halves
    halves = [pool[torch.from_numpy(np.flatnonzero(keep[k]))] for k in range(K)]
    in_mask = np.stack([torch.isin(split.forget_idx, half).numpy() for half in halves])
    train = split.source.train
    originals, retrained_phi = [], []
    for k, half in enumerate(halves):
        originals.append(ctx.trainer(subset(train, half), ctx.seed * 1000 + ORIGINAL_SEED_OFFSET + k))
        without = half[~torch.isin(half, split.forget_idx)]
        retrained = ctx.trainer(subset(train, without), ctx.seed * 1000 + RETRAIN_SEED_OFFSET + k)
        retrained_phi.append(phi_of(retrained, task, split.forget, ctx))
        del retrained
    population = ShadowPopulation(halves, in_mask, originals, np.stack(retrained_phi), time.perf_counter() - start)
    ctx.cache[key] = population
    return population, 2 * K


def _log_normal(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)


def pooled_variances(phi: np.ndarray, mask: np.ndarray, variance: str = "global",
                     min_std: float = MIN_STD, fallback: float = 0.0) -> np.ndarray:
    """Per candidate, the variance of φ over the observations in ``mask`` ([shadows, candidates]):
    ``global`` pools the residuals about each candidate's mean over all candidates (LiRA's fixed
    variance); ``per_example`` uses each candidate's own (ddof 1), the pooled value where it has
    fewer than two observations; ``fallback`` where no candidate has two. Floored at ``min_std²``."""
    counts = mask.sum(0)
    mu = np.where(mask, phi, 0.0).sum(0) / np.maximum(counts, 1)
    squares = np.where(mask, phi - mu, 0.0) ** 2
    dof = np.maximum(counts - 1, 0)
    pooled = squares.sum() / dof.sum() if dof.sum() > 0 else fallback
    var = np.full(phi.shape[1], pooled, dtype=float)
    if variance == "per_example":
        own = dof > 0
        var[own] = squares.sum(0)[own] / dof[own]
    return np.maximum(var, min_std**2)


def likelihood_ratio(target_phi: np.ndarray, unlearned_phi: np.ndarray, unlearned_mask: np.ndarray,
                     retrained_phi: np.ndarray, var_unlearned: np.ndarray, var_retrained: np.ndarray) -> np.ndarray:
    """Λ = log N(φ; μ_u, s_u²) − log N(φ; μ_r, s_r²) per candidate: the means over the unlearned
    observations in ``unlearned_mask`` and over every retrained one; s² = σ² (1 + 1/m), the
    predictive variance of a new observation when the mean rests on m of them (ours: with K = 4 a
    held-out game fits μ_u on one shadow). Every candidate needs an unlearned observation."""
    m_u = unlearned_mask.sum(0)
    if not (m_u > 0).all():
        raise ValueError("every candidate needs at least one unlearned observation")
    m_r = len(retrained_phi)
    mu_u = np.where(unlearned_mask, unlearned_phi, 0.0).sum(0) / m_u
    mu_r = retrained_phi.mean(0)
    return (_log_normal(target_phi, mu_u, var_unlearned * (1 + 1 / m_u))
            - _log_normal(target_phi, mu_r, var_retrained * (1 + 1 / m_r)))


def accuracy_auc(unlearned_scores: np.ndarray, retrained_scores: np.ndarray) -> tuple[float, float]:
    """Balanced accuracy of "unlearned" = Λ > 0, and the ROC-AUC of Λ (unlearned = positive)."""
    acc = 0.5 * (float(np.mean(unlearned_scores > 0)) + float(np.mean(retrained_scores <= 0)))
    return acc, attack_auc(unlearned_scores, retrained_scores)[0]


def held_out_game(unlearned_phi: np.ndarray, in_mask: np.ndarray, retrained_phi: np.ndarray,
                  variance: str = "global") -> tuple[float, float, list[float]]:
    """Each shadow k in turn is the target: the Gaussians fitted on the other shadows, U_k and R_k
    scored on the targets k unlearned (those with an unlearned observation among the others). Where
    the others leave no residual to estimate a variance from (K = 4: one unlearned observation per
    candidate), the variance pooled over all shadows and candidates is used — a scale shared by
    hundreds of candidates, to which the held-out shadow adds a negligible part (ours).
    Returns (accuracy, AUC) over all games pooled, and each game's accuracy."""
    K = len(in_mask)
    everywhere = np.ones_like(in_mask)
    fallback_u = float(pooled_variances(unlearned_phi, in_mask)[0])
    fallback_r = float(pooled_variances(retrained_phi, everywhere)[0])
    positives, negatives, per_shadow = [], [], []
    for k in range(K):
        others = np.arange(K) != k
        columns = in_mask[k] & in_mask[others].any(axis=0)
        if not columns.any():
            continue
        u_phi, u_mask, r_phi = unlearned_phi[others][:, columns], in_mask[others][:, columns], retrained_phi[others][:, columns]
        fit = (u_phi, u_mask, r_phi, pooled_variances(u_phi, u_mask, variance, fallback=fallback_u),
               pooled_variances(r_phi, everywhere[others][:, columns], variance, fallback=fallback_r))
        pos = likelihood_ratio(unlearned_phi[k, columns], *fit)
        neg = likelihood_ratio(retrained_phi[k, columns], *fit)
        positives.append(pos)
        negatives.append(neg)
        per_shadow.append(accuracy_auc(pos, neg)[0])
    if not positives:
        return float("nan"), float("nan"), []
    acc, auc = accuracy_auc(np.concatenate(positives), np.concatenate(negatives))
    return acc, auc, per_shadow


@AUDITS.register("ulira")
def ulira_audit(model: nn.Module, task: Task, split: Split, ctx: AuditContext) -> dict[str, float]:
    """U-LiRA on the method that produced ``model`` (``ctx.unlearner``); see the module docstring."""
    config = ulira_config(ctx.options.get("ulira"))
    if ctx.unlearner is None:
        raise ConfigError("the ulira audit unlearns shadow models with the method under test and needs "
                          "AuditContext.unlearner ((model, split, seed) -> unlearned model); the benchmark sets it "
                          "per cell")
    start = time.perf_counter()
    population, trained = shadow_population(task, split, ctx, config)
    in_mask = population.in_mask.copy()
    unlearned_phi = np.zeros_like(population.retrained_phi)
    diverged = 0
    for k, shadow in enumerate(population.originals):
        shadow_split = population.split(split, k)
        if shadow_split is None:
            in_mask[k] = False
            continue
        try:
            unlearned = ctx.unlearner(copy.deepcopy(shadow), shadow_split, ctx.seed * 1000 + UNLEARN_SEED_OFFSET + k)
        except DivergenceError as exc:
            log.warning("ulira: the unlearning of shadow %d diverged (%s); left out", k, exc)
            diverged += 1
            in_mask[k] = False
            continue
        finally:
            trained += 1
        unlearned_phi[k] = phi_of(unlearned, task, split.forget, ctx)
        del unlearned
    acc, auc, per_shadow = held_out_game(unlearned_phi, in_mask, population.retrained_phi, config.variance)
    metrics = {"ulira_acc": acc, "ulira_auc": auc}
    covered = in_mask.any(axis=0)
    if ctx.retrain is not None and covered.any():
        target_phi = phi_of(model, task, split.forget, ctx)[covered]
        reference_phi = phi_of(ctx.retrain, task, split.forget, ctx)[covered]
        u_phi, u_mask, r_phi = unlearned_phi[:, covered], in_mask[:, covered], population.retrained_phi[:, covered]
        fit = (u_phi, u_mask, r_phi, pooled_variances(u_phi, u_mask, config.variance),
               pooled_variances(r_phi, np.ones_like(u_mask), config.variance))
        metrics["ulira_target_acc"], metrics["ulira_target_auc"] = accuracy_auc(
            likelihood_ratio(target_phi, *fit), likelihood_ratio(reference_phi, *fit))
    ctx.curves["ulira"] = {"shadow_acc": compact(per_shadow)}
    metrics.update({
        "ulira_shadows": float(config.shadows),
        "ulira_diverged": float(diverged),
        "ulira_models_trained": float(trained),
        "ulira_seconds": time.perf_counter() - start,
        "ulira_shadow_seconds": population.seconds,
    })
    return metrics
