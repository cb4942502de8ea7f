"""bench/table.py aggregates: Avg Gap of the seed means (the papers' number) as ``avg_gap``, the
per-seed gaps kept as ``avg_gap_seedwise``, the MIA AUC beside MIA-Efficacy."""
import json
import math
import statistics

import pytest

from unlearnkit.bench.table import COLUMNS, format_csv, format_json, format_markdown, format_table, present_columns, summarise

# three seeds of retrain and ga on one scenario; each cell's avg_gap is against its own seed's retrain
RETRAIN = [{"ua": 100.0, "ra": 99.0, "ta": 97.0, "mia_efficacy": 100.0, "mia_auc": 0.50},
           {"ua": 100.0, "ra": 98.0, "ta": 96.0, "mia_efficacy": 98.0, "mia_auc": 0.52},
           {"ua": 100.0, "ra": 100.0, "ta": 95.0, "mia_efficacy": 99.0, "mia_auc": 0.48}]
GA = [{"ua": 90.0, "ra": 97.0, "ta": 98.0, "mia_efficacy": 95.0, "mia_auc": 0.60},
      {"ua": 96.0, "ra": 99.0, "ta": 94.0, "mia_efficacy": 101.0, "mia_auc": 0.55},
      {"ua": 99.0, "ra": 98.0, "ta": 96.0, "mia_efficacy": 97.0, "mia_auc": 0.58}]
GAP = ("ua", "ra", "ta", "mia_efficacy")


def _records():
    records = []
    for seed, (ref, ga) in enumerate(zip(RETRAIN, GA)):
        for method, metrics in (("retrain", ref), ("ga", ga)):
            per_seed_gap = sum(abs(metrics[k] - ref[k]) for k in GAP) / 4
            records.append({"scenario": "class:0", "method": method, "seed": seed, "status": "ok",
                            "metrics": {**metrics, "avg_gap": per_seed_gap, "seconds": 1.0 + seed}})
    return records


def test_avg_gap_of_seed_means_by_hand():
    rows = {row["method"]: row for row in summarise(_records())}
    # by hand: UA means 100 vs 95 → 5; RA 99 vs 98 → 1; TA 96 vs 96 → 0; MIA-Efficacy 99 vs 97.67 → 1.33
    means = {k: (statistics.fmean(r[k] for r in GA), statistics.fmean(r[k] for r in RETRAIN)) for k in GAP}
    by_hand = sum(abs(a - b) for a, b in means.values()) / 4
    assert by_hand == pytest.approx((5 + 1 + 0 + 4 / 3) / 4)
    gap, spread = rows["ga"]["avg_gap"]
    assert gap == pytest.approx(by_hand) and math.isnan(spread)  # one number per row: no spread
    assert rows["retrain"]["avg_gap"][0] == 0.0
    # the per-seed gaps, mean ± std: seed 0 (10 + 2 + 1 + 5) / 4, seed 1 (4 + 1 + 2 + 3) / 4, seed 2 (1 + 2 + 1 + 2) / 4
    seedwise = [18 / 4, 10 / 4, 6 / 4]
    assert rows["ga"]["avg_gap_seedwise"] == pytest.approx((statistics.fmean(seedwise), statistics.stdev(seedwise)))
    assert rows["ga"]["avg_gap_seedwise"][0] >= gap  # the triangle inequality, seed by seed
    # every other column: mean ± std over seeds, as before
    assert rows["ga"]["mia_auc"] == pytest.approx((statistics.fmean(r["mia_auc"] for r in GA),
                                                   statistics.stdev(r["mia_auc"] for r in GA)))


def test_columns_mia_auc_beside_efficacy_and_gap_pair():
    assert COLUMNS.index("mia_auc") == COLUMNS.index("mia_efficacy") + 1
    assert COLUMNS.index("avg_gap_seedwise") == COLUMNS.index("avg_gap") + 1
    present = present_columns(_records())
    assert present == ("ua", "ra", "ta", "mia_efficacy", "mia_auc", "avg_gap", "avg_gap_seedwise", "seconds")


def test_formats_show_no_spread_for_the_gap_of_means():
    records = _records()
    columns = present_columns(records)
    rows = summarise(records, columns)
    table = format_table(rows, columns)
    ga_line = next(line for line in table.splitlines() if line.split()[:2] == ["class:0", "ga"])
    cells = ga_line.split()
    assert cells[columns.index("avg_gap") + 2] == "1.83"  # 7.33 / 4, no "±"
    assert cells[columns.index("avg_gap_seedwise") + 2] == "2.83±1.53"
    assert "| 1.83 |" in format_markdown(rows, columns)
    header, _, ga_csv = format_csv(rows, columns).strip().splitlines()
    values = dict(zip(header.split(","), ga_csv.split(",")))
    assert float(values["avg_gap"]) == pytest.approx(11 / 6) and values["avg_gap_std"] == ""
    assert float(values["avg_gap_seedwise_std"]) > 0
    ga_json = json.loads(format_json(rows, columns))[1]
    assert ga_json["avg_gap"]["std"] is None and ga_json["avg_gap_seedwise"]["std"] > 0


def test_without_a_retrain_row_only_the_seedwise_gap():
    records = [r for r in _records() if r["method"] == "ga"]
    row = summarise(records)[0]
    assert row["avg_gap"] is None and row["avg_gap_seedwise"] is not None


def test_reference_found_by_base_name_and_per_scenario():
    """The report relabels rows (``retrain [lr=…]``) and keeps the registered name as ``_base``;
    each scenario compares with its own retrain."""
    records = _records()
    other = [{**r, "scenario": "random:0.1",
              "metrics": {**r["metrics"], "ua": r["metrics"]["ua"] - (10 if r["method"] == "retrain" else 0)}}
             for r in records]
    relabelled = [{**r, "_base": r["method"], "method": "retrain [x]" if r["method"] == "retrain" else r["method"]}
                  for r in records + other]
    rows = {(row["scenario"], row["method"]): row for row in summarise(relabelled)}
    assert rows[("class:0", "ga")]["avg_gap"][0] == pytest.approx(11 / 6)
    # random:0.1: retrain's UA mean is 90, ga's 95 → the UA gap is still 5 (the other way round)
    assert rows[("random:0.1", "ga")]["avg_gap"][0] == pytest.approx(11 / 6)
