import copy

import numpy as np
import pytest
import torch

from unlearnkit import audit, build_model, fit, unlearn
from unlearnkit.audits.base import AuditContext
from unlearnkit.audits.lira import lira_scores, logit_confidence
from unlearnkit.audits.mia import attack_auc
from unlearnkit.audits.weights import weight_distances
from unlearnkit.methods import RunContext, TrainConfig


def test_loss_attack_separable_and_identical():
    rng = np.random.default_rng(0)
    auc, tpr = attack_auc(rng.uniform(2, 3, 300), rng.uniform(0, 1, 300))
    assert auc == 1.0 and tpr == 1.0
    auc, tpr = attack_auc(rng.normal(0, 1, 4000), rng.normal(0, 1, 4000))
    assert abs(auc - 0.5) < 0.03 and tpr < 0.05


def test_mia_audit_reports_attack_on_memorising_model(trained_mlp, task, class_split):
    metrics = audit(trained_mlp, task, class_split, ["mia"])
    assert set(metrics) == {"mia_efficacy", "mia_auc", "mia_tpr1"}
    # the numbers recomputed independently: the loss attack's ROC on −loss, forget (members) vs the
    # held-out examples of the forget class, through sklearn
    from sklearn.metrics import roc_auc_score, roc_curve

    def log_likelihood(data):
        x, y = data.gather(torch.arange(len(data)))
        with torch.no_grad():
            return torch.log_softmax(trained_mlp(x), dim=1)[torch.arange(len(y)), y].double().numpy()

    held_out = class_split.test_forget if class_split.test_forget is not None else class_split.test
    scores = np.r_[log_likelihood(class_split.forget), log_likelihood(held_out)]
    labels = np.r_[np.ones(len(class_split.forget)), np.zeros(len(held_out))]
    assert metrics["mia_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    fpr, tpr, _ = roc_curve(labels, scores)
    assert metrics["mia_tpr1"] == pytest.approx(100.0 * float(np.interp(0.01, fpr, tpr)), abs=1e-6)


def test_logit_confidence_is_stable():
    ll = torch.log(torch.tensor([0.5, 0.9, 1e-8, 1 - 1e-12]))
    phi = logit_confidence(ll)
    assert torch.isfinite(phi).all()
    assert phi[0].abs() < 1e-6 and phi[1] == pytest.approx(np.log(9), rel=1e-6)


@pytest.mark.parametrize("variance", ["global", "per_example"])
def test_lira_recovers_planted_membership(variance):
    rng = np.random.default_rng(1)
    shadows, n = 16, 400
    in_mask = np.zeros((shadows, n), bool)
    for j in range(n):
        in_mask[rng.permutation(shadows)[: shadows // 2], j] = True
    # per-example difficulty, plus a membership shift of +2 when IN
    base = rng.normal(0, 3, n)
    shadow_phi = base + 2.0 * in_mask + rng.normal(0, 0.5, (shadows, n))
    members = np.arange(n) < n // 2
    target_phi = base + 2.0 * members + rng.normal(0, 0.5, n)
    scores = lira_scores(target_phi, shadow_phi, in_mask, variance=variance)
    auc, _ = attack_auc(scores[members], scores[~members])
    assert auc > 0.95
    # no planted signal in the target: chance
    scores = lira_scores(base + 1.0 + rng.normal(0, 0.5, n), shadow_phi, in_mask, variance=variance)
    auc, _ = attack_auc(scores[members], scores[~members])
    assert abs(auc - 0.5) < 0.1


def test_lira_audit_end_to_end_with_shadow_cache(trained_mlp, task, digits):
    from unlearnkit import make_split

    split = make_split(digits, "random:0.05")
    trained = []

    def trainer(data, seed):
        trained.append(seed)
        model = build_model("mlp", digits.input_shape, digits.num_classes, seed=seed)
        return fit(model, task, data, TrainConfig(epochs=3, lr=0.05, seed=seed), RunContext())

    ctx = AuditContext(trainer=trainer, seed=0)
    first = audit(trained_mlp, task, split, ["lira"], ctx=ctx)
    second = audit(trained_mlp, task, split, ["lira"], ctx=ctx)
    assert len(trained) == 4  # shadows trained once, then reused from the cache
    assert first == second and 0.0 <= first["lira_auc"] <= 1.0


def test_weight_distances_known_answer():
    a = torch.nn.Linear(2, 1, bias=False)
    b = copy.deepcopy(a)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[3.0, 4.0]]))
        b.weight.copy_(torch.tensor([[0.0, 4.0]]))
    out = weight_distances(a, b, "original")
    assert out["w_l2_original"] == pytest.approx(3.0)
    assert out["w_cos_original"] == pytest.approx(16 / 20)
    assert out["w_l2_original.weight"] == pytest.approx(3.0)
    same = weight_distances(a, a, "original")
    assert same["w_l2_original"] == 0.0 and same["w_cos_original"] == pytest.approx(1.0)


def test_weights_audit_uses_context_models(trained_mlp, task, class_split):
    moved = unlearn(trained_mlp, task, class_split, method="ga", epochs=1, lr=0.01)
    metrics = audit(moved, task, class_split, ["weights"], ctx=AuditContext(original=trained_mlp))
    assert metrics["w_l2_original"] > 0 and "w_l2_retrain" not in metrics
    assert audit(trained_mlp, task, class_split, ["weights"], ctx=AuditContext(original=trained_mlp))["w_l2_original"] == 0
