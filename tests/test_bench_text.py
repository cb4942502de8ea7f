"""The benchmark on text: a user's local HF model as the original, TOFU-layout data, TOFU measures."""
import json

import torch

import pytest

pytest.importorskip("transformers").utils.logging.disable_progress_bar()

from lm_helpers import tiny_llama, tiny_tokenizer  # noqa: E402
from unlearnkit.cli import main  # noqa: E402
from unlearnkit.models.hf import save_hf_model  # noqa: E402


def _no_retraining(monkeypatch):
    """Fail the test if anything retrains a model from scratch."""
    from unlearnkit.methods.reference import Retrain

    def refuse(*args, **kwargs):
        raise AssertionError("a pretrained model must never be retrained from scratch")

    monkeypatch.setattr(Retrain, "run", refuse)


def test_bench_with_a_local_hf_model_and_no_reference_trains_nothing_from_scratch(tmp_path, capsys, caplog,
                                                                                     monkeypatch):
    tok = tiny_tokenizer()
    folder = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "my-model")
    out = tmp_path / "run"
    _no_retraining(monkeypatch)
    code = main(["bench", "--data", "tofu-mini", "--hf-model", str(folder), "--forget", "forget05",
                 "--methods", "ga,entangle", "--audits", "accuracy,tofu", "--quick", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "forget_quality" not in printed and "model_utility" in printed
    assert any("--retain-model DIR" in m and "--retain-logs FILE" in m for m in caplog.messages)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["ga", "entangle"]  # no retrain row
    # entangle on text takes the retain QA nearest to the forget QA as its adjacent set
    assert records[1]["status"] == "ok" and records[1]["config"]["adjacency"] == "auto"
    # a pretrained model gets OpenUnlearning's recipe (resolve.PRETRAINED_TEXT)
    assert (records[0]["config"]["optimizer"], records[0]["config"]["lr"]) == ("adamw", 1e-5)
    assert records[0]["model"] == "hf:my-model" and records[0]["reference"] == {"kind": "none"}
    for record in records:
        assert "forget_quality" not in record["metrics"] and 0.0 <= record["metrics"]["model_utility"] <= 1.0
    assert not (out / "references").exists()
    assert (folder / "config.json").exists()  # the user's model folder is left as it was


def test_bench_compares_with_a_given_retain_model_or_its_logs(tmp_path, capsys, monkeypatch):
    """--retain-model: evaluated once, never trained; --retain-logs with that model's evaluation gives
    the same forget quality and privleak."""
    from unlearnkit import load_data, make_split
    from unlearnkit.audits.base import AuditContext
    from unlearnkit.audits.reference_logs import retain_logs_json
    from unlearnkit.audits.tofu import forget_eval_set, forget_truth_ratios, membership_sets, min_k_auc
    from unlearnkit.checkpoints import sha256_state
    from unlearnkit.models.hf import load_hf_model
    from unlearnkit.tasks.causal_lm import CausalLMTask

    tok = tiny_tokenizer()
    target = save_hf_model(tiny_llama(tok, seed=0), tok, tmp_path / "target")
    retain = save_hf_model(tiny_llama(tok, seed=1), tok, tmp_path / "retain")
    _no_retraining(monkeypatch)
    common = ["bench", "--data", "tofu-mini", "--hf-model", str(target), "--forget", "forget05", "--methods", "ga",
              "--audits", "tofu", "--quick"]
    assert main([*common, "--retain-model", str(retain), "--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "a" / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["retrain", "ga"]
    reference = {"kind": "retain_model", "path": str(retain), "sha256": sha256_state(load_hf_model(retain))}
    assert records[0]["reference"] == records[1]["reference"] == reference
    assert records[0]["config"] == {"retain_model": str(retain)}
    assert records[0]["metrics"]["forget_quality"] == 1.0  # the retain model against itself
    assert "forget_quality" in records[1]["metrics"] and "privleak" in records[1]["metrics"]

    # the retain model's evaluation as a log file (computed here independently of the bench)
    source = load_data("tofu-mini", tokenizer=load_hf_model  # noqa: E731
                       and __import__("unlearnkit.models.hf", fromlist=["x"]).load_hf_tokenizer(retain))
    split = make_split(source, "forget05")
    task, ctx = CausalLMTask(source.tokenizer), AuditContext()
    model = load_hf_model(retain)
    ratios = forget_truth_ratios(model, task, forget_eval_set(split), ctx)
    auc = min_k_auc(model, task, *membership_sets(split), ctx)
    logs = tmp_path / "TOFU_EVAL.json"
    logs.write_text(retain_logs_json(ratios, auc))
    # the bench wrote the same evaluation of the retain model for later --retain-logs runs
    from unlearnkit.audits.reference_logs import read_retain_logs

    written = read_retain_logs(records[0]["retain_logs_written"])
    assert written["truth_ratios"].tolist() == pytest.approx(list(ratios)) and written["mink_auc"] == auc
    assert main([*common, "--retain-logs", str(logs), "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    (ga,) = [json.loads(line) for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    assert ga["reference"]["kind"] == "retain_logs" and ga["reference"]["path"] == str(logs)
    assert ga["metrics"]["forget_quality"] == records[1]["metrics"]["forget_quality"]
    assert ga["metrics"]["privleak"] == records[1]["metrics"]["privleak"]


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
    own = BenchPlan(data="tofu:my-tofu")  # a user's text data: no benchmark's calibration applies
    assert own.method_config("rosu", 0, recipe, text).epochs == 1  # inherited from UAM's config
    # tofu-mini itself takes its own tune study's value over the kind default (unlearnkit.calibrated)
    from unlearnkit.calibrated import CALIBRATED
    assert plan.method_config("rosu", 0, recipe, text).epochs == CALIBRATED["tofu-mini"]["rosu"]["epochs"] != 1
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
