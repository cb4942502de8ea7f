"""Training you can watch: every loop's StepCounter reports each optimizer step's loss, the objective
terms the method names and the learning rate to the progress bar and to ``RunContext.callbacks``
(CSV / console / TensorBoard loggers, an in-memory History); the benchmark keeps a downsampled loss
curve per cell, writes each cell's CSV under ``--log-dir``, and the report draws one loss figure per
method."""
import csv
import json
import logging
import math
import sys

import pytest
import torch

import unlearnkit
from unlearnkit.bench.runner import cell_log_file
from unlearnkit.cli import main
from unlearnkit.errors import ConfigError, DivergenceError
from unlearnkit.methods import CSVLogger, ConsoleLogger, History, RunContext, TensorBoardLogger
from unlearnkit.methods.loop import StepCounter
from unlearnkit.report import build_report
from unlearnkit.seeding import seed_everything


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Recorder:
    """A duck-typed callback: every call, in order."""

    def __init__(self):
        self.calls = []

    def on_run_start(self, info):
        self.calls.append(("start", info))

    def on_step(self, step, logs):
        self.calls.append(("step", step, dict(logs)))

    def on_run_end(self, info):
        self.calls.append(("end", info))


def test_csv_logger_one_row_per_step_and_the_logged_loss_is_the_objective(trained_mlp, task, class_split, tmp_path):
    path = tmp_path / "graddiff.csv"
    epochs, batch_size, gamma, alpha, seed = 2, 64, 0.7, 1.3, 5
    ctx = RunContext(callbacks=[CSVLogger(path)], progress=False)
    unlearnkit.unlearn(trained_mlp, task, class_split, "graddiff", ctx=ctx, epochs=epochs, batch_size=batch_size,
                       gamma=gamma, alpha=alpha, lr=0.002, seed=seed, augment=False)
    rows = read_csv(path)
    # one row per optimizer step: one epoch is one pass over the forget set in batches
    assert len(rows) == epochs * math.ceil(len(class_split.forget) / batch_size)
    assert [int(r["step"]) for r in rows] == list(range(len(rows)))
    assert set(rows[0]) == {"step", "run", "loss", "lr", "forget", "retain"}
    assert {r["run"] for r in rows} == {"graddiff"} and {float(r["lr"]) for r in rows} == {0.002}
    for r in rows:  # the terms, weighted as the method documents, add up to the logged loss
        assert gamma * float(r["forget"]) + alpha * float(r["retain"]) == pytest.approx(float(r["loss"]), rel=1e-5, abs=1e-6)

    # step 0 by hand: the initial model on the first paired batch drawn with the run's seeded generator
    # (the forget pass's permutation first, then the retain stream's)
    generator = seed_everything(seed)
    forget_order = torch.randperm(len(class_split.forget), generator=generator)
    retain_order = torch.randperm(len(class_split.retain), generator=generator)
    forget = task.to_device(class_split.forget.gather(forget_order[:batch_size]), torch.device("cpu"))
    retain = task.to_device(class_split.retain.gather(retain_order[:batch_size]), torch.device("cpu"))
    with torch.no_grad():
        l_forget = task.loss(trained_mlp, forget).mean()
        l_retain = task.loss(trained_mlp, retain).mean()
    assert float(rows[0]["forget"]) == pytest.approx(-float(l_forget), rel=1e-5)
    assert float(rows[0]["retain"]) == pytest.approx(float(l_retain), rel=1e-5)
    assert float(rows[0]["loss"]) == pytest.approx(float(-gamma * l_forget + alpha * l_retain), rel=1e-5)


def test_csv_logger_refuses_an_existing_file_and_widens_its_header_for_a_new_term(trained_mlp, task, class_split,
                                                                                  tmp_path):
    taken = tmp_path / "mine.csv"
    taken.write_text("keep me\n")
    with pytest.raises(ConfigError, match="exists"):
        CSVLogger(taken)
    assert taken.read_text() == "keep me\n"
    # SCRUB: max steps over forget (forget_kl) first, min steps over retain (retain_kl, retain_ce) after
    path = tmp_path / "scrub.csv"
    history = History()
    unlearnkit.unlearn(trained_mlp, task, class_split, "scrub", ctx=RunContext(callbacks=[CSVLogger(path), history]),
                       epochs=1, msteps=1)
    rows = read_csv(path)
    assert len(rows) == len(history) > 0
    assert list(rows[0])[:4] == ["step", "run", "loss", "lr"]
    assert {"forget_kl", "retain_kl", "retain_ce"} <= set(rows[0])
    first_min = next(i for i, r in enumerate(rows) if r["retain_ce"])
    assert 0 < first_min and all(r["forget_kl"] and not r["retain_ce"] for r in rows[:first_min])
    for r in rows[:first_min]:  # the max step minimises −d(x_f)
        assert float(r["loss"]) == pytest.approx(-float(r["forget_kl"]), abs=1e-6)


def test_callbacks_see_every_step_in_order_with_lr_and_the_phases_of_a_two_loop_method(trained_mlp, task,
                                                                                       class_split):
    recorder, history = Recorder(), History()
    ctx = RunContext(callbacks=[recorder, history])
    on_step = []
    ctx.on_step = lambda model, step: on_step.append(step)  # the existing hook still runs
    unlearnkit.unlearn(trained_mlp, task, class_split, "ieu", ctx=ctx, epochs=1, repair_epochs=1, lr=0.01,
                       repair_lr=0.02)
    kinds = [c[0] for c in recorder.calls]
    assert kinds.count("start") == kinds.count("end") == 2  # the ascent phase, then the retain repair
    starts = [c[1] for c in recorder.calls if c[0] == "start"]
    assert [s["run"] for s in starts] == ["ieu", "ieu/repair"]
    first = [c for c in recorder.calls[1:kinds.index("end")]]
    assert [c[1] for c in first] == list(range(starts[0]["total"]))
    assert all({"loss", "forget", "retain", "lr"} == set(c[2]) for c in first)
    ends = [c[1] for c in recorder.calls if c[0] == "end"]
    assert [e["status"] for e in ends] == ["ok", "ok"] and [e["steps"] for e in ends] == [s["total"] for s in starts]
    # loggers number on across the phases; the repair's lr is its own
    assert history.steps == list(range(len(history))) == list(range(len(on_step)))
    assert set(history.runs) == {"ieu", "ieu/repair"}
    assert {lr for lr, run in zip(history.logs["lr"], history.runs) if run == "ieu/repair"} == {0.02}
    assert on_step == list(range(1, starts[0]["total"] + 1)) + list(range(1, starts[1]["total"] + 1))


def test_a_diverged_run_still_reports_its_steps(trained_mlp, task, class_split):
    recorder = Recorder()
    with pytest.raises(DivergenceError):
        unlearnkit.unlearn(trained_mlp, task, class_split, "ga", ctx=RunContext(callbacks=[recorder]),
                           lr=1e12, epochs=20)
    end = recorder.calls[-1]
    steps = [c for c in recorder.calls if c[0] == "step"]
    assert end[0] == "end" and end[1]["status"] == "diverged" and end[1]["steps"] == len(steps) > 0


def test_step_counter_throttles_the_host_reads_and_the_postfix():
    recorder = Recorder()
    ctx = RunContext(callbacks=[recorder], progress=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with StepCounter(50, "demo", model, ctx, optimizer) as counter:
        for i in range(50):
            ctx.log("forget", torch.tensor(-float(i)))
            counter.done(torch.tensor(float(i)))
            if i == 0:  # the first step shows at once: the bar's postfix has the loss and the terms
                assert [c[0] for c in recorder.calls] == ["start", "step"]
                assert "loss=0" in counter.bar.postfix and "forget=" in counter.bar.postfix
                assert "lr=0.5" in counter.bar.postfix
        # the other steps wait (well under FLUSH_S here): nothing read from the tensors yet
        assert len(recorder.calls) == 2
    steps = [c for c in recorder.calls if c[0] == "step"]
    assert [c[1] for c in steps] == list(range(50))  # all of them, in order, before the end
    assert steps[-1][2] == {"loss": 49.0, "forget": -49.0, "lr": 0.5}
    assert recorder.calls[-1][0] == "end"


def test_progress_bar_shows_the_loss(trained_mlp, task, class_split, capsys):
    unlearnkit.unlearn(trained_mlp, task, class_split, "neggrad_plus", ctx=RunContext(progress=True), epochs=1)
    err = capsys.readouterr().err
    assert "neggrad_plus" in err and "loss=" in err and "forget=" in err and "retain=" in err


def test_console_logger_lines(trained_mlp, task, class_split, caplog):
    with caplog.at_level(logging.INFO, logger="unlearnkit.methods.callbacks"):
        unlearnkit.unlearn(trained_mlp, task, class_split, "graddiff", epochs=2,
                           ctx=RunContext(callbacks=[ConsoleLogger(every_s=3600)]))
    lines = [r.getMessage() for r in caplog.records if r.name == "unlearnkit.methods.callbacks"]
    total = 2 * math.ceil(len(class_split.forget) / 64)
    assert len(lines) == 2  # the first step, then (throttled) only the last one
    assert lines[0].startswith(f"graddiff step 1/{total} loss=") and "forget=" in lines[0] and "lr=" in lines[0]
    assert lines[1].startswith(f"graddiff step {total}/{total} ")


def test_tensorboard_logger_needs_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if it were not installed
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        TensorBoardLogger(tmp_path / "tb")


def test_tensorboard_logger_writes_scalars(trained_mlp, task, class_split, tmp_path):
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path / "tb")
    unlearnkit.unlearn(trained_mlp, task, class_split, "graddiff", epochs=1, ctx=RunContext(callbacks=[logger]))
    logger.close()
    assert any((tmp_path / "tb").iterdir())


def test_history_curve_downsamples_to_window_means():
    history = History()
    history.on_run_start({"run": "x", "total": 250})
    for step in range(250):
        history.on_step(step, {"loss": float(step), **({"retain": 1.0} if step % 2 else {})})
    curve = history.curve(max_points=100)
    assert curve["steps"] == 250 and len(curve["step"]) == len(curve["loss"]) == 100 and curve["window"] == 3
    assert curve["loss"][0] == pytest.approx(0.5) and curve["step"][0] == 0.5  # steps 0, 1
    assert curve["loss"][-1] == pytest.approx(248.0) and curve["step"][-1] == 248  # steps 247, 248, 249
    assert curve["terms"]["retain"] == [1.0] * 100
    short = History()
    short.on_step(0, {"loss": 2.0})
    assert short.curve() == {"steps": 1, "window": 1, "step": [0], "loss": [2.0], "terms": {}}


def test_cell_log_file_never_overwrites(tmp_path):
    first = cell_log_file(tmp_path, "class:0", "ga", 1, "digits|cnn|class:0|split0|ga|1|abc")
    assert first.parent == tmp_path and first.name.startswith("ga_class_0_seed1_") and first.suffix == ".csv"
    first.write_text("earlier attempt")
    second = cell_log_file(tmp_path, "class:0", "ga", 1, "digits|cnn|class:0|split0|ga|1|abc")
    assert second.name == first.stem + "-2.csv"
    other = cell_log_file(tmp_path, "class:0", "ga", 1, "digits|cnn|class:0|split0|ga|1|other-config")
    assert other.name != first.name


@pytest.fixture(scope="module")
def bench_with_logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNKIT_CACHE", str(root / "cache"))
        code = main(["bench", "--quick", "--methods", "ga,neggrad_plus", "--forget", "class:1", "--model", "mlp",
                     "--set", "train.epochs=2", "--set", "retrain.epochs=3", "--log-dir", str(root / "logs"),
                     "--out", str(root / "out")])
    assert code == 0
    return root


def test_bench_log_dir_has_one_csv_per_cell_and_records_carry_the_curve(bench_with_logs):
    records = [json.loads(line) for line in (bench_with_logs / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"retrain", "ga", "neggrad_plus"}
    files = sorted((bench_with_logs / "logs").glob("*.csv"))
    assert len(files) == len(records)
    for record in records:
        path = bench_with_logs / "logs" / record["log_file"].rsplit("/", 1)[-1]
        assert path in files and path.name.startswith(f"{record['method']}_class_1_seed0_")
        rows = read_csv(path)
        losses = [float(r["loss"]) for r in rows]
        assert losses and all(math.isfinite(v) for v in losses)
        curve = record["curves"]["loss"]
        assert curve["steps"] == len(rows) and 0 < len(curve["step"]) == len(curve["loss"]) <= 100
        assert curve["loss"][0] == pytest.approx(losses[0], rel=1e-4)  # few steps: every step kept
        if record["method"] == "neggrad_plus":
            assert set(curve["terms"]) == {"forget", "retain"}
    # a rerun resumes: no cell runs again, so no new file
    assert main(["bench", "--quick", "--methods", "ga,neggrad_plus", "--forget", "class:1", "--model", "mlp",
                 "--set", "train.epochs=2", "--set", "retrain.epochs=3", "--log-dir", str(bench_with_logs / "logs"),
                 "--out", str(bench_with_logs / "out")]) == 0
    assert sorted((bench_with_logs / "logs").glob("*.csv")) == files


def test_report_has_a_loss_figure_per_method(bench_with_logs):
    page = build_report(bench_with_logs / "out", bench_with_logs / "report.html").read_text()
    assert '<h2 id="loss">Training loss</h2>' in page
    figures = [chunk for chunk in page.split('<svg class="figure" ')[1:] if chunk.startswith('data-figure="loss-')]
    assert len(figures) == 3  # retrain, ga, neggrad_plus
