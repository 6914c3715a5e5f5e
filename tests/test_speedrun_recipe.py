import copy
import itertools

import pytest
import torch
from torch.optim.swa_utils import update_bn

from cnnlib.training.data import DeviceLoader, fashion_mnist
from cnnlib.training.data import train_val_split
from cnnlib.models import get_model
from cnnlib.lessons.viz import plot_time_to_accuracy
from cnnlib.training.loop import Callback, evaluate
from cnnlib.training.speed import EMA
from cnnlib.training.speedrun_recipe import CONFIG, build_model, epochs_for, epochs_within, paired_evaluations, run


@pytest.fixture(scope="module")
def train_split():
    return fashion_mnist(train=True)


def test_train_val_split_is_disjoint_balanced_and_fixed(train_split):
    train, val = train_val_split(train_split, 1000, seed=0)
    assert len(train.data) == 59_000 and len(val.data) == 1000 and type(val) is type(train_split)
    assert torch.bincount(val.targets).tolist() == [100] * 10
    rows = {bytes(img.numpy()) for img in val.data[:200]}
    assert not rows & {bytes(img.numpy()) for img in train.data[:20_000]}  # (Fashion-MNIST has no duplicates here)
    assert torch.equal(train_val_split(train_split, 1000, seed=0)[1].targets, val.targets)


def test_the_default_network_is_small_resnet(train_split):
    loader = DeviceLoader(train_split, 64, shuffle=False, subset=200, device="cpu")
    ours = build_model({**CONFIG, "whiten": False}, loader)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in get_model("small_resnet").parameters())
    assert sum(p.numel() for p in ours.parameters()) == 308_538


def test_whitened_stem(train_split):
    loader = DeviceLoader(train_split, 64, shuffle=False, subset=200, device="cpu")
    weight = build_model(CONFIG, loader).conv1.weight
    torch.testing.assert_close(weight[1::2], -weight[0::2])


def test_a_short_run_records_every_epoch_and_its_times():
    record = run(dict(epochs=2, batch_size=64, start_size=20), train_subset=512, eval_subset=200,
                 targets=(0.0, 1.01), log=None, device="cpu")
    assert [row["epoch"] for row in record["epochs"]] == [1, 2]
    assert [row["size"] for row in record["epochs"]] == [20, 28]
    first, last = record["epochs"]
    assert 0 < first["seconds"] < last["seconds"] == record["seconds"]
    assert record["time_to"] == {0.0: first["seconds"], 1.01: None}
    assert 0.2 < record["acc"] <= 1 and last["train_loss"] < first["train_loss"] and record["examples_per_s"] > 0
    assert 0 <= last["train_error"] <= 1
    assert record["split_sizes"] == {"train": 55_000, "eval": 5000} and record["flip_tta"]


def test_the_recipe_trains_with_fits_loop_and_takes_more_callbacks():
    steps, evaluated = [], []

    class Count(Callback):
        def after_step(self, model):
            steps.append(model.training)

        def after_epoch(self, history):
            evaluated.append(history.test_acc[-1])

    record = run(dict(epochs=2, batch_size=64, ema_decay=0.0, flip_tta=False), train_subset=256, eval_subset=100,
                 log=None, device="cpu", callbacks=[Count()])
    assert steps == [True] * 8 and evaluated == [row["acc"] for row in record["epochs"]]


def test_paired_evaluations_judge_the_same_weights_every_way(train_split):
    train = DeviceLoader(train_split, 64, shuffle=False, subset=256, device="cpu")
    evals = DeviceLoader(train_split, 100, shuffle=False, subset=200, device="cpu")
    model = build_model({**CONFIG, "whiten": False}, train).eval()
    ema = EMA(model, 0.9)
    for _ in range(3):
        ema.update(model)  # an unchanging model: its average is the model, statistics included
    got = paired_evaluations(model, ema, train, evals, None, False, tta=True, bn_batches=2)
    assert set(got) == {"raw", "raw_tta", "ema", "ema_tta", "ema_recomputed", "ema_recomputed_tta"}
    assert got["ema"] == got["raw"] and got["ema_tta"] == got["raw_tta"]
    recomputed = copy.deepcopy(model)
    update_bn(itertools.islice(train, 2), recomputed)
    for ours, reference, raw in zip(ema.module.buffers(), recomputed.buffers(), model.buffers()):
        torch.testing.assert_close(ours, reference)
        assert ours.dtype != torch.float32 or not torch.equal(ours, raw)  # the statistics changed; the model's did not
    assert got["ema_recomputed"] == evaluate(recomputed, evals, "cpu", None)


def test_a_run_with_paired_final_evaluations_agrees_with_its_own_last_epoch():
    record = run(dict(epochs=1, batch_size=64), train_subset=256, eval_subset=100, log=None, device="cpu",
                 paired_final=True)
    assert record["final"]["ema_tta"] == record["acc"]
    without = run(dict(epochs=1, batch_size=64, ema_decay=0.0, flip_tta=False), train_subset=256, eval_subset=100,
                  log=None, device="cpu", paired_final=True)
    assert without["final"] == {"raw": without["acc"]}


def test_mnist_runs_without_flips_and_reports_the_test_set_last():
    record = run(dict(epochs=1, batch_size=64), dataset="mnist", train_subset=256, eval_subset=100, log=None,
                 device="cpu", final_test=True)
    assert record["dataset"] == "mnist" and 0 <= record["acc"] <= 1 and 0.1 < record["test_acc"] <= 1
    assert record["train_examples"] == 256  # 4 full batches of 64
    assert record["split_sizes"] == {"train": 55_000, "eval": 5000} and not record["flip_tta"]
    assert record["split"] == "val" and "test_acc" not in run(dict(epochs=1, batch_size=64), dataset="mnist",
                                                               train_subset=128, eval_subset=50, log=None)


def test_epochs_for_divides_the_time_by_an_epoch_and_clamps():
    # an epoch: (60,000 + 20,000 / 3) / 1,000 = 66.67 s
    assert epochs_for(600, 1000, 60_000, 20_000, 12) == 9
    assert epochs_for(1, 1000, 60_000, 20_000, 12) == 1 and epochs_for(10**6, 1000, 60_000, 20_000, 12) == 12
    with pytest.raises(ValueError, match="must be positive"):
        epochs_for(600, 0.0, 60_000, 20_000, 12)


def test_epochs_within_probes_this_machine():
    small = dict(epochs=3, batch_size=64)
    assert epochs_within(1e-3, small, probe_steps=2, device="cpu") == 1
    assert epochs_within(1e6, small, probe_steps=2, device="cpu") == 3


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown config key.*'lr_max'"):
        run(dict(lr_max=1.0))
    with pytest.raises(ValueError, match="split 'train'"):
        run(split="train")


def test_the_time_to_accuracy_plot_draws_one_curve_per_run():
    rows = [dict(epoch=1, seconds=1.0, acc=0.9), dict(epoch=2, seconds=2.0, acc=0.95)]
    records = [dict(seed=s, split="val", epochs=rows, variant="full recipe") for s in (0, 1)]
    fig = plot_time_to_accuracy(records)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 + 2 and list(ax.lines[0].get_xdata()) == [1.0, 2.0]  # 2 runs, 2 target lines
