"""IdkDPO: the DPO term −log σ(β((log π(y_idk) − log π_ref(y_idk)) − (log π(y_f) − log π_ref(y_f)))) by an
independent route (raw logits / softmax), log 2 at the start, OpenUnlearning's (2/β) scale and retain
term in the objective; end-to-end runs on a classifier and a tiny Llama."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from lm_helpers import answer_log_likelihood, memorised_lm
from unlearnkit import unlearn
from unlearnkit.data.dataset import iterate_batches
from unlearnkit.data.text import IGNORE
from unlearnkit.errors import ConfigError
from unlearnkit.methods.api import build_config
from unlearnkit.methods.base import METHODS, RunContext
from unlearnkit.methods.idk_dpo import dpo_terms


def first_batch(data, n=64):
    return next(iter(iterate_batches(data, n)))


def objective_at(model, task, split, batches, move=0.0, seed=0, **hp):
    """The objective on ``batches`` with the run state built as a run builds it (π_ref copied from
    ``model``), after moving ``model`` by ``move``·noise."""
    impl = METHODS.get("idk_dpo")()
    config = build_config("idk_dpo", **hp)
    state = impl.prepare(model, task, split, config, RunContext(generator=torch.Generator().manual_seed(seed)))
    if move:
        with torch.no_grad():
            g = torch.Generator().manual_seed(1)
            for p in model.parameters():
                p.add_(move * torch.randn(p.shape, generator=g))
    impl.set_train_mode(model, config)
    return impl.objective(model, task, batches, config, state).detach(), state


def test_registered_with_openunlearning_defaults():
    assert "idk_dpo" in METHODS.names()
    config = build_config("idk_dpo")
    assert (config.beta, config.gamma, config.alpha, config.retain_loss) == (0.1, 1.0, 1.0, "nll")
    with pytest.raises(ConfigError):
        build_config("idk_dpo", beta=0.0)


def test_dpo_term_formula():
    rw, rl = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.0, -1.0, 3.0])
    beta = 0.1
    want = [-math.log(1 / (1 + math.exp(-beta * (a - b)))) for a, b in zip(rw.tolist(), rl.tolist())]
    assert dpo_terms(rw, rl, beta).tolist() == pytest.approx(want)
    assert float(dpo_terms(rw, rl, beta)[0]) == pytest.approx(math.log(2))


# --- classifier -------------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_classifier_starts_at_log_two(trained_mlp, task, class_split, beta):
    forget = first_batch(class_split.forget)
    loss, _ = objective_at(copy.deepcopy(trained_mlp), task, class_split, {"forget": forget, "retain": forget},
                           beta=beta, alpha=0.0)
    assert float(loss) == pytest.approx(2.0 / beta * math.log(2.0), rel=1e-6)   # (2/β)·ℓ_DPO, ℓ_DPO = log 2


def test_classifier_objective_by_hand(trained_mlp, task, class_split):
    x, y = first_batch(class_split.forget)
    xr, yr = first_batch(class_split.retain)
    beta, gamma, alpha = 0.5, 1.5, 0.7
    model = copy.deepcopy(trained_mlp)
    loss, state = objective_at(model, task, class_split, {"forget": (x, y), "retain": (xr, yr)}, move=0.05,
                               seed=3, beta=beta, gamma=gamma, alpha=alpha)
    # the preferred label: the relabelling the run draws first with its seeded generator
    _, y_win = task.relabel((x, y), generator=torch.Generator().manual_seed(3))
    assert bool((y_win != y).all())
    with torch.no_grad():
        log_p = F.log_softmax(model(x), dim=1)
        log_p_ref = F.log_softmax(trained_mlp(x), dim=1)
        r_w = log_p.gather(1, y_win[:, None]).squeeze(1) - log_p_ref.gather(1, y_win[:, None]).squeeze(1)
        r_l = log_p.gather(1, y[:, None]).squeeze(1) - log_p_ref.gather(1, y[:, None]).squeeze(1)
        term = -torch.log(torch.sigmoid(beta * (r_w - r_l)))
        want = gamma * (2 / beta) * term.mean() + alpha * F.cross_entropy(model(xr), yr)
    assert float((r_w - r_l).abs().mean()) > 0.05       # the policy moved: the check is not vacuous
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_classifier_end_to_end_forgets(trained_mlp, task, class_split):
    forget = first_batch(class_split.forget, 1000)
    out = unlearn(trained_mlp, task, class_split, method="idk_dpo")  # the calibrated image defaults
    with torch.no_grad():
        after = float(task.correct(out.eval(), forget).mean())
        retain = float(task.correct(out, first_batch(class_split.retain, 1000)).mean())
    assert after < 0.5 and retain > 0.8, (after, retain)


# --- text ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lm():
    return memorised_lm(refusals=("I don't know.", "I have no idea."))


def sequence_log_likelihood(model, batch):
    """Σ over answer tokens of log π(token | prefix), straight from the logits (not the Task)."""
    return answer_log_likelihood(model, batch)[0]


def refusal_batch(task, batch, seed):
    """The forget prompts answered by the refusals the run draws (its generator, seeded like the run's),
    built here from the token ids, not with ``task.relabel``."""
    choice = torch.randint(len(task.refusals), (len(batch[0]),), generator=torch.Generator().manual_seed(seed))
    rows = []
    for ids, labels, k in zip(*batch, choice.tolist()):
        prompt = ids[(labels == IGNORE) & (ids != task.pad_id)].tolist()
        reply = task.tokenizer(" " + task.refusals[k], add_special_tokens=False)["input_ids"] + [task.eos_id]
        rows.append((prompt + reply, [IGNORE] * len(prompt) + reply))
    width = max(len(r[0]) for r in rows)
    x = torch.full((len(rows), width), task.pad_id)
    y = torch.full((len(rows), width), IGNORE)
    for i, (a, b) in enumerate(rows):
        x[i, :len(a)], y[i, :len(b)] = torch.tensor(a), torch.tensor(b)
    return x, y


def test_text_at_the_reference_the_dpo_term_is_log_two(lm):
    task, split, model = lm
    forget = first_batch(split.forget)
    batches = {"forget": forget, "retain": first_batch(split.retain, 4)}
    loss, state = objective_at(copy.deepcopy(model), task, split, batches, alpha=0.0)
    assert float(loss) == pytest.approx(20 * math.log(2), rel=1e-5)            # (2/0.1)·log 2
    r_w, r_l = METHODS.get("idk_dpo")().log_ratios(model, task, forget, state)
    with torch.no_grad():
        assert dpo_terms(r_w, r_l, 0.1).tolist() == pytest.approx([math.log(2)] * len(forget[0]), rel=1e-5)


def test_text_objective_by_hand(lm):
    task, split, model = lm
    forget, retain = first_batch(split.forget), first_batch(split.retain, 4)
    beta, gamma, alpha = 0.1, 1.0, 1.0
    moved = copy.deepcopy(model)
    loss, _ = objective_at(moved, task, split, {"forget": forget, "retain": retain}, move=0.02, seed=5)
    win = refusal_batch(task, forget, seed=5)
    with torch.no_grad():
        r_w = sequence_log_likelihood(moved, win) - sequence_log_likelihood(model, win)
        r_l = sequence_log_likelihood(moved, forget) - sequence_log_likelihood(model, forget)
        dpo = -torch.log(torch.sigmoid(beta * (r_w - r_l)))        # −log σ(β((logπ−logπ_ref)(y_idk) − (…)(y_f)))
        ll_r = sequence_log_likelihood(moved, retain)
        nll_r = (-ll_r / (retain[1][:, 1:] != IGNORE).sum(1)).mean()
        want = gamma * (2 / beta) * dpo.mean() + alpha * nll_r
    assert float((r_w - r_l).abs().mean()) > 0.01
    assert float(loss) == pytest.approx(float(want), rel=1e-4)


def test_text_end_to_end_prefers_the_refusal(lm):
    task, split, model = lm
    forget = first_batch(split.forget)
    out = unlearn(model, task, split, method="idk_dpo", epochs=3, lr=3e-3, batch_size=4)
    win = refusal_batch(task, forget, seed=0)
    with torch.no_grad():
        margin_before = sequence_log_likelihood(model, win) - sequence_log_likelihood(model, forget)
        margin_after = sequence_log_likelihood(out, win) - sequence_log_likelihood(out, forget)
    assert float((margin_after - margin_before).mean()) > 1.0       # the refusal gained on the forget answer
