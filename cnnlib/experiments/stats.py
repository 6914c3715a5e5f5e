"""Mean, spread and a 95% interval over seeds, per configuration of a results file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from typing import Literal

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


def config_text(config: dict) -> str:
    """A configuration as canonical JSON text, the same whatever the order of its keys."""
    return json.dumps(config, sort_keys=True)


def group_runs(runs: Iterable[dict]) -> dict[str, list[dict]]:
    """Runs grouped by configuration (in the order of first appearance)."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(config_text(run["config"]), []).append(run)
    return groups


Curve = Literal["train_error", "train_loss", "val_acc"]  # the per-epoch lists of a run


def curves(runs: Iterable[dict], key: Curve = "train_error") -> list[dict]:
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
