"""Mean, spread and a 95% interval over seeds, per configuration of a results file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable

from scipy import stats as scipy_stats


def interval(values: Iterable[float], level: float = 0.95) -> dict:
    """``{n, mean, std, low, high}``: the sample mean, the sample standard deviation (n - 1) and
    the Student-t interval mean +- t_{(1+level)/2, n-1} std / sqrt(n). With one value, or an
    infinite one (a threshold never reached), std is NaN and low = high = mean."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarise")
    n, mean = len(values), statistics.fmean(values)
    if n == 1 or not all(math.isfinite(v) for v in values):
        return {"n": n, "mean": mean, "std": math.nan, "low": mean, "high": mean}
    std = statistics.stdev(values)
    half = scipy_stats.t.ppf((1 + level) / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half}


def config_label(config: dict) -> str:
    """A configuration as one short text, its keys in order: ``activation=relu, lr=0.01``."""
    return ", ".join(f"{key}={value}" for key, value in config.items())


def group_runs(runs: Iterable[dict]) -> dict[str, list[dict]]:
    """Runs grouped by configuration (in the order of first appearance)."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run["config"], sort_keys=True), []).append(run)
    return groups


def summary(runs: Iterable[dict], metrics: dict[str, Callable[[dict], float]] | None = None) -> list[dict]:
    """One row per configuration: its config, number of seeds and the ``interval`` of each metric.

    ``metrics`` maps a name to a function of one run; the default is the final test accuracy,
    the final training error, the final validation accuracy and the train-test gap.
    """
    metrics = metrics or {
        "test_acc": lambda run: run["test_acc"],
        "final_train_error": lambda run: run["train_error"][-1],
        "final_val_acc": lambda run: run["val_acc"][-1],
        "gap": lambda run: (1 - run["train_error"][-1]) - run["test_acc"],
    }
    rows = []
    for group in group_runs(runs).values():
        row = {"config": group[0]["config"], "seeds": len(group)}
        row.update({name: interval(metric(run) for run in group) for name, metric in metrics.items()})
        rows.append(row)
    return rows


def curves(runs: Iterable[dict], key: str = "train_error") -> list[dict]:
    """Per configuration, a per-epoch curve (``key``: train_error, train_loss or val_acc) over seeds:
    ``{config, seeds, mean: [...], std: [...]}`` with the sample standard deviation per epoch
    (NaN for one seed), for plotting with error bars. Diverged runs (no curve) are left out."""
    rows = []
    for group in group_runs(runs).values():
        finished = [run[key] for run in group if run[key]]
        if not finished:
            continue
        per_epoch = list(zip(*finished))
        rows.append({"config": group[0]["config"], "seeds": len(finished),
                     "mean": [statistics.fmean(values) for values in per_epoch],
                     "std": [statistics.stdev(values) if len(values) > 1 else math.nan for values in per_epoch]})
    return rows
