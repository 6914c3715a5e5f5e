"""The tables and figures that lessons draw from results files."""

import math

import pytest

from cnnlib.experiments import report


def run(kind, seed, train_error, test_acc, diverged=False):
    record = {"config": {"kind": kind, "depth": 20}, "seed": seed, "train_error": train_error, "test_acc": test_acc}
    return {**record, "diverged": "loss nan", "train_error": []} if diverged else record


RUNS = [run("plain", 0, [0.5, 0.2], 0.80), run("plain", 1, [0.7, 0.4], 0.90),
        run("residual", 0, [0.4, 0.1], 0.91), run("residual", 1, [], None, diverged=True)]


def test_table_has_a_row_per_configuration_with_means_and_spreads():
    frame = report.table(RUNS, lambda c: (c["kind"], c["depth"]), {"test acc": lambda r: r["test_acc"]},
                         index_names=["kind", "depth"])
    assert list(frame.index) == [("plain", 20), ("residual", 20)] and frame.index.names == ["kind", "depth"]
    assert frame.loc[("plain", 20), ["runs", "diverged"]].tolist() == [2, 0]
    assert frame.loc[("plain", 20), "test acc"] == pytest.approx(0.85)
    assert frame.loc[("plain", 20), "test acc std"] == pytest.approx(0.1 / math.sqrt(2))
    assert frame.loc[("residual", 20), ["runs", "diverged"]].tolist() == [2, 1]
    assert frame.loc[("residual", 20), "test acc"] == pytest.approx(0.91)
    assert math.isnan(frame.loc[("residual", 20), "test acc std"])  # one finished run: no spread


def test_figure_draws_mean_curves_with_one_standard_deviation():
    ax = report.figure(RUNS, lambda c: f"{c['kind']}-{c['depth']}", threshold=0.3).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain-20, 2 seeds", "residual-20, 1 seeds"]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.6, 0.3])
    plain_bars = ax.collections[0]  # the first curve's error bars: +- the standard deviation of (0.5, 0.7)
    (low, high) = plain_bars.get_segments()[0][:, 1]
    assert (low, high) == pytest.approx((0.6 - 0.1 * math.sqrt(2), 0.6 + 0.1 * math.sqrt(2)))
    assert ax.lines[-1].get_ydata()[0] == 0.3  # the threshold


def test_with_spread_writes_mean_and_standard_deviation_as_text():
    frame = report.table(RUNS, lambda c: c["kind"], {"test acc": lambda r: r["test_acc"],
                                                     "epochs": lambda r: math.inf if r["test_acc"] < 0.85 else 2.0})
    text = report.with_spread(frame)
    assert list(text.columns) == ["runs", "diverged", "test acc", "epochs"]
    assert text.loc["plain", "test acc"] == "0.850 ± 0.071" and text.loc["residual", "test acc"] == "0.910"
    assert text.loc["plain", "epochs"] == "inf" and text.loc["residual", "runs"] == 2


def test_intervals_lists_the_values_then_mean_and_95_percent_bounds():
    frame = report.intervals({"plain": [0.06, 0.05, 0.09], "residual": [-0.005]}, digits=3, index_name="difference")
    assert frame.index.name == "difference"
    assert list(frame.columns) == ["per seed", "n", "mean", "low", "high", "interval"]
    assert frame.loc["plain", "per seed"] == [0.06, 0.05, 0.09] and frame.loc["plain", "n"] == 3
    half = 4.302653 * 0.020817 / math.sqrt(3)  # t(0.975, 2) times the standard error
    assert frame.loc["plain", ["low", "high"]].tolist() == pytest.approx([0.0667 - half, 0.0667 + half], abs=1e-3)
    assert frame.loc["residual", ["mean", "low", "high"]].tolist() == [-0.005] * 3  # one seed: no interval
    assert frame["interval"].tolist() == ["above 0", "contains 0"]
    noisy = report.intervals({"a": [-0.01, 0.02, 0.0], "b": [-0.02, -0.03, -0.025]})
    assert noisy["interval"].tolist() == ["contains 0", "below 0"]


def test_differences_pair_each_configuration_with_the_baseline_of_its_seed():
    runs = [{"config": {"kind": kind}, "seed": seed, "test_acc": acc}
            for kind, seed, acc in (("baseline", 0, 0.80), ("baseline", 1, 0.90), ("plain", 0, 0.85),
                                    ("plain", 1, 0.80), ("plain", 2, 0.99), ("teacher", 0, 0.95))]
    label = lambda config: config["kind"]  # noqa: E731
    assert report.differences(runs, label) == {"plain": pytest.approx([0.05, -0.10]), "teacher": pytest.approx([0.15])}
    assert report.differences(runs, label, skip=("teacher",)) == {"plain": pytest.approx([0.05, -0.10])}
    error = lambda run: 1 - run["test_acc"]  # noqa: E731
    assert report.differences(runs, label, baseline="plain", metric=error) == {
        "baseline": pytest.approx([0.05, -0.10]), "teacher": pytest.approx([-0.10])}


def test_differences_of_diverged_runs():
    """A diverged baseline leaves its seed out; a diverged configuration is left out, or counts as
    ``diverged_as``."""
    def run(kind, seed, acc):
        return {"config": {"kind": kind}, "seed": seed,
                **({"test_acc": None, "diverged": "loss nan"} if acc is None else {"test_acc": acc})}
    runs = [run("baseline", 0, 0.80), run("baseline", 1, None), run("mixup", 0, None), run("mixup", 1, 0.70),
            run("cosine", 0, 0.85)]
    label = lambda config: config["kind"]  # noqa: E731
    assert report.differences(runs, label) == {"cosine": pytest.approx([0.05])}
    assert report.differences(runs, label, diverged_as=0.0) == {"mixup": pytest.approx([-0.80]),
                                                                "cosine": pytest.approx([0.05])}
    ax = report.difference_figure({"plain": [0.05, -0.10, 0.02]}, "title").axes[0]
    assert ax.patches[0].get_height() == pytest.approx(100 * (0.05 - 0.10 + 0.02) / 3)
    assert ax.get_title() == "title" and [t.get_text() for t in ax.get_xticklabels()] == ["plain"]


def test_differences_are_in_seed_order_whatever_the_file_order():
    runs = [{"config": {"name": n}, "seed": s, "test_acc": a}
            for n, s, a in [("baseline", 4, 0.5), ("x", 4, 0.7), ("baseline", 1, 0.6), ("x", 1, 0.65)]]
    got = report.differences(runs, lambda config: config["name"])
    assert list(got) == ["x"] and got["x"] == pytest.approx([0.05, 0.2])  # seed 1, then seed 4
