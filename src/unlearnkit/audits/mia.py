"""Membership-inference audits.

``mia_efficacy`` — the SVC confidence attack of Unlearn-Sparse (Jia et al. 2023) and SalUn
(Fan et al. 2024): an RBF SVC (C=3, gamma='auto') is trained on the true-label softmax
confidence of *members* (the first |test| retain examples, label 1) against *non-members*
(the test set, label 0), then applied to the forget set. MIA-Efficacy = 100 × the fraction of
forget examples predicted **non-member**. Compare with retrain's value (≈100 for class-wise
forgetting, lower for random forgetting).

``mia_auc`` / ``mia_tpr1`` — the loss-threshold attack (Yeom et al. 2018) in the standard
member/non-member framing: score = −loss; members = the forget set, non-members = held-out
examples of the same distribution (the test examples of the forgotten classes for class-wise
and sub-class forgetting, the test set otherwise). ROC-AUC (0.5 = cannot tell) and the TPR at
1 % FPR (the low-error regime privacy reviewers ask for). An unlearned model should score
like ``retrain``; the benchmark reports the gap. The attack's ROC curve (≤ 100 points) is left
in ``ctx.curves["mia"]`` (``fpr``, ``tpr``).
"""
from __future__ import annotations

import numpy as np
from torch import nn

from ..data.dataset import subset
from ..data.split import Split
from ..tasks.base import Task
from .base import AUDITS, AuditContext, compact, per_example, thin


def svc_mia_efficacy(members: np.ndarray, non_members: np.ndarray, target: np.ndarray) -> float:
    """Fit the SVC on 1-D member/non-member features; return % of ``target`` predicted non-member."""
    from sklearn.svm import SVC  # scikit-learn is imported only when an attack runs

    features = np.concatenate([members, non_members]).reshape(-1, 1)
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    attack = SVC(C=3, gamma="auto", kernel="rbf")
    attack.fit(features, labels)
    predicted_member = attack.predict(np.asarray(target).reshape(-1, 1))
    return 100.0 * float(1.0 - predicted_member.mean())


def attack_roc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """ROC-AUC, TPR at 1 % FPR, and the ROC curve (FPR, TPR) of a score where higher means "member"."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.concatenate([member_scores, non_member_scores])
    labels = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    auc = float(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    tpr_at_1 = float(np.interp(0.01, fpr, tpr))
    return auc, tpr_at_1, fpr, tpr


def attack_auc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> tuple[float, float]:
    """ROC-AUC and TPR at 1 % FPR of a score where higher means "member"."""
    auc, tpr_at_1, _, _ = attack_roc(member_scores, non_member_scores)
    return auc, tpr_at_1


def roc_record(fpr: np.ndarray, tpr: np.ndarray) -> dict:
    """The ROC curve as a small JSON-ready dict (≤ 100 of its vertices, thinned evenly, ends kept)."""
    keep = thin(len(fpr))
    return {"fpr": compact(fpr[keep]), "tpr": compact(tpr[keep])}


def non_members_for(split: Split):
    """Held-out examples from the forget set's own distribution."""
    return split.test_forget if split.test_forget is not None else split.test


@AUDITS.register("mia")
def mia_audit(model: nn.Module, task: Task, split: Split, ctx: AuditContext) -> dict[str, float]:
    n = min(len(split.retain), len(split.test))
    log_lik = task.log_likelihood
    confidence = lambda m, b: log_lik(m, b).exp()  # noqa: E731  p(y|x)
    forget_ll = per_example(model, task, split.forget, log_lik, ctx).numpy()
    efficacy = svc_mia_efficacy(
        per_example(model, task, subset(split.retain, range(n)), confidence, ctx).numpy(),
        per_example(model, task, subset(split.test, range(n)), confidence, ctx).numpy(),
        np.exp(forget_ll),
    )
    held_out_ll = per_example(model, task, non_members_for(split), log_lik, ctx).numpy()
    auc, tpr, fpr_curve, tpr_curve = attack_roc(forget_ll, held_out_ll)  # score = −loss = log-likelihood
    ctx.curves["mia"] = roc_record(fpr_curve, tpr_curve)
    return {"mia_efficacy": efficacy, "mia_auc": auc, "mia_tpr1": 100.0 * tpr}
