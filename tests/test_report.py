"""``unlearnkit report``: the curves the audits leave in each record, the page built from a real
(tiny) bench run, best-cell marking, odd results (diverged, not applicable, text metrics, missing
audits, sweeps), the CLI's overwrite rule, and the page in a real headless Chromium."""
import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import auc

from unlearnkit.bench import BenchPlan, run_bench
from unlearnkit.errors import ConfigError, DataError
from unlearnkit.report import build_report, load_results, render_report, shape
from unlearnkit.report import cli as report_cli
from unlearnkit.report.figures import tradeoff_pair

METHODS = ["ga", "finetune", "original"]
SCENARIOS = ["class:0", "random:0.1"]
FIGURES = 2 * len(SCENARIOS) + len(SCENARIOS) + 1 + 3  # trade-off, relearn, ROC per scenario; one run-time figure;
# a training-loss figure per method that takes steps (retrain, ga, finetune)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """A real results folder: retrain + 3 methods × 2 scenarios × 2 seeds (≈10 s on one thread)."""
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.getbasetemp() / "report-cache"))
        run_bench(BenchPlan(model="mlp", methods=METHODS, scenarios=SCENARIOS, seeds=2, out=out,
                            audits=["accuracy", "mia", "relearn"],
                            overrides={"train": {"epochs": "2"}, "ga": {"epochs": "1"}, "finetune": {"epochs": "1"}}))
    return out


@pytest.fixture(scope="module")
def page_file(bench_dir):
    return build_report(bench_dir, bench_dir / "report.html")


def _records(folder):
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_records_carry_small_curves_consistent_with_the_metrics(bench_dir):
    records = _records(bench_dir)
    assert len(records) == len(SCENARIOS) * 2 * (len(METHODS) + 1)
    for record in records:
        curves = record["curves"]
        assert len(json.dumps(curves)) < 4000  # a few KB per record at most
        relearn, roc = curves["relearn"], curves["mia"]
        # the relearning curve: step t and forget accuracy per step; RCD = first step at the threshold
        assert relearn["criterion"] == "acc" and len(relearn["step"]) == len(relearn["value"]) <= 100
        assert relearn["step"][0] == 0 and relearn["step"][-1] <= relearn["budget"]
        first = next((t for t, v in zip(relearn["step"], relearn["value"]) if v >= relearn["threshold"]), None)
        if relearn["reached"]:
            assert first == relearn["rcd"] == record["metrics"]["rcd"]
        assert relearn["value"][0] == pytest.approx(record["metrics"]["rcd_start_forget_acc"], rel=1e-4)
        # the ROC: from (0, 0) to (1, 1), monotone, ≤ 100 points; its area is the recorded AUC
        fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
        assert len(fpr) == len(tpr) <= 100
        assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert auc(fpr, tpr) == pytest.approx(record["metrics"]["mia_auc"], abs=0.02)


def test_page_is_self_contained_with_every_method_and_best_marks(page_file, bench_dir):
    text = page_file.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text)  # nothing fetched at view time
    assert "<link" not in text and "<script src" not in text and "@import" not in text and "url(http" not in text
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text  # SVG prologs stripped
    for name in ["retrain", *METHODS]:
        assert f'data-v="{name}"' in text
    assert text.count('<svg class="figure"') == FIGURES
    assert 'class="std">± ' in text  # two seeds: mean ± std
    results = load_results(bench_dir)
    assert results.best and text.count('class="best"') == len(results.best)
    assert "Metrics</h2>" in text and "relearning convergence delay" in text  # the glossary


def test_best_cells_follow_each_metrics_direction():
    def record(method, seed, **metrics):
        return {"cell": f"{method}{seed}", "scenario": "s", "method": method, "seed": seed, "status": "ok",
                "config": {"lr": 0.1}, "metrics": metrics}

    records = [record("retrain", 0, ua=50.0, ra=90.0, seconds=9.0), record("original", 0, ua=0.0, ra=99.0, seconds=0.0),
               record("a", 0, ua=40.0, ra=95.0, seconds=1.0), record("a", 1, ua=40.0, ra=95.0, seconds=3.0),
               record("b", 0, ua=55.0, ra=92.0, seconds=1.5), record("c", 0, ua=45.0, ra=80.0, seconds=2.0)]
    best = shape(records).best
    # ua: closest to retrain's 50 → b (5) and c (5) tie, a (10) not; ra: higher → a (original is a
    # reference row, not ranked); seconds: lower → b (1.5) beats a's mean 2.0
    assert best == {("s", "b", "ua"), ("s", "c", "ua"), ("s", "a", "ra"), ("s", "b", "seconds")}


def _text_records():
    """TOFU-style metrics, one seed, no curves; one diverged and one not-applicable method."""
    base = {"scenario": "forget05", "seed": 0, "config": {}, "data": "tofu", "model": "tiny-llama"}
    return [
        {**base, "cell": "1", "method": "retrain", "status": "ok",
         "metrics": {"forget_quality": 1.0, "model_utility": 0.5, "seconds": 3.0}},
        {**base, "cell": "2", "method": "original", "status": "ok",
         "metrics": {"forget_quality": 1e-6, "model_utility": 0.52, "seconds": 0.0}},
        {**base, "cell": "3", "method": "npo", "status": "ok",
         "metrics": {"forget_quality": 0.01, "model_utility": 0.45, "seconds": 1.0}},
        {**base, "cell": "4", "method": "ga", "status": "diverged", "error": "loss is nan", "metrics": {"seconds": 0.2}},
        {**base, "cell": "5", "method": "scrub", "status": "not applicable", "error": "needs labels", "metrics": {}},
    ]


def test_text_metrics_failed_cells_and_missing_audits():
    results = shape(_text_records())
    assert tradeoff_pair(results, "forget05") == ("forget_quality", "model_utility")
    text = render_report(results)
    assert '<span class="status">diverged</span>' in text and '<span class="status">not applicable</span>' in text
    assert 'class="std"' not in text  # one seed: no "± std" in the table
    assert text.count('<svg class="figure"') == 2  # the trade-off scatter and the run-time bars
    assert "no relearning curves" in text and "no MIA ROC curves" in text
    assert "not shown: ga (diverged), scrub (not applicable)" in text
    assert ("forget05", "ga", "seconds") not in results.best  # a diverged run is never "fastest"


def test_sweep_configs_become_variants_and_reruns_count_once():
    base = {"scenario": "s", "status": "ok", "metrics": {"ua": 1.0}}
    records = [{**base, "cell": "1", "method": "ga", "seed": 0, "config": {"lr": 0.1, "seed": 0}},
               {**base, "cell": "2", "method": "ga", "seed": 0, "config": {"lr": 0.01, "seed": 0}},
               {**base, "cell": "3", "method": "ga", "seed": 0, "config": {"lr": 0.01, "seed": 0}, "metrics": {"ua": 2.0}}]
    results = shape(records)
    assert results.methods == ["ga [lr=0.1]", "ga [lr=0.01]"] and results.superseded == 1
    assert results.rows[1]["ua"] == (2.0, 0.0)  # the later record of a repeated cell wins
    # a sweep's own row label wins; the registered name still picks the style and the best-marking rules
    labelled = shape([{**r, "label": f"ga[lr={r['config']['lr']}]"} for r in records])
    assert labelled.methods == ["ga[lr=0.1]", "ga[lr=0.01]"] and labelled.base["ga[lr=0.1]"] == "ga"


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    bench_dir = tmp_path / "results"
    bench_dir.mkdir()
    (bench_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _text_records()))
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    out = tmp_path / "sub" / "r.html"
    assert report_cli.run(parser.parse_args([str(bench_dir), "-o", str(out)])) == 0
    first = out.read_text()
    out.write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        report_cli.run(parser.parse_args([str(bench_dir), "-o", str(out)]))
    assert out.read_text() == "mine"
    assert report_cli.run(parser.parse_args([str(bench_dir / "results.jsonl"), "-o", str(out), "--force"])) == 0
    assert out.read_text().count("<svg") == first.count("<svg")
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]  # no temp file left behind
    with pytest.raises(DataError, match="results.jsonl"):
        report_cli.run(parser.parse_args([str(tmp_path), "-o", str(tmp_path / "x.html")]))


def _chromium() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def test_page_in_headless_chromium(page_file):
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium (apt-get install -y chromium)")
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.resolve().as_uri(), wait_until="load")

            figures = page.locator("svg.figure")
            assert figures.count() == FIGURES
            for i in range(FIGURES):
                figure = figures.nth(i)
                box = figure.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, figure.get_attribute("data-figure")
                drawn = figure.evaluate("svg => { const b = svg.getBBox(); return [b.width, b.height, "
                                        "svg.querySelectorAll('path, use').length]; }")
                assert drawn[0] > 0 and drawn[1] > 0 and drawn[2] > 20

            column = """key => { const th = document.querySelector(`table.results th[data-key="${key}"]`);
                return [...document.querySelectorAll("table.results tbody")].map(body =>
                    [...body.querySelectorAll("tr.row")].map(row => row.cells[th.cellIndex].dataset.v)); }"""
            before = page.evaluate(column, "method")
            page.click('table.results th[data-key="ta"]')
            for values in page.evaluate(column, "ta"):
                numbers = [float(v) for v in values if v]
                assert numbers == sorted(numbers) and len(numbers) == len(METHODS) + 1
            assert page.evaluate(column, "method") != before  # rows moved
            page.click('table.results th[data-key="ta"]')
            for values in page.evaluate(column, "ta"):
                numbers = [float(v) for v in values if v]
                assert numbers == sorted(numbers, reverse=True)
            assert page.get_attribute('th[data-key="ta"]', "aria-sort") == "descending"
        finally:
            browser.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
