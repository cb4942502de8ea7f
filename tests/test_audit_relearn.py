"""Relearning convergence delay (audits/relearn.py): known answers, censoring, determinism."""
import copy
import math
from dataclasses import replace

import pytest
import torch

from unlearnkit import make_split
from unlearnkit.audits.base import AUDITS, AuditContext, per_example
from unlearnkit.audits.relearn import (
    RelearnConfig, normalise_rcd, relearn_audit, relearn_curve, relearn_subset,
)
from unlearnkit.errors import ConfigError


@pytest.fixture(scope="module")
def forgotten(trained_mlp):
    """A hand-made 'unlearned' model: the class-0 logit pushed down by 12, so the forget set
    (class 0) is misclassified but relearnable by moving the head."""
    model = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        model[-1].bias[0] -= 12.0
    return model


def _acc(model, task, data):
    return 100.0 * float(per_example(model, task, data, task.correct, AuditContext()).mean())


def _loss(model, task, data):
    return float(per_example(model, task, data, task.loss, AuditContext()).mean())


def test_registered():
    assert AUDITS.get("relearn") is relearn_audit


def test_original_has_rcd_zero(trained_mlp, task, class_split):
    ctx = AuditContext(original=trained_mlp)
    metrics = relearn_audit(copy.deepcopy(trained_mlp), task, class_split, ctx)
    assert metrics["rcd"] == 0.0 and metrics["rcd_reached"] == 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    # the default threshold is 0.9 × the original's forget accuracy, computed independently here
    assert metrics["rcd_threshold"] == pytest.approx(0.9 * _acc(trained_mlp, task, class_split.forget))


def test_never_reached_is_capped_and_flagged(forgotten, trained_mlp, task, class_split):
    config = RelearnConfig(lr=0.0, steps=7)
    curve = relearn_curve(forgotten, task, class_split.forget, config, original=trained_mlp)
    assert not curve.reached and curve.rcd == 7
    assert len(curve.forget_acc) == 8 and len(set(curve.forget_acc)) == 1  # lr 0: nothing moves
    assert curve.weight_distance == [0.0] * 8
    metrics = relearn_audit(forgotten, task, class_split, AuditContext(original=trained_mlp), config)
    assert metrics["rcd"] == 7.0 and metrics["rcd_reached"] == 0.0


def test_rcd_is_first_step_over_threshold(forgotten, trained_mlp, task, class_split):
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(lr=0.05, steps=40), original=trained_mlp)
    first = next(t for t, a in enumerate(curve.forget_acc) if a >= curve.threshold)
    assert curve.reached and curve.rcd == first > 0
    # the model relearns: accuracy ends high, loss falls (mostly step by step; not asserted strictly)
    assert curve.forget_acc[0] < 50.0 and curve.forget_acc[-1] >= curve.threshold
    assert curve.forget_loss[-1] < 0.5 * curve.forget_loss[0]
    falls = sum(b <= a for a, b in zip(curve.forget_loss, curve.forget_loss[1:]))
    assert falls >= 0.8 * (len(curve.forget_loss) - 1)
    assert curve.weight_distance[0] == 0.0 and curve.weight_distance[-1] > 0.0


def test_curve_entries_match_independent_evaluation(forgotten, task, class_split):
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(steps=0))
    assert curve.forget_acc == [pytest.approx(_acc(forgotten, task, class_split.forget))]
    assert curve.forget_loss == [pytest.approx(_loss(forgotten, task, class_split.forget), rel=1e-5)]
    # one GD step by hand equals the curve's second point
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(lr=0.05, steps=1))
    stepped = copy.deepcopy(forgotten)
    x, y = class_split.forget.gather(torch.arange(len(class_split.forget)))
    loss = task.loss(stepped, (x, y)).mean()
    grads = torch.autograd.grad(loss, list(stepped.parameters()))
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), grads):
            p -= 0.05 * g
    assert curve.forget_loss[1] == pytest.approx(_loss(stepped, task, class_split.forget), rel=1e-4)


def test_input_model_is_untouched(forgotten, task, class_split):
    before = copy.deepcopy(forgotten.state_dict())
    relearn_curve(forgotten, task, class_split.forget, RelearnConfig(lr=0.1, steps=3))
    assert all(torch.equal(before[k], v) for k, v in forgotten.state_dict().items())


def test_absolute_threshold_and_no_original(forgotten, task, class_split):
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(threshold=0.0, steps=3))
    assert curve.rcd == 0 and curve.reached  # any accuracy is >= 0
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(steps=0))
    assert curve.threshold == pytest.approx(90.0)  # no original: its accuracy is taken as 100%
    with pytest.raises(ConfigError):
        relearn_curve(forgotten, task, class_split.forget, RelearnConfig(criterion="loss", steps=0))


def test_loss_criterion(forgotten, trained_mlp, task, class_split):
    config = RelearnConfig(criterion="loss", loss_factor=2.0, lr=0.05, steps=60)
    curve = relearn_curve(forgotten, task, class_split.forget, config, original=trained_mlp)
    assert curve.threshold == pytest.approx(2.0 * _loss(trained_mlp, task, class_split.forget), rel=1e-5)
    if curve.reached:
        assert curve.forget_loss[curve.rcd] <= curve.threshold
        assert all(loss > curve.threshold for loss in curve.forget_loss[: curve.rcd])


def test_deterministic_given_seed(forgotten, trained_mlp, task, class_split):
    # mini-batches from a seeded subset: the seed decides the data, and the same seed repeats exactly
    config = RelearnConfig(batch_size=16, max_examples=64, lr=0.05, steps=10, seed=3)
    a = relearn_curve(forgotten, task, class_split.forget, config, original=trained_mlp)
    b = relearn_curve(forgotten, task, class_split.forget, config, original=trained_mlp)
    assert a.forget_loss == b.forget_loss and a.forget_acc == b.forget_acc and a.rcd == b.rcd
    other = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(batch_size=16, max_examples=64, lr=0.05,
                                                                             steps=10, seed=4), original=trained_mlp)
    assert other.forget_loss != a.forget_loss
    # the audit takes its seed from the context
    m1 = relearn_audit(forgotten, task, class_split, AuditContext(original=trained_mlp, seed=5))
    m2 = relearn_audit(forgotten, task, class_split, AuditContext(original=trained_mlp, seed=5))
    assert m1 == m2


def test_subset_is_seeded_and_sized(class_split):
    config = RelearnConfig(max_examples=20)
    a, b = relearn_subset(class_split.forget, config, 0), relearn_subset(class_split.forget, config, 0)
    assert len(a) == 20 and torch.equal(a.index, b.index)
    assert not torch.equal(a.index, relearn_subset(class_split.forget, config, 1).index)
    forget = class_split.forget
    assert relearn_subset(forget, RelearnConfig(max_examples=0), 0) is forget


def test_adam_and_train_mode_run(forgotten, task, class_split):
    for config in (RelearnConfig(optimizer="adam", lr=1e-2, steps=5), RelearnConfig(train_mode=True, steps=5)):
        curve = relearn_curve(forgotten, task, class_split.forget, config)
        assert len(curve.forget_acc) == 6 and curve.forget_loss[-1] < curve.forget_loss[0]


def test_stop_at_threshold_truncates(forgotten, task, class_split):
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(lr=0.05, steps=40, stop_at_threshold=True))
    assert curve.reached and len(curve.forget_acc) == curve.rcd + 1


def test_normalise_rcd():
    assert normalise_rcd(9, 9) == 1.0
    assert normalise_rcd(19, 9) == pytest.approx(2.0)  # (19 + 1) / (9 + 1)
    assert normalise_rcd(0, 0) == 1.0
    assert normalise_rcd(20, 10, offset=0) == 2.0
    assert math.isnan(normalise_rcd(3, 0, offset=0)) and normalise_rcd(0, 0, offset=0) == 1.0


def test_bad_config():
    with pytest.raises(ConfigError):
        RelearnConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError):
        RelearnConfig(criterion="auc")


def test_delay_rereads_a_curve(forgotten, trained_mlp, task, class_split):
    curve = relearn_curve(forgotten, task, class_split.forget, RelearnConfig(lr=0.05, steps=30), original=trained_mlp)
    assert curve.delay("acc", curve.threshold) == (curve.rcd, curve.reached)
    assert curve.delay("acc", 101.0) == (30, False)  # never: capped at the recorded budget
    level = curve.forget_loss[5]
    t, reached = curve.delay("loss", level)
    assert reached and t <= 5 and curve.forget_loss[t] <= level
    assert all(loss > level for loss in curve.forget_loss[:t])


def test_loss_rise_flags_an_unstable_relearning(trained_mlp, task, digits):
    split = make_split(digits, "random:0.1")
    ctx = AuditContext(original=trained_mlp)
    stable = relearn_audit(trained_mlp, task, split, ctx, RelearnConfig(lr=0.0, steps=3))
    assert stable["rcd_loss_rise"] == pytest.approx(0.0, abs=1e-5)
    unstable = relearn_audit(trained_mlp, task, split, ctx, RelearnConfig(lr=5.0, steps=5))  # GD overshoots
    assert unstable["rcd_loss_rise"] > 1.0


# --- the rescaled recipe (issue 16): normalisation-fed weights at the original's norms, median over an lr grid ---

from unlearnkit import build_model, fit  # noqa: E402
from unlearnkit.audits.relearn import (  # noqa: E402
    PLAIN, median_run, norm_fed_layers, relearn_grid, rescale_to_reference,
)
from unlearnkit.methods import RunContext, TrainConfig  # noqa: E402


@pytest.fixture(scope="module")
def cnn_pair(digits, task):
    """A small conv–BN network trained on digits, and a copy whose conv weights were shrunk 4× with
    the BatchNorm statistics following (the same function in eval mode; what a decay towards zero
    under batch norm leaves, at a 16× higher effective learning rate)."""
    original = build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    fit(original, task, digits.train, TrainConfig(epochs=2, lr=0.05), RunContext(generator=torch.Generator()))
    original.eval()
    shrunk = copy.deepcopy(original)
    with torch.no_grad():
        for index in (0, 3, 7):  # the three conv layers of models/classifiers.py small_cnn, each before a BatchNorm
            shrunk[index].weight.mul_(0.25)
            shrunk[index + 1].running_mean.mul_(0.25)
            shrunk[index + 1].running_var.mul_(0.0625)
    return original, shrunk


def _logits(model, data):
    return model(data.gather(torch.arange(len(data)))[0]).detach()


def test_norm_fed_layers_follow_the_data_flow(cnn_pair, trained_mlp, task, class_split):
    original, _ = cnn_pair
    assert norm_fed_layers(original, task, class_split.forget, AuditContext()) == {"0": ["1"], "3": ["4"], "7": ["8"]}
    assert norm_fed_layers(trained_mlp, task, class_split.forget, AuditContext()) == {}  # no norm layer


def test_rescaling_restores_the_norms_exactly(cnn_pair, task, class_split):
    original, shrunk = cnn_pair
    work = copy.deepcopy(shrunk).eval()
    with torch.no_grad():
        before = _logits(work, class_split.forget)
        count = rescale_to_reference(work, original, norm_fed_layers(work, task, class_split.forget, AuditContext()))
        after = _logits(work, class_split.forget)
    assert count == 3
    for index in (0, 3, 7):
        assert torch.linalg.vector_norm(work[index].weight).item() == pytest.approx(
            torch.linalg.vector_norm(original[index].weight).item(), rel=1e-6)
        assert torch.allclose(work[index].weight, original[index].weight, rtol=1e-5, atol=1e-7)  # direction kept too
        assert torch.allclose(work[index + 1].running_var, original[index + 1].running_var, rtol=1e-5)
    assert torch.equal(work[-1].weight, shrunk[-1].weight)  # the head feeds no norm layer: untouched
    with torch.no_grad():
        assert torch.allclose(after, _logits(original, class_split.forget), atol=1e-4)  # the original's scale again
    # the same function as before rescaling, up to the BatchNorm ε (1e-5, 16× larger against the shrunk variances)
    assert torch.allclose(before, after, atol=2e-2)


def test_audit_reports_the_median_over_the_grid(forgotten, trained_mlp, task, class_split):
    config = RelearnConfig(lr=0.02, steps=40, lr_grid=(0.5, 1.0, 2.0))
    metrics = relearn_audit(forgotten, task, class_split, AuditContext(original=trained_mlp), config)
    delays = [relearn_curve(forgotten, task, class_split.forget, RelearnConfig(lr=lr, steps=40, rescale=False),
                            original=trained_mlp).rcd for lr in (0.01, 0.02, 0.04)]
    assert len(set(delays)) == 3  # the grid matters here: three different delays
    assert metrics["rcd"] == sorted(delays)[1]
    assert (metrics["rcd_grid_min"], metrics["rcd_grid_max"]) == (min(delays), max(delays))
    assert metrics["rcd_rescaled"] == 0  # an MLP: nothing feeds a norm layer
    curves = relearn_grid(forgotten, task, class_split.forget, config, original=trained_mlp)
    assert [c.lr for c in curves] == [0.01, 0.02, 0.04] and [c.rcd for c in curves] == delays
    rcd, middle = median_run(curves)
    assert rcd == metrics["rcd"] and middle.rcd == rcd
    assert median_run(curves[:2])[0] == (delays[0] + delays[1]) / 2  # an even grid: the mean of the middle two


def _plain_gd_accuracies(model, task, data, lr, steps):
    """The earlier recipe by hand: full-batch SGD in eval mode, forget accuracy before each step."""
    work = copy.deepcopy(model).eval()
    optimizer = torch.optim.SGD(work.parameters(), lr=lr)
    x, y = data.gather(torch.arange(len(data)))
    accuracies = []
    for t in range(steps + 1):
        accuracies.append(_acc(work, task, data))
        if t == steps:
            break
        optimizer.zero_grad()
        task.loss(work, (x, y)).mean().backward()
        optimizer.step()
    return accuracies


def test_plain_recipe_is_the_earlier_one(cnn_pair, task, class_split):
    original, shrunk = cnn_pair
    forget = relearn_subset(class_split.forget, PLAIN, 0)
    config = replace(PLAIN, steps=6)
    curve = relearn_curve(shrunk, task, class_split.forget, config, original=original, ctx=AuditContext())
    assert curve.rescaled == 0
    assert curve.forget_acc == pytest.approx(_plain_gd_accuracies(shrunk, task, forget, 0.01, 6), abs=1e-9)
    metrics = relearn_audit(shrunk, task, class_split, AuditContext(original=original), config)
    assert metrics["rcd"] == curve.rcd and metrics["rcd_rescaled"] == 0
    assert metrics["rcd_grid_min"] == metrics["rcd_grid_max"] == curve.rcd
    # the default recipe rescales the three conv weights first, then relearns from the original's scale
    rescaled = relearn_audit(shrunk, task, class_split, AuditContext(original=original), replace(RelearnConfig(), steps=6))
    assert rescaled["rcd_rescaled"] == 3


def test_grid_config_checks():
    assert RelearnConfig(lr_grid=[1, 2]).lr_grid == (1.0, 2.0)
    for bad in ((), (-1.0,)):
        with pytest.raises(ConfigError):
            RelearnConfig(lr_grid=bad)
