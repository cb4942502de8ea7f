"""The benchmark on text: a user's local HF model as the original, TOFU-layout data, TOFU measures."""
import json

import torch

import pytest

pytest.importorskip("transformers").utils.logging.disable_progress_bar()

from lm_helpers import tiny_llama, tiny_tokenizer  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.models.hf import save_hf_model  # noqa: E402


def test_bench_with_a_local_hf_model_on_tofu_mini(tmp_path, capsys):
    tok = tiny_tokenizer()
    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "my-model")
    out = tmp_path / "run"
    code = main(["bench", "--data", "tofu-mini", "--hf-model", str(folder), "--forget", "forget05",
                 "--methods", "ga,entangle", "--audits", "accuracy,tofu", "--set", "train.epochs=1", "--quick",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "forget_quality" in printed and "model_utility" in printed
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["retrain", "ga", "entangle"]
    # entangle on text takes the retain QA nearest to the forget QA as its adjacent set
    assert records[2]["status"] == "ok" and records[2]["config"]["adjacency"] == "auto"
    assert records[1]["config"]["optimizer"] == "adamw"  # the text workload's method defaults
    assert records[0]["model"] == "hf:my-model"
    assert records[0]["metrics"]["forget_quality"] == 1.0  # retrain against itself
    for record in records[:2]:
        assert 0.0 <= record["metrics"]["model_utility"] <= 1.0
    assert (folder / "config.json").exists()  # the user's model folder is left as it was


def test_hf_model_is_refused_for_image_data(tmp_path, capsys):
    tok = tiny_tokenizer()
    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "m")
    assert main(["bench", "--data", "digits", "--hf-model", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "digits takes no options" in capsys.readouterr().err


def test_missing_hf_model_folder_is_named(tmp_path, capsys):
    assert main(["bench", "--data", "tofu-mini", "--hf-model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_loop_counts_answer_tokens_for_throughput():
    from lm_helpers import text_source

    from unlearnkit import CausalLMTask, make_split, unlearn
    from unlearnkit.data import iterate_batches
    from unlearnkit.methods import RunContext

    tok = tiny_tokenizer()
    source = text_source(tok, 16, 4)
    split = make_split(source, "forget")
    task = CausalLMTask(tok)
    ctx = RunContext()
    unlearn(tiny_llama(tok, seed=0), task, split, method="ga", epochs=2, batch_size=4, ctx=ctx)
    answer_tokens = sum(int(task.target_length(b).sum()) for b in iterate_batches(split.forget, 4))
    assert ctx.targets_seen == 2 * answer_tokens  # GA reads only the forget stream, twice


def test_relearn_on_text_thresholds_on_answer_probability():
    import copy

    from lm_helpers import memorise, text_source

    from unlearnkit import CausalLMTask, make_split
    from unlearnkit.audits import AuditContext
    from unlearnkit.audits.relearn import RelearnConfig, forget_stats, relearn_audit

    tok = tiny_tokenizer()
    source = text_source(tok, 16, 4)
    split = make_split(source, "forget")
    task = CausalLMTask(tok)
    fresh = tiny_llama(tok, seed=0)
    original = memorise(copy.deepcopy(fresh), tok, split.forget.gather(torch.arange(4)), steps=60)
    config = RelearnConfig(optimizer="adam", lr=1e-2, steps=60, criterion="prob")
    ctx = AuditContext(original=original, options={"relearn": config})
    at_original = relearn_audit(original, task, split, ctx)
    assert at_original["rcd"] == 0 and at_original["rcd_reached"] == 1.0
    # the threshold is 90 % of the original's mean answer probability
    assert at_original["rcd_threshold"] == pytest.approx(0.9 * forget_stats(original, task, split.forget, ctx)[2])
    from_scratch = relearn_audit(fresh, task, split, ctx)
    assert from_scratch["rcd"] > 0 and from_scratch["rcd_final_forget_prob"] > 0.5


def test_methods_declare_their_text_defaults_and_the_user_overrides_them():
    """Per-kind defaults (next to each method's config) sit over the workload's shared defaults and
    under --set."""
    from unlearnkit.bench.runner import BenchPlan
    from unlearnkit.bench.workload import WORKLOADS
    from unlearnkit.methods.training import LMTrainConfig

    text, image = WORKLOADS["text"], WORKLOADS["image"]
    plan = BenchPlan(data="tofu-mini")
    recipe = LMTrainConfig()
    assert plan.method_config("finetune", 0, recipe, text).epochs == 3
    assert plan.method_config("finetune", 0, recipe, image).epochs == 10
    assert plan.method_config("rosu", 0, recipe, text).epochs == 1  # inherited from UAM's config
    assert plan.method_config("finetune", 0, recipe, text).optimizer == "adamw"  # workload default kept
    user = BenchPlan(data="tofu-mini", overrides={"finetune": {"epochs": "7"}})
    assert user.method_config("finetune", 0, recipe, text).epochs == 7


def test_text_benchmark_runs_the_llm_baselines_and_seed_methods_by_default():
    from unlearnkit.bench.runner import BenchPlan
    from unlearnkit.bench.workload import WORKLOADS
    from unlearnkit.data.sources import DataSource

    source = DataSource(name="t", train=None, test=None, num_classes=0, input_shape=(), kind="text")
    names = BenchPlan(data="t").resolve(source).method_names()
    assert names[0] == "retrain" and set(names[1:]) == set(WORKLOADS["text"].methods)
    assert {"entangle", "lur", "ieu", "mox", "rosu", "npo", "rmu"} <= set(names)
    assert BenchPlan(data="t", methods=["ga"]).resolve(source).method_names() == ["retrain", "ga"]
