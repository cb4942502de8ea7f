"""The LLM unlearning baselines (graddiff, npo, simnpo, idk, rmu): each objective against its formula
computed by an independent route (raw logits / softmax / hooks, not the Task seam), on the digits
classifier and on a tiny Llama; RMU's layer/parameter choices; end-to-end runs on both modalities."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from lm_helpers import answer_log_likelihood, memorised_lm
from unlearnkit import build_model, unlearn
from unlearnkit.data.dataset import iterate_batches
from unlearnkit.data.text import IGNORE
from unlearnkit.methods.api import build_config
from unlearnkit.methods.base import METHODS, RunContext
from unlearnkit.methods.reference_model import frozen_copy
from unlearnkit.methods.rmu import activation_mse, default_layer, default_trainable, token_mask
from unlearnkit.methods.training import TrainConfig, fit

BASELINES = ["graddiff", "npo", "simnpo", "idk", "rmu"]


def first_batch(data, n=64):
    return next(iter(iterate_batches(data, n)))


def objective_at(method, model, task, split, batches, move=0.0, **hp):
    """The method's objective on ``batches`` with its per-run state built as a run builds it (the
    frozen reference copied from ``model``), after moving ``model``'s parameters by ``move``·noise."""
    impl = METHODS.get(method)()
    config = build_config(method, **hp)
    state = impl.prepare(model, task, split, config, RunContext(generator=torch.Generator().manual_seed(0)))
    if move:
        perturb_(model, move)
    impl.set_train_mode(model, config)
    return impl.objective(model, task, batches, config, state).detach(), state


@torch.no_grad()
def perturb_(model, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g))


def max_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


# --- classifier: each objective equals its formula ------------------------------------------------

@pytest.mark.parametrize("beta", [0.1, 1.0, 4.0])
def test_npo_at_the_reference_is_two_over_beta_log_two(trained_mlp, task, class_split, beta):
    forget = first_batch(class_split.forget)
    loss, _ = objective_at("npo", copy.deepcopy(trained_mlp), task, class_split, {"forget": forget, "retain": forget},
                           beta=beta, alpha=0.0)
    assert float(loss) == pytest.approx(2.0 / beta * math.log(2.0), rel=1e-6)


def test_npo_objective_is_the_log_one_plus_ratio_formula(trained_mlp, task, class_split):
    x, y = first_batch(class_split.forget)
    xr, yr = first_batch(class_split.retain)
    beta, gamma, alpha = 0.5, 1.5, 0.7
    model = copy.deepcopy(trained_mlp)
    loss, state = objective_at("npo", model, task, class_split, {"forget": (x, y), "retain": (xr, yr)},
                               move=0.05, beta=beta, gamma=gamma, alpha=alpha)
    with torch.no_grad():
        p = F.softmax(model(x), dim=1).gather(1, y[:, None]).squeeze(1)            # π_θ(y|x)
        p_ref = F.softmax(trained_mlp(x), dim=1).gather(1, y[:, None]).squeeze(1)  # π_ref(y|x)
        npo = (2.0 / beta) * torch.log1p((p / p_ref) ** beta).mean()               # (2/β) E log(1 + (π/π_ref)^β)
        retain = F.cross_entropy(model(xr), yr)
    assert float((p / p_ref).log().abs().mean()) > 0.05   # the ratio is not 1: the check is not vacuous
    assert float(loss) == pytest.approx(float(gamma * npo + alpha * retain), rel=1e-5)
    assert max_diff(state["reference"], trained_mlp) == 0.0  # π_ref: the model as it was at the start


def test_graddiff_nll_objective(trained_mlp, task, class_split):
    x, y = first_batch(class_split.forget)
    xr, yr = first_batch(class_split.retain)
    model = copy.deepcopy(trained_mlp)
    loss, state = objective_at("graddiff", model, task, class_split, {"forget": (x, y), "retain": (xr, yr)},
                               move=0.05, gamma=2.0, alpha=0.5)
    assert state["reference"] is None  # no frozen copy for the NLL retain term
    with torch.no_grad():
        want = -2.0 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(xr), yr)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_graddiff_kl_is_zero_at_the_start_and_the_kl_formula_after(digits, task, class_split, trained_mlp):
    xr, yr = first_batch(class_split.retain)
    x, y = first_batch(class_split.forget)
    cnn = build_model("cnn", digits.input_shape, digits.num_classes, seed=0)
    fit(cnn, task, digits.train, TrainConfig(epochs=1, lr=0.05), RunContext())
    for model in (copy.deepcopy(trained_mlp), cnn):
        loss, _ = objective_at("graddiff", model, task, class_split, {"forget": (x, y), "retain": (xr, yr)},
                               retain_loss="kl", gamma=0.0)
        assert float(loss) == 0.0, type(model)
    # without frozen norm layers the batch statistics already make the CNN differ from its copy
    loss, _ = objective_at("graddiff", copy.deepcopy(cnn), task, class_split, {"forget": (x, y), "retain": (xr, yr)},
                           retain_loss="kl", gamma=0.0, freeze_norm=False)
    assert float(loss) > 1e-4
    # after a move: KL(π_ref ‖ π_θ) averaged over examples
    model = copy.deepcopy(trained_mlp)
    loss, _ = objective_at("graddiff", model, task, class_split, {"forget": (x, y), "retain": (xr, yr)},
                           move=0.1, retain_loss="kl", gamma=0.0)
    with torch.no_grad():
        p_ref = F.softmax(trained_mlp(xr), dim=1)
        kl = (p_ref * (p_ref.log() - F.log_softmax(model(xr), dim=1))).sum(1).mean()
    assert float(loss) == pytest.approx(float(kl), rel=1e-4)
    assert float(kl) > 1e-3


def test_idk_on_a_classifier_is_random_label_step_for_step(trained_mlp, task, class_split):
    for alpha in (1.0, 0.0):
        a = unlearn(trained_mlp, task, class_split, method="idk", epochs=2, lr=0.01, grad_clip=0.0,
                    alpha=alpha, freeze_norm=False)
        b = unlearn(trained_mlp, task, class_split, method="random_label", epochs=2, lr=0.01, retain_weight=alpha,
                    feed="paired", label_draw="other")  # idk's pairing and wrong-class draw (RL's former defaults)
        assert max_diff(a, b) == 0.0
    assert max_diff(a, trained_mlp) > 1e-3


def test_rmu_terms_at_the_start(trained_mlp, task, class_split):
    """Forget term = mean_x (‖h‖² − 2⟨h, c·u⟩ + c²)/d; retain term 0; ‖c·u‖ = k·mean‖h_ref‖ (relative)."""
    x, y = first_batch(class_split.forget)
    xr, yr = first_batch(class_split.retain)
    model = copy.deepcopy(trained_mlp)
    assert default_layer(model) == "4"   # mlp: Flatten, Linear, ReLU, Linear, ReLU (features), Linear (head)
    ctx = RunContext(generator=torch.Generator().manual_seed(0))
    impl, config = METHODS.get("rmu")(), build_config("rmu", steering_coeff=3.0, alpha=0.0, norm_batches=100)
    state = impl.prepare(model, task, class_split, config, ctx)
    features = torch.nn.Sequential(*list(trained_mlp)[:5])
    with torch.no_grad():
        h = features(x)
        all_h = torch.cat([features(b[0]) for b in iterate_batches(class_split.forget, config.batch_size)])
    control = state["control"]
    c = float(control.norm())
    assert c == pytest.approx(3.0 * float(all_h.norm(dim=1).mean()), rel=1e-5)
    assert bool((control >= 0).all())          # u ∝ a draw from U[0,1)^d
    forget = impl.objective(model, task, {"forget": (x, y), "retain": (xr, yr)}, config, state)
    d = h.shape[1]
    want = ((h ** 2).sum(1) - 2 * h @ control + c ** 2).mean() / d
    assert float(forget.detach()) == pytest.approx(float(want), rel=1e-5)
    config = build_config("rmu", alpha=1.0, steering="absolute", steering_coeff=5.0)
    state = impl.prepare(copy.deepcopy(trained_mlp), task, class_split, config, ctx)
    assert float(state["control"].norm()) == pytest.approx(5.0)
    with torch.no_grad():
        total = impl.objective(model, task, {"forget": (x, y), "retain": (xr, yr)}, config, state)
        retain = total - activation_mse(features(x), state["control"], None)
    assert abs(float(retain)) < 1e-6


def test_rmu_updates_only_the_trainable_layers(trained_mlp, task, class_split):
    out = unlearn(trained_mlp, task, class_split, method="rmu", epochs=2, trainable_layers="3")
    for (name, p), q in zip(out.named_parameters(), trained_mlp.parameters()):
        moved = float((p - q).detach().abs().max())
        assert (moved > 0) == name.startswith("3."), name
        assert p.requires_grad  # restored after the run
    # auto on the digits CNN: every parameterised module up to the features; the head stays, and
    # with frozen norm layers the BatchNorm statistics stay too
    cnn = build_model("cnn", (1, 8, 8), 10, seed=0)
    assert default_layer(cnn) == "11"
    assert default_trainable(cnn, "11") == ["0", "1", "3", "4", "7", "8"]
    out = unlearn(cnn, task, class_split, method="rmu", epochs=1)
    assert torch.equal(out[12].weight, cnn[12].weight) and torch.equal(out[12].bias, cnn[12].bias)
    assert not torch.equal(out[0].weight, cnn[0].weight)
    for (name, b), (_, b0) in zip(out.named_buffers(), cnn.named_buffers()):
        assert torch.equal(b, b0), name


def test_configs_reject_bad_values():
    from unlearnkit.errors import ConfigError

    for method, bad in [("graddiff", {"retain_loss": "mse"}), ("npo", {"beta": 0.0}),
                        ("rmu", {"steering": "huge"})]:
        with pytest.raises(ConfigError):
            build_config(method, **bad)


# At the calibrated image defaults (relative steps, docs/calibration.md) simnpo and rmu forget this
# briefly trained MLP as they are; graddiff and npo stay at forget accuracy 0.94 (their calibrated
# lr meets the criterion on 6 of 8 calibration cells) and need a larger relative step here.
MLP_STEPS = {"graddiff": {"lr": 5e-4}, "npo": {"lr": 5e-4}}


@pytest.mark.parametrize("method", BASELINES)
def test_end_to_end_on_digits_forgets(trained_mlp, task, class_split, method):
    forget = first_batch(class_split.forget, 1000)
    before = float(task.correct(trained_mlp, forget).mean())
    out = unlearn(trained_mlp, task, class_split, method=method, **MLP_STEPS.get(method, {}))
    with torch.no_grad():
        after = float(task.correct(out.eval(), forget).mean())
        retain = float(task.correct(out, first_batch(class_split.retain, 1000)).mean())
    assert before > 0.95
    assert after < 0.5, (method, after)
    assert retain > 0.8, (method, retain)


# --- text: a tiny Llama that has memorised a few QA rows ------------------------------------------

@pytest.fixture(scope="module")
def lm():
    return memorised_lm()


def test_text_npo_and_simnpo_formulas(lm):
    task, split, model = lm
    forget = first_batch(split.forget)
    batches = {"forget": forget, "retain": first_batch(split.retain, 4)}
    loss, _ = objective_at("npo", copy.deepcopy(model), task, split, batches, alpha=0.0, beta=0.1)
    assert float(loss) == pytest.approx(20 * math.log(2), rel=1e-5)
    beta, delta = 4.5, 0.3
    loss, state = objective_at("simnpo", copy.deepcopy(model), task, split, batches, alpha=0.0, gamma=1.0,
                               beta=beta, delta=delta)
    assert state["reference"] is None  # reference-free
    with torch.no_grad():
        ll, length = answer_log_likelihood(model, forget)
    assert len(set(length.tolist())) > 1   # answers of different lengths: the normalisation matters
    want = -(2 / beta) * F.logsigmoid(-beta * ll / length - delta).mean()
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    unnormalised = -(2 / beta) * F.logsigmoid(-beta * ll - delta).mean()
    assert abs(float(want - unnormalised)) > 1e-3


def test_text_graddiff_kl_starts_at_zero(lm):
    task, split, model = lm
    batches = {"forget": first_batch(split.forget), "retain": first_batch(split.retain, 8)}
    loss, _ = objective_at("graddiff", copy.deepcopy(model), task, split, batches, retain_loss="kl", gamma=0.0)
    assert abs(float(loss)) < 1e-6


def test_text_rmu_masks_to_answer_tokens_and_defaults_to_the_middle_block(lm):
    task, split, model = lm
    assert default_layer(model) == "model.layers.1"
    assert default_trainable(model, "model.layers.1") == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    batch = first_batch(split.forget)
    with torch.no_grad():
        h = task.hidden(model, batch, "model.layers.1")
    mask = token_mask(batch, h)
    assert torch.equal(mask, batch[1] != IGNORE)
    target = torch.rand(h.shape[-1])
    base = activation_mse(h, target, mask)
    changed = h.clone()
    changed[~mask] += 100.0                 # prompt and padding positions do not count
    assert float(activation_mse(changed, target, mask)) == pytest.approx(float(base))
    per_row = [((h[i][mask[i]] - target) ** 2).mean() for i in range(len(h))]
    assert float(base) == pytest.approx(float(torch.stack(per_row).mean()), rel=1e-5)


@pytest.mark.parametrize("method", BASELINES)
def test_text_methods_move_the_forget_loss(lm, method):
    task, split, model = lm
    forget = first_batch(split.forget)
    ctx = RunContext()
    out = unlearn(model, task, split, method=method, ctx=ctx, optimizer="adamw", lr=3e-3, epochs=4, batch_size=4)
    with torch.no_grad():
        before, after = float(task.loss(model, forget).mean()), float(task.loss(out, forget).mean())
    if method == "rmu":
        steps = ctx.trace["rmu_forget"]
        assert steps[-1] < 0.9 * steps[0]                  # forget activations move towards c·u
        assert after > before
    elif method == "idk":
        refusal = task.relabel(forget, torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert float(task.loss(out, refusal).mean()) < float(task.loss(model, refusal).mean())
        assert after > before
    else:
        assert after > before + 0.1, (method, before, after)


def test_frozen_copy_is_detached(trained_mlp):
    ref = frozen_copy(trained_mlp)
    assert not ref.training and not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in trained_mlp.parameters())
    assert max_diff(ref, trained_mlp) == 0.0
