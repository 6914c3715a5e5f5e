"""What a lesson shows of a results file: a table of means and spreads, curves with error bars."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import pandas as pd

from cnnlib.experiments.stats import Curve, curves, group_runs, interval
from cnnlib.lessons.viz import Figure, plot_bars, plot_lines

Metric = Callable[[dict], float]


def table(runs: list[dict], index: Callable[[dict], Hashable], metrics: dict[str, Metric],
          index_names: list[str] | None = None) -> pd.DataFrame:
    """One row per configuration, labelled ``index(config)``: its ``runs``, how many ``diverged``,
    then each metric's mean over the finished runs and, in a column ``NAME std``, their sample
    standard deviation (NaN for one run; a mean is inf when a run's metric is).

    Args:
        runs: the results file's runs.
        index: a configuration's row label.
        metrics: column name -> the figure of one finished run.
        index_names: the names of the index levels (one, or one per part of a tuple label).
    """
    rows = {}
    for group in group_runs(runs).values():
        finished = [run for run in group if not run.get("diverged")]
        row = {"runs": len(group), "diverged": len(group) - len(finished)}
        for name, metric in metrics.items():
            spread = interval(metric(run) for run in finished) if finished else {"mean": math.nan, "std": math.nan}
            row[name], row[f"{name} std"] = spread["mean"], spread["std"]
        rows[index(group[0]["config"])] = row
    frame = pd.DataFrame(rows).T.astype({"runs": int, "diverged": int})
    return frame.rename_axis(index_names) if index_names else frame


def with_spread(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``table``'s output for reading: each metric and its ``std`` column as one column of text,
    ``mean ± std`` rounded to ``digits`` (the mean alone where there is no spread)."""
    out = frame[["runs", "diverged"]].copy()
    for name in [c for c in frame.columns if c not in ("runs", "diverged") and not c.endswith(" std")]:
        out[name] = [f"{m:.{digits}f}" if math.isnan(sd) or math.isinf(m) else f"{m:.{digits}f} ± {sd:.{digits}f}"
                     for m, sd in zip(frame[name], frame[f"{name} std"])]
    return out


def intervals(values: dict[str, list[float]], digits: int = 4, index_name: str | None = None) -> pd.DataFrame:
    """One row per name: its values as measured (``per seed``), then ``interval``'s n, mean and 95%
    bounds (``low``, ``high``), all rounded to ``digits``, and where the interval lies: ``above 0``,
    ``below 0``, or ``contains 0`` (within the noise; also for a single value, which has no interval).

    Args:
        values: name -> its values, one per seed (e.g. ``differences``).
        digits: the rounding of every figure shown.
        index_name: the title of the index column.
    """
    rows = {}
    for name, measured in values.items():
        spread = interval(measured)
        side = ("above 0" if spread["low"] > 0 else "below 0" if spread["high"] < 0 else "contains 0"
                ) if spread["n"] > 1 else "contains 0"
        rows[name] = {"per seed": [round(v, digits) for v in measured], "n": spread["n"],
                      **{key: round(float(spread[key]), digits) for key in ("mean", "low", "high")}, "interval": side}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(index_name)


def figure(runs: list[dict], label: Callable[[dict], str], key: Curve = "train_error", ylabel: str = "training error",
           title: str | None = None, threshold: float | None = None) -> Figure:
    """Per configuration, the per-epoch curve ``key`` (mean over seeds, error bars of one standard
    deviation), labelled ``label(config)`` with its number of seeds.

    Args:
        runs: the results file's runs (diverged ones, without a curve, are left out).
        label: a configuration's name in the legend.
        key: which per-epoch list of a run to draw.
        ylabel, title: the axis label and the figure's title.
        threshold: a level drawn as a dashed line (None: none).
    """
    series, spread = {}, {}
    for curve in curves(runs, key):
        name = f"{label(curve['config'])}, {curve['seeds']} seeds"
        series[name], spread[name] = curve["mean"], curve["std"]
    fig = plot_lines(series, "epoch", ylabel, title=title, start=1, spread=spread)
    if threshold is not None:
        fig.axes[0].axhline(threshold, color="gray", linestyle="--", linewidth=1)
    return fig


def differences(runs: list[dict], label: Callable[[dict], str], baseline: str = "baseline",
                skip: tuple[str, ...] = (), metric: Metric = lambda run: run["test_acc"],
                diverged_as: float | None = None) -> dict[str, list[float]]:
    """Per configuration other than ``baseline`` and ``skip``, seed by seed (seeds in increasing
    order): its ``metric`` minus the ``baseline``'s of the same seed, ``metric(run) - metric(baseline run)``.

    Args:
        runs: the results file's runs (``config``, ``seed``, the figures, ``diverged`` when it did).
        label: a configuration's name; ``baseline`` and ``skip`` are such names.
        baseline: the configuration every other one is compared with.
        skip: configurations left out of the answer.
        metric: the figure of a finished run compared (default: its test accuracy).
        diverged_as: the ``metric`` a diverged run counts as (e.g. 0.0 for an accuracy: it learned
            nothing); None leaves diverged runs out. A seed whose baseline diverged, or that has no
            baseline run, is always left out: there is nothing to compare with.
    """
    base = {r["seed"]: metric(r) for r in runs if label(r["config"]) == baseline and not r.get("diverged")}
    out: dict[str, list[float]] = {}
    for r in sorted(runs, key=lambda run: run["seed"]):
        name = label(r["config"])
        if name in (baseline, *skip) or r["seed"] not in base or (measured := diverged_as if r.get("diverged") else metric(r)) is None:
            continue
        out.setdefault(name, []).append(measured - base[r["seed"]])
    return out


def difference_figure(values: dict[str, list[float]], title: str) -> Figure:
    """``differences`` in points: per configuration a bar of the mean over seeds, error bars of the 95% interval."""
    spreads = {name: interval(100 * d for d in measured) for name, measured in values.items()}
    return plot_bars(list(spreads), [s["mean"] for s in spreads.values()], "test accuracy minus baseline (points)",
                     title=title, errors=[(s["mean"] - s["low"], s["high"] - s["mean"]) for s in spreads.values()])
