"""The report's figures, drawn with matplotlib and returned as inline SVG text.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot: no global state, no window, the
caller's backend untouched) and saved as SVG with text as paths, so the page renders the same
without any font. Every method keeps one colour and marker across figures; ``retrain`` (black
star) and ``original`` (grey cross) are drawn distinctly.
"""
from __future__ import annotations

import io
import math
import re

import numpy as np

from ..audits.metrics import METRICS
from ..extras import require
from .results import Results

NEEDS = "unlearnkit report (its figures) needs"  # matplotlib: the [report] extra

FONTTYPE = "path"
RETRAIN_STYLE = {"color": "black", "marker": "*", "markersize": 15}
ORIGINAL_STYLE = {"color": "#8c8c8c", "marker": "X", "markersize": 11}
MARKERS = ("o", "s", "^", "D", "v", "P", "<", ">", "h", "p")
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
         "#17becf", "#7f7f7f")
RC = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
      "xtick.labelsize": 8, "ytick.labelsize": 8, "svg.fonttype": "path", "axes.spines.top": False,
      "axes.spines.right": False}

# (forgetting metric, utility metric) for the trade-off scatter, first pair present wins:
# TOFU's forget quality vs model utility (text), WMDP's hazard vs general accuracy, then accuracies
TRADEOFFS = (("forget_quality", "model_utility"), ("hazard_acc", "general_acc"), ("ua", "ta"), ("ua", "ra"),
             ("mia_auc", "ta"))
CRITERIA = {"acc": "forget accuracy (%)", "loss": "forget loss (nats)", "prob": "forget probability"}


class Styles:
    """One colour and marker per row label: colour cycles over tab10, the marker changes every 10."""

    def __init__(self, results: Results):
        self.base = results.base
        self._style: dict[str, dict] = {}
        others = [m for m in results.methods if results.base[m] not in ("retrain", "original")]
        for i, method in enumerate(others):
            self._style[method] = {"color": TAB10[i % 10], "marker": MARKERS[(i // 10) % len(MARKERS)],
                                   "markersize": 7}

    def __call__(self, method: str) -> dict:
        base = self.base.get(method, method)
        if base == "retrain":
            return dict(RETRAIN_STYLE)
        if base == "original":
            return dict(ORIGINAL_STYLE)
        return dict(self._style[method])


def svg(fig, name: str) -> str:
    """The figure as an ``<svg>`` element: XML prolog and DOCTYPE stripped, ids salted by ``name``
    (unique and stable across the page's figures)."""
    matplotlib = require("matplotlib", "report", NEEDS)

    with matplotlib.rc_context({"svg.hashsalt": f"unlearnkit-{name}", "svg.fonttype": FONTTYPE}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # the XML prolog and DOCTYPE
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF with creator URLs
    return re.sub(r"<svg ", f'<svg class="figure" data-figure="{name}" role="img" ', text, count=1)


def _figure(width: float, height: float):
    require("matplotlib", "report", NEEDS)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def tradeoff_pair(results: Results, scenario: str) -> tuple[str, str] | None:
    present = {c for row in results.rows_of(scenario) for c in results.columns if row[c] is not None}
    present |= {k for r in results.records if r["scenario"] == scenario for k in r.get("metrics", {})}
    return next(((x, y) for x, y in TRADEOFFS if x in present and y in present), None)


def _axis_label(metric: str) -> str:
    direction = METRICS.get(metric, ("info", ""))[0]
    hint = {"higher": "↑ better", "lower": "↓ better", "retrain": "closest to retrain is best"}.get(direction)
    return f"{metric} ({hint})" if hint else metric


def _metric_values(results: Results, scenario: str, method: str, metric: str) -> list[float]:
    return [r["metrics"][metric] for r in results.records_of(scenario, method)
            if metric in r.get("metrics", {}) and _finite(r["metrics"][metric])]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def tradeoff_figure(results: Results, scenario: str, styles: Styles, pair: tuple[str, str], name: str) -> str:
    """Forgetting (x) against utility (y), mean ± std over seeds per method; dashed lines at retrain."""
    matplotlib = require("matplotlib", "report", NEEDS)

    x_metric, y_metric = pair
    with matplotlib.rc_context(RC):
        fig = _figure(5.9, 4.0)
        ax = fig.add_subplot()
        xs_all = []
        for method in results.methods:
            xs = _metric_values(results, scenario, method, x_metric)
            ys = _metric_values(results, scenario, method, y_metric)
            if not xs or not ys:
                continue
            style = styles(method)
            x, y = float(np.mean(xs)), float(np.mean(ys))
            xerr = float(np.std(xs, ddof=1)) if len(xs) > 1 else None
            yerr = float(np.std(ys, ddof=1)) if len(ys) > 1 else None
            reference = results.base[method] in ("retrain", "original")
            # the reference markers are hollow and on top: visible, without hiding a method at the same spot
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, linestyle="none", color=style["color"], marker=style["marker"],
                        markersize=style["markersize"], markerfacecolor="none" if reference else style["color"],
                        markeredgecolor=style["color"] if reference else "white",
                        markeredgewidth=1.6 if reference else 0.6, elinewidth=0.8, capsize=2, label=method,
                        zorder=4 if reference else 3)
            if results.base[method] == "retrain":
                ax.axvline(x, color="black", linestyle=":", linewidth=0.8, zorder=1)
                ax.axhline(y, color="black", linestyle=":", linewidth=0.8, zorder=1)
            xs_all.append(x)
        if x_metric == "forget_quality" and xs_all and min(xs_all) > 0:
            ax.set_xscale("log")  # a p-value: orders of magnitude matter
        ax.set_xlabel(_axis_label(x_metric))
        ax.set_ylabel(_axis_label(y_metric))
        ax.set_title(f"{scenario}: forgetting vs utility (dotted: retrain)")
        ax.grid(True, linewidth=0.3, alpha=0.5)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, ncols=1 if len(xs_all) <= 14 else 2,
                  handletextpad=0.3, columnspacing=0.8, borderaxespad=0.0)
        return svg(fig, name)


def _plain(value, _position=None) -> str:
    return f"{value:g}"


def _grid(n: int, ncols: int = 6) -> tuple[int, int]:
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


def _mean_curve(curves: list[tuple[list, list]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds at each step present in any seed's curve."""
    steps = sorted({s for xs, _ in curves for s in xs})
    values = {s: [] for s in steps}
    for xs, ys in curves:
        for s, v in zip(xs, ys):
            if _finite(v):
                values[s].append(v)
    steps = [s for s in steps if values[s]]
    mean = np.array([np.mean(values[s]) for s in steps])
    return np.array(steps), mean, np.array([min(values[s]) for s in steps]), np.array([max(values[s]) for s in steps])


def curves_of(results: Results, scenario: str, method: str, family: str) -> list[dict]:
    return [r["curves"][family] for r in results.records_of(scenario, method) if family in (r.get("curves") or {})]


def relearn_figure(results: Results, scenario: str, styles: Styles, name: str) -> str | None:
    """Small multiples: each method's relearning curve (mean over seeds, band = min–max) with
    retrain's (dashed black) and the threshold τ (dotted red)."""
    matplotlib = require("matplotlib", "report", NEEDS)

    methods = [m for m in results.methods if curves_of(results, scenario, m, "relearn")]
    if not methods:
        return None
    reference = next((m for m in methods if results.base[m] == "retrain"), None)
    ref_curve = _mean_curve([(c["step"], c["value"]) for c in curves_of(results, scenario, reference, "relearn")]) \
        if reference else None
    nrows, ncols = _grid(len(methods))
    with matplotlib.rc_context(RC):
        fig = _figure(1.75 * ncols + 0.6, 1.45 * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        criterion = None
        for ax, method in zip(axes.flat, methods):
            curves = curves_of(results, scenario, method, "relearn")
            criterion = curves[0]["criterion"]
            steps, mean, low, high = _mean_curve([(c["step"], c["value"]) for c in curves])
            color = styles(method)["color"]
            if ref_curve is not None and method != reference:
                ax.plot(ref_curve[0], ref_curve[1], color="black", linestyle="--", linewidth=0.9)
            if len(curves) > 1:
                ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
            ax.plot(steps, mean, color=color, linewidth=1.6)
            ax.axhline(float(np.mean([c["threshold"] for c in curves])), color="#d62728", linestyle=":", linewidth=0.9)
            rcd = np.mean([c["rcd"] for c in curves])
            censored = "" if all(c["reached"] for c in curves) else "+"
            ax.set_title(f"{method}\nRCD {rcd:.0f}{censored}", fontsize=8)
            ax.grid(True, linewidth=0.3, alpha=0.5)
        for ax in list(axes.flat)[len(methods):]:
            ax.set_visible(False)
        # most models relearn in a few steps: linear up to 5, logarithmic after, so both ends read
        budget = max(c["budget"] for m in methods for c in curves_of(results, scenario, m, "relearn"))
        axes[0, 0].set_xscale("symlog", linthresh=5, linscale=1.0)
        axes[0, 0].set_xticks([t for t in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= max(budget, 1)])
        axes[0, 0].xaxis.set_major_formatter(_plain)
        axes[0, 0].set_xlim(0, max(budget, 1))
        fig.supxlabel("relearning step (linear to 5, log scale after)", fontsize=9)
        fig.supylabel(CRITERIA.get(criterion, criterion), fontsize=9)
        fig.suptitle(f"{scenario}: relearning curves (dashed: retrain; dotted red: threshold; "
                     f"RCD = first step at the threshold, + = never within the budget)", fontsize=9)
        return svg(fig, name)


def roc_figure(results: Results, scenario: str, styles: Styles, name: str) -> str | None:
    """Small multiples: each method's loss-attack ROC (forget vs held-out), mean TPR over seeds on a
    common FPR grid, with retrain's (dashed black) and chance (grey diagonal)."""
    matplotlib = require("matplotlib", "report", NEEDS)

    methods = [m for m in results.methods if curves_of(results, scenario, m, "mia")]
    if not methods:
        return None
    grid = np.linspace(0.0, 1.0, 101)

    def mean_roc(method):
        rocs = curves_of(results, scenario, method, "mia")
        return np.mean([np.interp(grid, c["fpr"], c["tpr"]) for c in rocs], axis=0)

    reference = next((m for m in methods if results.base[m] == "retrain"), None)
    ref_tpr = mean_roc(reference) if reference else None
    nrows, ncols = _grid(len(methods))
    with matplotlib.rc_context(RC):
        fig = _figure(1.75 * ncols + 0.6, 1.55 * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        for ax, method in zip(axes.flat, methods):
            ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=0.8)
            if ref_tpr is not None and method != reference:
                ax.plot(grid, ref_tpr, color="black", linestyle="--", linewidth=0.9)
            ax.plot(grid, mean_roc(method), color=styles(method)["color"], linewidth=1.6)
            aucs = _metric_values(results, scenario, method, "mia_auc")
            ax.set_title(f"{method}\nAUC {np.mean(aucs):.2f}" if aucs else method, fontsize=8)
            ax.set_aspect("equal")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xticks([0, 0.5, 1])
            ax.set_yticks([0, 0.5, 1])
            ax.grid(True, linewidth=0.3, alpha=0.5)
        for ax in list(axes.flat)[len(methods):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("TPR")
        fig.supxlabel("false-positive rate (held-out examples called members); "
                      "TPR: forget examples called members", fontsize=9)
        fig.suptitle(f"{scenario}: loss-threshold MIA, ROC (dashed: retrain; grey: chance)", fontsize=9)
        return svg(fig, name)


TERM_STYLES = (("#555555", "--"), ("#b07a00", ":"), ("#6a3d9a", "-."), ("#999999", (0, (5, 1, 1, 1))),
               ("#2a7f62", (0, (1, 1))))


def loss_scenarios(results: Results, method: str) -> list[str]:
    """The scenarios where ``method``'s records carry a training-loss curve."""
    return [s for s in results.scenarios if curves_of(results, s, method, "loss")]


def _series(curves: list[dict], key: str | None) -> list[tuple[list, list]]:
    """(step, value) per seed for the loss (``key`` None) or a term, the missing points dropped."""
    out = []
    for c in curves:
        values = c["loss"] if key is None else (c.get("terms") or {}).get(key)
        if values:
            kept = [(s, v) for s, v in zip(c["step"], values) if v is not None]
            if kept:
                out.append(([s for s, _ in kept], [v for _, v in kept]))
    return out


def _symlog_if_wide(ax, values: list[float]) -> None:
    """A symmetric-log y axis when the values span far more than their typical size (an ascent that
    ran away): linear within the typical size, logarithmic beyond, so both the start and the tail read."""
    magnitudes = np.abs(np.array([v for v in values if _finite(v)], dtype=float))
    if magnitudes.size == 0:
        return
    typical = float(np.median(magnitudes))
    if magnitudes.max() > 1e3 * max(typical, 1e-6):
        linthresh = max(typical, 1e-3)
        ax.set_yscale("symlog", linthresh=linthresh)
        # 0 and a few decades each side that the data reach (the default labels every decade)
        low, high = math.ceil(math.log10(linthresh)) + 1, math.floor(math.log10(magnitudes.max()))
        decades = sorted({int(round(high - i * (high - low) / 3)) for i in range(3)})  # the lowest a third up
        values = np.array([v for v in values if _finite(v)], dtype=float)
        ticks = [0.0] + [10.0 ** k for k in decades if values.max() >= 10.0 ** k] \
            + [-(10.0 ** k) for k in decades if values.min() <= -(10.0 ** k)]
        ax.set_yticks(sorted(ticks))


def loss_figure(results: Results, method: str, styles: Styles, name: str) -> str | None:
    """One method's training curves, one panel per scenario: the loss per optimizer step (mean over
    seeds, band = min–max) in the method's colour, and each objective term the method names,
    unweighted, as thin dashed lines (mean over seeds). The y axis is the method's own."""
    matplotlib = require("matplotlib", "report", NEEDS)

    scenarios = loss_scenarios(results, method)
    if not scenarios:
        return None
    terms = list(dict.fromkeys(k for s in scenarios for c in curves_of(results, s, method, "loss")
                               for k in (c.get("terms") or {})))
    nrows, ncols = _grid(len(scenarios), 4)
    color = styles(method)["color"]
    with matplotlib.rc_context(RC):
        fig = _figure(2.3 * ncols + (1.1 if terms else 0.4), 1.75 * nrows + 0.45)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        handles = {}
        for ax, scenario in zip(axes.flat, scenarios):
            curves = curves_of(results, scenario, method, "loss")
            series = _series(curves, None)
            _symlog_if_wide(ax, [v for key in [None, *terms] for _, values in _series(curves, key) for v in values])
            if series:
                steps, mean, low, high = _mean_curve(series)
                if len(series) > 1:
                    ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
                handles["loss"] = ax.plot(steps, mean, color=color, linewidth=1.6)[0]
            for i, term in enumerate(terms):
                term_series = _series(curves, term)
                if term_series:
                    steps, mean, _, _ = _mean_curve(term_series)
                    term_color, dashes = TERM_STYLES[i % len(TERM_STYLES)]
                    handles[term] = ax.plot(steps, mean, color=term_color, linestyle=dashes, linewidth=1.0)[0]
            counts = results.status_counts.get((scenario, method), {})
            bad = {k: v for k, v in counts.items() if k != "ok"}
            flag = "\n" + ", ".join(f"{v}/{sum(counts.values())} {k}" for k, v in bad.items()) if bad else ""
            ax.set_title(f"{scenario}{flag}", fontsize=8)
            ax.grid(True, linewidth=0.3, alpha=0.5)
            ax.xaxis.set_major_formatter(_plain)
        for ax in list(axes.flat)[len(scenarios):]:
            ax.set_visible(False)
        if terms:
            fig.legend(list(handles.values()), list(handles), loc="outside right upper", frameon=False,
                       handlelength=2.2)
        fig.supxlabel("optimizer step", fontsize=9)
        fig.supylabel("objective", fontsize=9)
        fig.suptitle(f"{method}: training loss" + (" and its terms (unweighted, dashed)" if terms else ""),
                     fontsize=9)
        return svg(fig, name)


def runtime_figure(results: Results, styles: Styles, name: str) -> str | None:
    """Horizontal bars: unlearning seconds per method (mean, ± std over seeds), one panel per scenario."""
    matplotlib = require("matplotlib", "report", NEEDS)

    scenarios = [s for s in results.scenarios
                 if any(_metric_values(results, s, m, "seconds") for m in results.methods)]
    if not scenarios:
        return None
    methods = [m for m in results.methods if any(_metric_values(results, s, m, "seconds") for s in scenarios)]
    means = {(s, m): _metric_values(results, s, m, "seconds") for s in scenarios for m in methods}
    with matplotlib.rc_context(RC):
        fig = _figure(3.4 * len(scenarios) + 1.4, 0.22 * len(methods) + 1.1)
        axes = fig.subplots(1, len(scenarios), sharey=True, squeeze=False)[0]
        positions = np.arange(len(methods))
        for ax, scenario in zip(axes, scenarios):
            for i, method in enumerate(methods):
                values = means[(scenario, method)]
                if not values:
                    continue
                mean = float(np.mean(values))
                std = float(np.std(values, ddof=1)) if len(values) > 1 else None
                ax.barh(i, mean, xerr=std, color=styles(method)["color"], height=0.7,
                        error_kw={"elinewidth": 0.8, "capsize": 2})
                ax.annotate(f"{mean:.2f}" if mean < 10 else f"{mean:.0f}", (mean + (std or 0.0), i),
                            xytext=(3, 0), textcoords="offset points", va="center", fontsize=7, color="#444")
            ax.set_title(scenario)
            ax.set_xlabel("unlearning time (s)")
            ax.margins(x=0.12)
            ax.grid(True, axis="x", linewidth=0.3, alpha=0.5)
        axes[0].set_yticks(positions, methods)
        axes[0].invert_yaxis()
        return svg(fig, name)
