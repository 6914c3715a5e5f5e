"""The experiments: every one runs at smoke size; the runner resumes without redoing or losing
runs; results files are written atomically and refuse to mix experiments, protocols or machines;
the protocol's split and the analyses compute what their docstrings say."""

import json
import math
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from cnnlib.experiments import EXPERIMENTS, get_experiment, load_results, run_experiment
from cnnlib.experiments import (alexnet_tricks, bag_of_tricks, d2l_accuracy, degradation, regularisers, relu_tanh,
                                speedrun, speedrun_search)
from cnnlib.experiments.__main__ import main
from cnnlib.experiments.protocol import Scale, Splits, epochs_to_reach, train_val_split
from cnnlib.experiments.runner import Context, chosen_network, save_weights
from cnnlib.experiments.results import (ResultsFile, ResultsMismatch, load, machine, problems, provenance,
                                       write_json_atomic)
from cnnlib.experiments.stats import curves, interval
from cnnlib.training.data import fashion_mnist
from cnnlib.training.tricks import warmup_cosine_factor
from cnnlib.training.loop import seed_everything

SMOKE = Scale.of(True)


@pytest.fixture(scope="module")
def splits():
    return Splits.load(SMOKE)


def smoke_problems(data: dict) -> list[str]:
    """The schema, less what smoke runs cannot have (seeds, examples, a clean commit, smoke=False)."""
    allowed = ("is not a clean 40-hex commit", "smoke runs", "fewer than")
    return [p for p in problems(data) if not any(a in p for a in allowed)]


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_runs_at_smoke_size(name, splits, tmp_path):
    experiment = EXPERIMENTS[name]
    out = tmp_path / f"{name}.json"
    results = run_experiment(experiment, out, seeds=1, smoke=True, command="test", splits=splits, progress=False)
    data = load(out)
    assert data == results.data and smoke_problems(data) == []
    assert [run["config"] for run in data["runs"]] == experiment.configs(SMOKE)
    assert data["protocol"] == experiment.protocol(SMOKE) and data["smoke"] is True
    assert all(run["train_examples"] == SMOKE.train for run in data["runs"])
    if name == "googlenet":  # d2l's constant rate, and the variant whose rate decays along a cosine
        last_lr = {run["config"].get("schedule", "constant"): run["lr"][-1] for run in data["runs"]}
        assert last_lr["constant"] == 0.1 and 0 < last_lr["cosine"] < 0.05


def counting(experiment, fail_at=None):
    """The experiment with its ``run`` counted, raising KeyboardInterrupt at call number ``fail_at``."""
    calls = []

    def run(config, seed, context):
        calls.append((json.dumps(config, sort_keys=True), seed))
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return experiment.run(config, seed, context)

    return replace(experiment, run=run), calls


def test_an_interrupted_experiment_resumes_without_redoing_or_losing_runs(splits, tmp_path):
    out = tmp_path / "relu_tanh.json"
    interrupted, calls = counting(relu_tanh.EXPERIMENT, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(interrupted, out, seeds=2, smoke=True, splits=splits, progress=False)
    kept = load(out)["runs"]
    assert len(kept) == 2 == len(calls) - 1
    resumed, more = counting(relu_tanh.EXPERIMENT)
    run_experiment(resumed, out, seeds=2, smoke=True, splits=splits, progress=False)
    runs = load(out)["runs"]
    assert runs[:2] == kept  # nothing lost, nothing rewritten
    assert len(runs) == 2 * len(relu_tanh.configs(SMOKE)) and set(more).isdisjoint(calls[:2])
    assert calls[2] == more[0]  # the interrupted run is the first one done again
    again, none = counting(relu_tanh.EXPERIMENT)
    run_experiment(again, out, seeds=2, smoke=True, splits=splits, progress=False)
    assert none == [] and load(out)["runs"] == runs


def test_results_refuse_another_experiment_protocol_or_machine(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    ResultsFile(out, "a", "cmd", smoke=True, protocol={"epochs": 1}).add(
        {"config": {}, "seed": 0, "train_examples": 1, "train_loss": [1.0], "train_error": [0.5], "val_acc": [0.5],
         "test_acc": 0.5, "seconds": 1.0})
    with pytest.raises(ResultsMismatch, match="holds experiment 'a', not 'b'"):
        ResultsFile(out, "b", "cmd", smoke=True, protocol={"epochs": 1})
    with pytest.raises(ResultsMismatch, match="protocol"):
        ResultsFile(out, "a", "cmd", smoke=True, protocol={"epochs": 2})
    with pytest.raises(ResultsMismatch, match="smoke runs and this is a full run"):
        ResultsFile(out, "a", "cmd", smoke=False, protocol={"epochs": 1})
    here = machine()
    other = {**here, "cpu_capability": "AVX2" if here["cpu_capability"] == "AVX512" else "AVX512"}  # not this CPU's
    monkeypatch.setattr("cnnlib.experiments.results.machine", lambda: other)
    with pytest.raises(ResultsMismatch, match="different machines"):
        ResultsFile(out, "a", "cmd", smoke=True, protocol={"epochs": 1})


def test_a_run_is_recorded_once_and_complete(tmp_path):
    results = ResultsFile(tmp_path / "r.json", "a", "cmd", smoke=True, protocol={})
    run = {"config": {"x": 1}, "seed": 0, "train_examples": 1, "train_loss": [1.0], "train_error": [0.5],
           "val_acc": [0.5], "test_acc": 0.5, "seconds": 1.0}
    with pytest.raises(ValueError, match="needs \\['test_acc'\\]"):
        results.add({k: v for k, v in run.items() if k != "test_acc"})
    results.add(run)
    assert results.has({"x": 1}, 0) and not results.has({"x": 1}, 1)
    with pytest.raises(ValueError, match="already in"):
        results.add(run)


def test_json_writes_are_atomic(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"runs": [1]})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"runs": [object()]})  # fails halfway through the dump
    assert json.loads(path.read_text()) == {"runs": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644


def test_schema_problems_are_named():
    good = {"experiment": "x", "command": "c", "commit": "a" * 40, "machine": machine(),
            "created": "2026-01-01T00:00:00+00:00", "runs": [
                {"config": {"k": 1}, "seed": s, "train_examples": 55000, "epochs": 1, "train_loss": [0.5],
                 "train_error": [0.2], "val_acc": [0.8], "test_acc": 0.8, "seconds": 3.0} for s in range(3)]}
    assert problems(good) == []
    bad = {**good, "commit": "a" * 40 + "-dirty", "runs": good["runs"][:2] + [{**good["runs"][2], "val_acc": []}]}
    found = problems(bad)
    assert any("not a clean" in p for p in found) and any("lengths" in p for p in found)
    assert any("2 seeds" in p for p in problems({**good, "runs": good["runs"][:2]}))
    assert problems({k: v for k, v in good.items() if k != "machine"}) == ["missing top-level key 'machine'"]


def test_validation_split_is_fixed_balanced_and_disjoint():
    full = fashion_mnist(train=True)
    train, val = train_val_split(full)
    assert (len(train.targets), len(val.targets)) == (55_000, 5_000)
    assert torch.bincount(val.targets).tolist() == [500] * 10
    again_train, again_val = train_val_split(full)
    assert torch.equal(val.data, again_val.data) and torch.equal(train.targets, again_train.targets)
    together = torch.cat([train.data, val.data]).flatten(1)
    assert len(torch.unique(together, dim=0)) == len(torch.unique(full.data.flatten(1), dim=0))
    with pytest.raises(ValueError, match="val_size must be between 1 and 59999, got 60000"):
        train_val_split(full, val_size=60_000)


def test_epochs_to_reach_interpolates_from_chance():
    assert epochs_to_reach([0.5, 0.2, 0.1], 0.2) == 2.0
    assert epochs_to_reach([0.5, 0.2, 0.1], 0.15) == pytest.approx(2.5)
    assert epochs_to_reach([0.5], 0.7) == pytest.approx(0.5)  # from 0.9 at epoch 0
    assert epochs_to_reach([0.5, 0.4], 0.1) == math.inf


def test_interval_is_students_t():
    row = interval([1.0, 2.0, 3.0])
    assert (row["mean"], row["std"]) == (2.0, 1.0)
    assert row["high"] - row["mean"] == pytest.approx(4.302653 / math.sqrt(3))
    assert math.isnan(interval([1.0])["std"]) and interval([1.0, math.inf])["mean"] == math.inf


def test_curves_average_each_epoch_over_seeds():
    runs = [{"config": {"a": 1}, "seed": s, "train_error": [0.5 + s / 10, 0.2]} for s in range(3)]
    runs.append({"config": {"a": 2}, "seed": 0, "train_error": []})  # diverged: no curve
    (row,) = curves(runs)
    assert row["seeds"] == 3 and row["mean"] == pytest.approx([0.6, 0.2]) and row["std"] == pytest.approx([0.1, 0.0])


def test_load_results_says_how_to_make_a_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLIB_RESULTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m cnnlib.experiments degradation"):
        load_results("degradation")
    write_json_atomic(tmp_path / "degradation.json", {"experiment": "degradation"})
    assert load_results("degradation") == {"experiment": "degradation"}


def fake_run(activation, lr, seed, train_error, val_acc):
    return {"config": {"activation": activation, "lr": lr}, "seed": seed, "train_error": train_error,
            "val_acc": val_acc}


def test_relu_tanh_picks_each_rate_on_validation_and_takes_the_ratio():
    runs = [fake_run("relu", 0.01, s, [0.3, 0.12, 0.08], [0.8, 0.9, 0.91]) for s in range(2)]
    runs += [fake_run("relu", 0.1, s, [0.3, 0.05, 0.04], [0.8, 0.85, 0.86]) for s in range(2)]  # slower on val
    runs += [fake_run("tanh", 0.03, s, [0.5, 0.3, 0.1], [0.7, 0.8, 0.9]) for s in range(2)]
    assert relu_tanh.best_learning_rates(runs) == {"relu": 0.01, "tanh": 0.03}
    relu_epochs = epochs_to_reach([0.3, 0.12, 0.08], 0.1)
    assert relu_tanh.speedup(runs) == pytest.approx([3.0 / relu_epochs] * 2)
    assert all(math.isnan(r) for r in relu_tanh.speedup(runs, threshold=0.06))  # relu never reaches 6%: no ratio


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_relu_tanh_mean_derivative_is_autograds(activation):
    torch.manual_seed(0)
    net = relu_tanh.four_layer_cnn(activation, 4)
    x = torch.randn(8, 1, 28, 28)
    z = net[:1](x).requires_grad_()  # the first activation's input
    (slope,) = torch.autograd.grad(net[1](z).sum(), z)  # elementwise derivative at every unit
    means = relu_tanh.mean_derivative(net, x)
    assert len(means) == 3 and means[0] == pytest.approx(slope.mean().item(), abs=1e-6)
    assert all(0 < m < 1 for m in means)


def test_relu_tanh_table_and_figure_follow_the_runs():
    runs = [fake_run("relu", 0.01, s, [0.3, 0.12, 0.08], [0.8, 0.9, 0.91 + s / 100]) for s in range(2)]
    runs += [fake_run("tanh", 0.03, s, [0.5, 0.3, 0.2], [0.7, 0.8, 0.85]) for s in range(2)]
    for run in runs:
        run["test_acc"] = run["val_acc"][-1]
    runs.append({**fake_run("tanh", 0.1, 0, [], []), "diverged": "loss nan", "test_acc": None})
    table = relu_tanh.table(runs)
    assert table.loc[("relu", 0.01), "epochs to 10% train error"] == pytest.approx(epochs_to_reach([0.3, 0.12, 0.08], 0.1))
    assert table.loc[("tanh", 0.03), "epochs to 10% train error"] == math.inf
    assert table.loc[("relu", 0.01), "test acc"] == pytest.approx(0.915)
    assert table.loc[("relu", 0.01), "test acc std"] == pytest.approx(0.01 / math.sqrt(2))
    assert table.loc[("tanh", 0.1), ["runs", "diverged"]].tolist() == [1, 1]
    ax = relu_tanh.figure(runs).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["relu (lr 0.01), 2 seeds", "tanh (lr 0.03), 2 seeds"]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.3, 0.12, 0.08])


def test_provenance_names_the_runs_machine_and_commits():
    data = {"experiment": "relu_tanh", "commit": "a" * 40, "created": "2026-11-29T10:00:00+00:00",
            "machine": {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "threads": 2, "torch": "2.14.1", "device": "cpu"},
            "runs": [{"config": {"lr": lr}, "seed": s, "train_examples": 55000, "seconds": 1800.0}
                     for lr in (0.1, 0.01) for s in (0, 1, 2)]}
    assert provenance(data) == ("relu_tanh: 6 runs (2 configurations x seeds [0, 1, 2]), 55,000 training images each; "
                              "AMD EPYC (AVX2), 2 threads, torch 2.14.1, cpu; 3.0 hours; commit aaaaaaa, 2026-11-29")
    for run, commit in zip(data["runs"], ["a" * 40, "a" * 40, "b" * 40, "a" * 40, "b" * 40, "c" * 40]):
        run["commit"] = commit  # a command resumed at two later commits
    assert provenance(data).endswith("3.0 hours; commits aaaaaaa, bbbbbbb, ccccccc, 2026-11-29")


def test_four_layer_cnn_has_four_weighted_layers_and_no_normalisation():
    net = relu_tanh.four_layer_cnn("tanh", 8)
    weighted = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weighted) == 4 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        relu_tanh.four_layer_cnn("sigmoid")


def test_degradation_penalty_is_deeper_minus_shallower_per_seed():
    def fake(kind, depth, seed, train_acc_eval):
        return {"config": {"kind": kind, "depth": depth}, "seed": seed, "train_acc_eval": train_acc_eval,
                "train_error": [0.5, 1 - train_acc_eval], "val_acc": [0.8, 0.85], "test_acc": 0.85}
    runs = [fake("plain", 20, 0, 0.95), fake("plain", 56, 0, 0.90), fake("plain", 20, 1, 0.96),
            fake("plain", 56, 1, 0.92), fake("residual", 20, 0, 0.95), fake("residual", 56, 0, 0.97)]
    penalty = degradation.depth_penalty(runs)
    assert penalty["plain"] == pytest.approx([0.05, 0.04]) and penalty["residual"] == pytest.approx([-0.02])
    table = degradation.table(runs)
    assert list(table.index) == ["plain-20", "plain-56", "residual-20", "residual-56"]
    assert table.loc["plain-56", "train error, eval mode"] == pytest.approx(0.09)
    assert len(degradation.figure(runs).axes[0].get_legend().get_texts()) == 4


def test_alexnet_tricks_names_and_removal_costs():
    def fake(config, seed, test_acc):
        return {"config": config, "seed": seed, "test_acc": test_acc, "train_acc_eval": 0.95,
                "train_error": [0.3, 0.1], "val_acc": [0.8, test_acc]}
    configs = alexnet_tricks.configs(SMOKE)
    assert [alexnet_tricks.name(c) for c in configs] == ["all three", "no LRN", "2x2 pooling", "no dropout"]
    runs = [fake(configs[0], 0, 0.90), fake(configs[0], 1, 0.91), fake(configs[1], 0, 0.89), fake(configs[1], 1, 0.92)]
    assert alexnet_tricks.removal_cost(runs) == {"no LRN": pytest.approx([0.01, -0.01])}
    runs[2]["train_acc_eval"] = 0.93
    assert alexnet_tricks.removal_cost(runs, lambda r: 1 - r["train_acc_eval"]) == {"no LRN": pytest.approx([0.02, 0.0])}
    table = alexnet_tricks.table(runs)
    assert table.loc["all three", "train-test gap"] == pytest.approx(0.95 - 0.905)


def test_speedrun_contributions_table_and_protocol():
    def fake(variant, seed, val_acc, diverged=False):
        return {"config": {"variant": variant}, "seed": seed, "val_acc": [] if diverged else [0.5, val_acc],
                "train_error": [] if diverged else [0.4, 0.05 + seed / 100],
                "test_acc": None if diverged else val_acc - 0.01, "seconds": 100.0 + seed, "examples_per_s": 2000.0,
                **({"diverged": "nan"} if diverged else {})}
    runs = [fake("full recipe", 0, 0.93), fake("full recipe", 1, 0.94), fake("no EMA", 0, 0.92),
            fake("no EMA", 1, 0.95), fake("no whitening", 0, 0.0, diverged=True)]
    gains = speedrun.contribution(runs)
    assert gains == {"no EMA": pytest.approx([0.01, -0.01]), "no whitening": pytest.approx([0.93])}  # diverged: 0
    runs_full_diverged = [fake("full recipe", 0, 0.0, diverged=True), *runs[1:]]  # seed 0: nothing to compare with
    assert speedrun.contribution(runs_full_diverged) == {"no EMA": pytest.approx([-0.01])}
    table = speedrun.table(runs)
    assert table.loc["full recipe", "val acc"] == pytest.approx(0.935) and table.loc["no whitening", "diverged"] == 1
    assert table.loc["no EMA", "train error"] == pytest.approx(0.055)
    assert len(speedrun.figure(runs).axes[0].patches) == 3
    ax = speedrun.curves(runs).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["full recipe, 2 seeds", "no EMA, 2 seeds"]
    assert list(ax.containers[0].lines[0].get_ydata()) == pytest.approx([0.5, 0.935])
    assert [c["variant"] for c in speedrun.configs(SMOKE)][0] == speedrun.FULL
    full = speedrun.protocol(Scale.of(False))
    assert full["amp"] is None and full["epochs"] == speedrun.EPOCHS > 1 and json.loads(json.dumps(full)) == full  # resumable as stored


def test_speedrun_search_table_and_paired_differences():
    def fake(variant, reached, final):
        return {"config": {"variant": variant}, "seed": 0, "val_acc": [0.9, final["ema_tta"]], "test_acc": 0.92,
                "seconds": 600.0, "examples_per_s": 550.0, "epochs": 2, "time_to": {"0.93": reached, "0.94": None},
                "final": final}
    first = dict(raw=0.921, raw_tta=0.922, ema=0.923, ema_tta=0.925, ema_recomputed=0.924, ema_recomputed_tta=0.924)
    second = dict(raw=0.931, raw_tta=0.933, ema=0.930, ema_tta=0.932, ema_recomputed=0.934, ema_recomputed_tta=0.935)
    runs = [fake("recipe, 7 epochs", None, first), fake("recipe, 12 epochs", 580.0, second)]
    table = speedrun_search.table(runs)
    assert math.isnan(table.loc["recipe, 7 epochs", "seconds to 0.93"]) and table["seconds to 0.94"].isna().all()
    assert table.loc["recipe, 12 epochs", "seconds to 0.93"] == 580.0 and table.loc["recipe, 12 epochs", "val acc"] == 0.932
    pairs = speedrun_search.paired_differences(runs)
    assert pairs == {"EMA (averaged statistics) minus raw weights": pytest.approx([0.003, -0.001]),
                     "EMA, statistics recomputed minus averaged": pytest.approx([-0.001, 0.003]),
                     "flip TTA minus none (EMA)": pytest.approx([0.002, 0.002])}
    assert list(speedrun_search.pairs_table(runs)["n"]) == [2, 2, 2]
    recipe = speedrun_search.recipe({"variant": "batch 128, 7 epochs"}, Scale.of(False))
    assert recipe["batch_size"] == 128 and recipe["lr"] == 0.1 and recipe["amp"] is None
    assert speedrun_search.recipe({"variant": "batch 128, 7 epochs"}, SMOKE)["epochs"] == 1
    assert speedrun_search.EXPERIMENT.seeds == 1 and [c["variant"] for c in speedrun_search.configs(SMOKE)] == list(
        speedrun_search.VARIANTS)


def learning_rates(optimizer: torch.optim.Optimizer, scheduler, steps: int) -> list[float]:
    """The first group's rate at each of ``steps`` optimizer steps, the scheduler stepped after each."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_degradation_and_bag_of_tricks_networks():
    """The parameter counts measured from the networks before they became ``small_resnet`` calls
    (tests/test_resnet.py holds their state_dict layouts)."""
    def count(model):
        return sum(p.numel() for p in model.parameters())

    plain, residual = degradation.cifar_network(20, "plain"), degradation.cifar_network(20, "residual")
    assert (plain.shortcut, residual.shortcut, count(plain), count(residual)) == ("none", "zero_pad", 67_906, 67_906)
    with pytest.raises(ValueError, match="kind must be one of"):
        degradation.cifar_network(20, "dense")
    assert count(bag_of_tricks.network(8, resnet_d=False)) == 77_858
    assert count(bag_of_tricks.network(8, resnet_d=True, blocks=2)) == 176_670


def test_degradation_paper_sgd_warms_up_to_0_1_then_decays_to_0():
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = degradation.paper_sgd(model, steps_per_epoch=10, epochs=3)
    rates = learning_rates(optimizer, scheduler, 30)
    assert rates[0] == pytest.approx(0.1 / 5) and rates[4] == pytest.approx(0.1)  # half an epoch of warmup
    assert rates[5:] == sorted(rates[5:], reverse=True) and rates[-1] < 0.001
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 1e-4


def test_alexnet_tricks_network_and_paper_sgd():
    net = alexnet_tricks.network({**alexnet_tricks.ALL_THREE, "lrn": False})
    assert not any("LocalResponseNorm" in type(m).__name__ for m in net.modules())
    assert any("LocalResponseNorm" in type(m).__name__ for m in alexnet_tricks.network(alexnet_tricks.ALL_THREE).modules())
    assert net.features[0].out_channels == alexnet_tricks.CHANNELS[0]
    optimizer, scheduler = alexnet_tricks.paper_sgd(net, steps_per_epoch=4, epochs=2)
    rates = learning_rates(optimizer, scheduler, 8)
    assert rates[0] == pytest.approx(0.01) and rates == sorted(rates, reverse=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert optimizer.defaults["weight_decay"] == 5e-4 and optimizer.defaults["momentum"] == 0.9


def test_alexnet_tricks_dropout_slowdown_is_epochs_to_the_same_training_error():
    def fake(config, seed, curve):
        return {"config": config, "seed": seed, "train_error": curve}
    no_dropout = {**alexnet_tricks.ALL_THREE, "dropout": 0.0}
    runs = [fake(alexnet_tricks.ALL_THREE, 0, [0.5, 0.3, 0.2, 0.1]), fake(no_dropout, 0, [0.3, 0.1, 0.05, 0.02]),
            fake(alexnet_tricks.ALL_THREE, 1, [0.5, 0.4]), fake(no_dropout, 1, [0.6, 0.5])]
    assert alexnet_tricks.dropout_slowdown(runs)[0] == pytest.approx(4 / 2)  # 0.1 reached at epoch 2 without dropout
    assert math.isnan(alexnet_tricks.dropout_slowdown(runs)[1])


def test_alexnet_tricks_never_learned_names_the_seeds_left_at_chance():
    fake = lambda config, seed, train_error: {"config": config, "seed": seed, "train_error": train_error}
    no_lrn = {**alexnet_tricks.ALL_THREE, "lrn": False}
    runs = [fake(no_lrn, 2, [0.902, 0.901]), fake(alexnet_tricks.ALL_THREE, 0, [0.9, 0.2]), fake(no_lrn, 0, [0.5, 0.12]),
            fake(alexnet_tricks.ALL_THREE, 1, [0.5, 0.86])]
    assert alexnet_tricks.never_learned(runs) == {"all three": [1], "no LRN": [2]}
    assert alexnet_tricks.never_learned(runs, margin=0.01) == {"all three": [], "no LRN": [2]}


def test_alexnet_tricks_first_step_compares_the_same_weights_with_and_without_lrn():
    images, labels = torch.rand(8, 1, 28, 28), torch.arange(8)
    no_lrn = {**alexnet_tricks.ALL_THREE, "lrn": False}
    with_lrn, without = (alexnet_tricks.first_step(c, images, labels, seed=3) for c in (alexnet_tricks.ALL_THREE, no_lrn))
    seed_everything(3)
    twin = alexnet_tricks.network(no_lrn).eval()
    seed_everything(3)
    assert all(torch.equal(a, b) for a, b in zip(alexnet_tricks.network(alexnet_tricks.ALL_THREE).parameters(),
                                                  twin.parameters()))
    logits = twin(images)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    (grad,) = torch.autograd.grad(loss, twin.features[0].weight)
    assert without == pytest.approx({"logit std": logits.std().item(), "loss": loss.item(),
                                     "first-layer gradient": grad.norm().item()}, rel=1e-5)
    assert with_lrn["logit std"] < without["logit std"]  # each LRN divides by at least k ** beta


def test_bag_of_tricks_schedules():
    total = 400
    assert [bag_of_tricks.schedule_factor(s, total, 0, False) for s in (0, 99, 100, 200, 300, 399)] == \
        pytest.approx([1, 1, 0.1, 0.01, 0.001, 0.001])
    assert bag_of_tricks.schedule_factor(4, total, 10, False) == pytest.approx(0.5)
    assert bag_of_tricks.schedule_factor(50, total, 10, True) == warmup_cosine_factor(50, 10, total)


def test_bag_of_tricks_differences_table_and_names():
    runs = [{"config": {"model": "student", "changes": c}, "seed": s, "test_acc": 0.8 + d + s / 100}
            for c, d in (([], 0.0), (["mixup"], 0.02)) for s in range(3)]
    assert bag_of_tricks.differences(runs) == {"mixup": pytest.approx([0.02] * 3)}
    for run in runs:
        run.update(train_acc_eval=0.9, train_loss=[1.0, 0.5])
    table = bag_of_tricks.table(runs)
    assert list(table.index) == ["baseline", "mixup"] and table.loc["mixup", "test acc"] == pytest.approx(0.83)
    assert table.loc["mixup", "train-test gap"] == pytest.approx(0.07)
    assert bag_of_tricks.name({"model": "teacher", "changes": ["mixup"]}) == "teacher"
    stacked = {"model": "student", "changes": [*bag_of_tricks.TEACHER_CHANGES, "distillation"]}
    assert bag_of_tricks.name(stacked) == "all stacked"
    assert bag_of_tricks.name({"model": "student", "changes": ["cosine", "mixup"]}) == "cosine+mixup"
    ax = bag_of_tricks.figure(runs).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mixup"] and ax.patches[0].get_height() == pytest.approx(2)


def test_the_teacher_is_chosen_on_validation_accuracy_and_its_weights_loaded(tmp_path):
    runs = [{"config": {"model": "teacher"}, "seed": s, "val_acc": [0.5, v]} for s, v in enumerate((0.8, 0.9, 0.85))]
    context = Context(None, Scale.of(True), SimpleNamespace(runs=runs), tmp_path / "NAME.artifacts")
    is_teacher = lambda config: config["model"] == "teacher"  # noqa: E731
    with pytest.raises(FileNotFoundError, match="teacher-seed1.pt are missing"):
        chosen_network(context, "teacher", is_teacher, torch.nn.Linear(2, 2))
    models = [torch.nn.Linear(2, 2) for _ in runs]
    for seed, model in enumerate(models):
        save_weights(context, "teacher", seed, model)
    fresh = torch.nn.Linear(2, 2)
    seed, teacher = chosen_network(context, "teacher", is_teacher, fresh)
    assert seed == 1 and teacher is fresh and torch.equal(teacher.weight, models[1].weight)
    assert torch.equal(teacher.bias, models[1].bias)
    with pytest.raises(RuntimeError, match="needs a trained baseline, and no baseline run is finished"):
        chosen_network(context, "baseline", lambda config: config.get("regulariser", "") is None, torch.nn.Linear(2, 2))


def test_regularisers_differences_table_and_figure():
    runs = [{"config": {"regulariser": r}, "seed": s, "test_acc": 0.9 + d + s / 100, "train_acc_eval": 0.97}
            for r, d in ((None, 0.0), ("mixup", 0.01), ("distillation", -0.01)) for s in range(3)]
    assert [regularisers.name(c) for c in regularisers.configs(Scale.of(False))] == [
        "baseline", "label-smoothing", "mixup", "distillation"]
    assert regularisers.differences(runs) == {"mixup": pytest.approx([0.01] * 3),
                                              "distillation": pytest.approx([-0.01] * 3)}
    table = regularisers.table(runs)
    assert table.loc["baseline", "train-test gap"] == pytest.approx(0.06)
    assert table.loc["mixup", "test acc"] == pytest.approx(0.92)
    ax = regularisers.figure(runs).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mixup", "distillation"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([1, -1])
    protocol = regularisers.protocol(Scale.of(False))
    assert protocol["augment"] is False and protocol["epochs"] == regularisers.EPOCHS and protocol["lr"] == 0.05


def test_d2l_comparison_sets_our_seeds_beside_d2ls_run():
    runs = [{"config": {"model": "resnet18"}, "seed": s, "test_acc": acc} for s, acc in enumerate((0.90, 0.91, 0.92))]
    table = d2l_accuracy.comparison(runs, "resnet18")
    assert table.loc["ours, 28x28", "test acc"] == pytest.approx(0.91)
    assert table.loc["ours, 28x28", "95% high"] == pytest.approx(0.91 + 4.302653 * 0.01 / math.sqrt(3), 1e-5)
    assert table.loc["d2l, 96x96", "test acc"] == 0.865 and table.loc["d2l, 96x96", "seeds"] == 1
    cosine = [{"config": {"model": "googlenet", "schedule": "cosine"}, "seed": s, "test_acc": 0.95} for s in range(3)]
    table = d2l_accuracy.comparison([{**r, "config": {"model": "googlenet"}} for r in runs] + cosine, "googlenet")
    assert list(table.index) == ["ours, 28x28", "ours, 28x28, cosine decay", "d2l, 96x96"]
    assert table.loc["ours, 28x28, cosine decay", "test acc"] == pytest.approx(0.95)
    assert table.loc["ours, 28x28", "test acc"] == pytest.approx(0.91)


def test_last_epochs_gives_each_seeds_band_of_validation_accuracy():
    runs = [{"config": {"model": "googlenet", "schedule": "cosine"}, "seed": 0, "val_acc": [0.8, 0.9], "test_acc": 0.9},
            {"config": {"model": "googlenet"}, "seed": 1, "val_acc": [0.5, 0.9, 0.8, 0.85], "test_acc": 0.85},
            {"config": {"model": "googlenet"}, "seed": 0, "val_acc": [0.7, 0.88], "test_acc": 0.87}]
    table = d2l_accuracy.last_epochs(runs, n=3)
    assert list(table.index) == ["seed 0", "seed 1", "cosine decay, seed 0"]
    assert table.loc["seed 1"].to_dict() == pytest.approx({"val lowest": 0.8, "val mean": 0.85, "val highest": 0.9,
                                                            "val last": 0.85, "test acc": 0.85})
    assert table.loc["seed 0", "val lowest"] == 0.7  # a run shorter than n: all its epochs


def test_fit_gap_sets_our_training_and_test_accuracy_beside_d2ls():
    runs = [{"seed": s, "train_error": [0.3, error], "test_acc": acc}
            for s, (error, acc) in enumerate([(0.1, 0.88), (0.08, 0.9)])]
    table = d2l_accuracy.fit_gap(runs, "resnet18")
    assert table.loc["ours, 28x28"].to_dict() == pytest.approx({"train acc": 0.91, "test acc": 0.89, "gap": 0.02,
                                                                "epochs": 4})
    assert table.loc["d2l, 96x96"].to_dict() == pytest.approx({"train acc": 0.997, "test acc": 0.865, "gap": 0.132,
                                                               "epochs": 10})
    with pytest.raises(ValueError, match="no training accuracy for 'googlenet'; these do: \\['resnet18'\\]"):
        d2l_accuracy.fit_gap(runs, "googlenet")


def test_multiply_accumulates_at_28_are_a_fraction_of_d2ls_at_96():
    for name in ("googlenet", "resnet18"):
        macs = d2l_accuracy.multiply_accumulates(name)
        assert 0 < macs["native_28"] < macs["d2l_96"] / 5


def test_command_line_lists_and_names_errors(capsys):
    main(["--list"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS)
    with pytest.raises(SystemExit, match="unknown experiment 'relu'. Did you mean 'relu_tanh'"):
        main(["relu"])
    with pytest.raises(ValueError, match="Known experiments: .*relu_tanh"):
        get_experiment("nothing")


def test_command_line_seeds_default_to_the_experiments(monkeypatch, tmp_path):
    seen = []

    def record(experiment, out, seeds, **kwargs):
        seen.append((experiment.name, seeds))
        return SimpleNamespace(runs=[])

    monkeypatch.setattr("cnnlib.experiments.__main__.run_experiment", record)
    for argv in (["relu_tanh"], ["speedrun_search"], ["speedrun_search", "--seeds", "3"]):
        main([*argv, "--out", str(tmp_path / "x.json")])
    assert seen == [("relu_tanh", 3), ("speedrun_search", 1), ("speedrun_search", 3)]


def test_command_line_runs_and_resumes(tmp_path):
    out = tmp_path / "r.json"
    command = [sys.executable, "-m", "cnnlib.experiments", "relu_tanh", "--smoke", "--seeds", "1", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    data = load(out)
    assert data["command"] == "python -m cnnlib.experiments " + " ".join(command[3:])
    assert len(data["runs"]) == len(relu_tanh.configs(SMOKE))
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and load(out) == data
