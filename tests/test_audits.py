import numpy as np
import pytest
import torch
from torch import nn

from unlearnkit import audit, avg_gap
from unlearnkit.audits.mia import svc_mia_efficacy


class Constant(nn.Module):
    """Predicts class ``k`` for every input, with a fixed confidence."""

    def __init__(self, k, classes=10):
        super().__init__()
        self.k, self.classes = k, classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(len(x), self.classes) + self.dummy
        logits[:, self.k] = 5.0
        return logits


def test_accuracy_on_constant_model(task, class_split):
    # predicts 0 everywhere: forget (all class 0) is 100% right, retain 0% right
    metrics = audit(Constant(0), task, class_split, ["accuracy"])
    assert metrics["ua"] == 0.0
    assert metrics["ra"] == 0.0
    assert metrics["ta"] == 0.0  # the test set of remaining classes has no 0
    assert metrics["ta_forget"] == 100.0


def test_mia_on_separable_confidences():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.95, 1.0, 200)
    non_members = rng.uniform(0.0, 0.3, 200)
    assert svc_mia_efficacy(members, non_members, rng.uniform(0.0, 0.3, 50)) == 100.0
    assert svc_mia_efficacy(members, non_members, rng.uniform(0.95, 1.0, 50)) == 0.0
    half = np.concatenate([rng.uniform(0.0, 0.3, 25), rng.uniform(0.95, 1.0, 25)])
    assert svc_mia_efficacy(members, non_members, half) == 50.0


def test_mia_audit_on_real_model(trained_mlp, task, class_split):
    """The audit's numbers recomputed independently: SVC on p(y|x) of retain (members) vs test
    (non-members), efficacy on the forget set; AUC of −loss, forget vs held-out, via sklearn."""
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import SVC

    metrics = audit(trained_mlp, task, class_split, ["mia"])

    def probs(data):
        x, y = data.gather(torch.arange(len(data)))
        with torch.no_grad():
            return torch.softmax(trained_mlp(x), dim=1)[torch.arange(len(y)), y].double().numpy()

    n = min(len(class_split.retain), len(class_split.test))
    members, non_members = probs(class_split.retain)[:n], probs(class_split.test)[:n]
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(np.concatenate([members, non_members])[:, None],
                                                      np.r_[np.ones(n), np.zeros(n)])
    forget = probs(class_split.forget)
    assert metrics["mia_efficacy"] == pytest.approx(100.0 * (1.0 - attack.predict(forget[:, None]).mean()), abs=1e-9)
    held_out = probs(class_split.test_forget if class_split.test_forget is not None else class_split.test)
    expected_auc = roc_auc_score(np.r_[np.ones(len(forget)), np.zeros(len(held_out))],
                                 np.log(np.r_[forget, held_out]))
    assert metrics["mia_auc"] == pytest.approx(expected_auc, abs=1e-6)


def test_avg_gap_known_answer():
    ours = {"ua": 10, "ra": 90, "ta": 80, "mia_efficacy": 20, "seconds": 3}
    ref = {"ua": 14, "ra": 92, "ta": 80, "mia_efficacy": 10}
    assert avg_gap(ours, ref) == pytest.approx((4 + 2 + 0 + 10) / 4)
    assert avg_gap(ref, ref) == 0.0


def test_audit_with_reference_adds_gap(trained_mlp, task, class_split):
    metrics = audit(trained_mlp, task, class_split, reference={"ua": 100, "ra": 100, "ta": 100, "mia_efficacy": 100})
    assert "avg_gap" in metrics and metrics["avg_gap"] > 0


def test_unknown_audit_lists_known(trained_mlp, task, class_split):
    from unlearnkit import ConfigError

    with pytest.raises(ConfigError, match="known: .*accuracy"):
        audit(trained_mlp, task, class_split, ["accuracy", "nope"])


def test_gaps_to_retrain_include_attack_gaps_and_normalised_rcd():
    from unlearnkit.audits.gap import gaps_to_retrain

    ours = {"ua": 10, "ra": 90, "ta": 80, "mia_efficacy": 20, "mia_auc": 0.7, "rcd": 4}
    ref = {"ua": 14, "ra": 92, "ta": 80, "mia_efficacy": 10, "mia_auc": 0.5, "rcd": 9}
    gaps = gaps_to_retrain(ours, ref)
    assert gaps["avg_gap"] == pytest.approx(4.0)
    assert gaps["mia_auc_gap"] == pytest.approx(0.2)
    assert gaps["rcd_rel"] == pytest.approx(5 / 10)
    assert "lira_auc_gap" not in gaps


def test_accuracy_splits_retain_into_adjacent_and_remote(trained_mlp, task, digits):
    """On a split with adjacent examples, RA is also reported on the adjacent and remote parts,
    each equal to a direct count; their size-weighted mean is RA."""
    from unlearnkit import make_split

    split = make_split(digits, "class:0")  # digits' group map: 6, 8, 9 are adjacent to 0
    assert split.related is not None
    m = audit(trained_mlp, task, split, ["accuracy"])

    def direct(idx):
        x, y = digits.train.x[idx], digits.train.y[idx]
        with torch.no_grad():
            return 100.0 * float((trained_mlp(x).argmax(1) == y).float().mean())

    remote = split.retain_idx[~torch.isin(split.retain_idx, split.related_idx)]
    assert m["adjacent_acc"] == pytest.approx(direct(split.related_idx))
    assert m["remote_acc"] == pytest.approx(direct(remote))
    n_adj, n_rem = len(split.related_idx), len(remote)
    assert m["ra"] == pytest.approx((m["adjacent_acc"] * n_adj + m["remote_acc"] * n_rem) / (n_adj + n_rem))
    assert "adjacent_acc" not in audit(trained_mlp, task, make_split(digits, "random:0.1"), ["accuracy"])
