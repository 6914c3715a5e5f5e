import math
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlib.training import loop as train_module
from cnnlib.training.data import DeviceLoader, fashion_mnist
from cnnlib.training.loop import (Callback, History, TrainingDiverged, autocast_dtype, checkpoint_recipe,
                                  cpu_has_fast_bf16, evaluate, fit, load_checkpoint, predict, save_checkpoint,
                                  seed_everything, xavier_init_)

TIMING = ("examples_per_s", "seconds")


@pytest.fixture(scope="module")
def split():
    return fashion_mnist(train=False)  # 10,000 images: plenty for subsets, quick to load


@pytest.fixture
def loaders(split):
    train = DeviceLoader(split, 32, shuffle=True, subset=256, seed=0, device="cpu")
    test = DeviceLoader(split, 128, shuffle=False, subset=128, seed=1, device="cpu")
    return train, test


def tiny_cnn(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    seed_everything(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(8 * 7 * 7, 10))


def without_timing(history: History) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history.epochs]


def test_fit_learns_and_records_every_epoch(loaders):
    history = fit(tiny_cnn(), *loaders, epochs=2, lr=0.05, amp=None)
    assert [row["epoch"] for row in history.epochs] == [1, 2] and not history.interrupted
    assert set(history.epochs[0]) == {"epoch", "train_loss", "train_acc", "test_acc", "examples_per_s", "seconds", "lr"}
    assert history.train_loss[1] < history.train_loss[0] < math.log(10) + 0.2
    assert history.test_acc[-1] > 0.4  # chance: 0.1
    assert all(s > 0 for s in history.examples_per_s) and history.lr == [0.05, 0.05]


def test_seeded_runs_repeat_exactly(loaders, split):
    runs = []
    for _ in range(2):
        train = DeviceLoader(split, 32, shuffle=True, augment=True, subset=256, seed=0, device="cpu")
        runs.append(without_timing(fit(tiny_cnn(), train, loaders[1], epochs=2, amp=None)))
    assert runs[0] == runs[1]


def test_resume_gives_the_weights_of_an_uninterrupted_run(split, tmp_path):
    def run(epochs, checkpoint=None, resume=False):
        model = tiny_cnn(dropout=0.3)  # dropout: the torch RNG state must be restored too
        train = DeviceLoader(split, 32, shuffle=True, augment=True, subset=128, device="cpu")
        test = DeviceLoader(split, 128, shuffle=False, subset=64, device="cpu")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3 * len(train))
        history = fit(model, train, test, epochs, optimizer=optimizer, scheduler=scheduler, amp=None,
                      checkpoint=checkpoint, resume=resume)
        return model, history

    straight, straight_history = run(3)
    run(2, checkpoint=tmp_path / "run.pt")  # "interrupted" after two epochs
    resumed, resumed_history = run(3, checkpoint=tmp_path / "run.pt", resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert without_timing(resumed_history) == without_timing(straight_history)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left behind


def test_checkpoint_round_trip(tmp_path):
    model, history = tiny_cnn(), History([dict(epoch=1, train_loss=1.0)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recipe = {"model": "tiny_cnn", "tricks": ["cosine"], "resize": None, "variant": {"depth": 20}}
    save_checkpoint(tmp_path / "sub" / "c.pt", model, optimizer, None, history, epoch=1, recipe=recipe)
    assert checkpoint_recipe(tmp_path / "sub" / "c.pt") == recipe
    other = tiny_cnn(seed=1)
    epoch, loaded = load_checkpoint(tmp_path / "sub" / "c.pt", other, torch.optim.SGD(other.parameters(), lr=0.5))
    assert epoch == 1 and loaded == history
    assert torch.equal(other[0].weight, model[0].weight)
    with pytest.raises(ValueError, match="checkpoint"):
        fit(model, [], [], epochs=1, resume=True)


def test_a_huge_learning_rate_diverges(loaders):
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d of 8.*lower learning rate \(lr was 1e\+06"):
        fit(tiny_cnn(), *loaders, epochs=1, lr=1e6, amp=None)


def test_nan_stops_within_the_check_interval_naming_its_step_and_keeps_the_history(loaders, monkeypatch):
    monkeypatch.setattr(train_module, "FINITE_CHECK_EVERY", 3)
    steps = []

    def loss_nan_from_epoch_two_step_five(logits, y):
        steps.append(1)
        loss = nn.functional.cross_entropy(logits, y)
        return loss * float("nan") if len(steps) >= len(loaders[0]) + 5 else loss

    message = r"epoch 2, step 5 of 8.*lower learning rate \(lr was 0.05 there\)"
    with pytest.raises(TrainingDiverged, match=message) as err:
        fit(tiny_cnn(), *loaders, epochs=3, amp=None, loss_fn=loss_nan_from_epoch_two_step_five)
    assert len(steps) == len(loaders[0]) + 6  # step 6 is the next look of the host: 3 steps per look
    assert [row["epoch"] for row in err.value.history.epochs] == [1]


def test_no_host_synchronisation_per_step(loaders, monkeypatch):
    calls = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append(1) or item(self))
    fit(tiny_cnn(), loaders[0], loaders[1], epochs=2, amp=None)
    assert len(loaders[0]) == 8 and len(calls) == 2  # one look per epoch, not one per step


def test_channels_last_is_the_default_for_conv_nets_on_the_cpu(loaders):
    def two_convs():  # the second conv's 4 x 8 x 3 x 3 weight differs in the two layouts (with 1 channel it would not)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(4), nn.Flatten(), nn.Linear(4 * 7 * 7, 10))

    conv = two_convs()
    fit(conv, *loaders, epochs=1, amp=None)
    assert conv[2].weight.is_contiguous(memory_format=torch.channels_last) and not conv[2].weight.is_contiguous()
    kept = two_convs()
    fit(kept, *loaders, epochs=1, amp=None, channels_last=False)
    assert kept[2].weight.is_contiguous()
    linear = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    assert not train_module.prefers_channels_last(linear, torch.device("cpu"))
    assert not train_module.prefers_channels_last(tiny_cnn(), torch.device("cuda"))
    assert fit(linear, *loaders, epochs=1, amp=None).train_acc[0] > 0.1
    # a strided 1x1 convolution of few channels stays NCHW (torch 2.14.1's NHWC backward hangs on it)
    narrow = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 1, stride=2))
    wide = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 16, 1, stride=2))
    assert not train_module.prefers_channels_last(narrow, torch.device("cpu"))
    assert train_module.prefers_channels_last(wide, torch.device("cpu"))


def test_keyboard_interrupt_returns_the_finished_epochs(loaders):
    steps = []

    def interrupt_in_epoch_two(x, y):
        steps.append(1)
        if len(steps) > len(loaders[0]):
            raise KeyboardInterrupt
        return x, y

    with pytest.warns(UserWarning, match="interrupted during epoch 2.*1 finished epoch"):
        history = fit(tiny_cnn(), *loaders, epochs=3, amp=None, batch_transform=interrupt_in_epoch_two)
    assert history.interrupted and len(history.epochs) == 1


def test_hooks_soft_targets_inputs_and_per_batch_scheduler(loaders):
    seen = []

    class SoftLoss(nn.Module):
        uses_inputs = True

        def forward(self, logits, targets, inputs):
            seen.append((targets.shape, inputs.shape))
            return torch.sum(-targets * logits.log_softmax(1), 1).mean()

    model = tiny_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    history = fit(model, *loaders, epochs=2, optimizer=optimizer, scheduler=scheduler, loss_fn=SoftLoss(), amp=None,
                  batch_transform=lambda x, y: (x, nn.functional.one_hot(y, 10).float()))
    assert seen[0] == ((32, 10), (32, 1, 28, 28)) and len(seen) == 16
    assert scheduler.last_epoch == 16
    assert history.lr == pytest.approx([0.1 / 8, 0.1 / 16])  # the rate of each epoch's last step
    assert history.train_acc[-1] > 0.3  # argmax of the one-hot targets is the label


def test_evaluate_and_channels_last(loaders):
    model = tiny_cnn()
    fit(model, *loaders, epochs=1, amp=None, channels_last=True)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    model.train()
    accuracy = evaluate(model, loaders[1])
    assert model.training and 0.0 <= accuracy <= 1.0
    # amp="auto" is bf16 on a CPU with native bf16: a prediction whose top two logits lie within
    # bf16's rounding (2^-8 relative) of each other may flip, two of the 128 images at most here
    assert accuracy == pytest.approx(evaluate(model, list(loaders[1]), device="cpu", amp=None), abs=2 / 128)


def test_amp_modes():
    cpu = torch.device("cpu")
    assert autocast_dtype(None, cpu) is None and autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="'auto', 'bf16', 'fp16'"):
        autocast_dtype("half", cpu)


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_auto_amp_on_the_cpu_follows_native_bf16(monkeypatch, fast_bf16):
    monkeypatch.setattr(train_module, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert autocast_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if fast_bf16 else None)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_native_bf16_is_what_the_cpu_reports():
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert cpu_has_fast_bf16() == bool(flags & {"avx512_bf16", "amx_tile"})


def test_bf16_training_follows_fp32_within_bf16_rounding(loaders):
    fp32, bf16 = tiny_cnn(), tiny_cnn()
    fp32_history = fit(fp32, *loaders, epochs=2, amp=None)
    bf16_history = fit(bf16, *loaders, epochs=2, amp="bf16")
    assert bf16_history.train_loss != fp32_history.train_loss  # the forward pass did run in bf16
    # bf16 keeps 8 significant bits (relative rounding 2^-8 = 0.004); 16 steps compound it to a few 1e-3
    assert bf16_history.train_loss == pytest.approx(fp32_history.train_loss, rel=1e-2)
    for a, b in zip(bf16.parameters(), fp32.parameters()):
        torch.testing.assert_close(a, b, atol=1.5e-2, rtol=0)


def test_progress_follows_the_profile_and_can_be_forced(loaders, capsys, monkeypatch):
    monkeypatch.setenv("CNNLIB_PROFILE", "smoke")
    fit(tiny_cnn(), *loaders, epochs=1, amp=None)
    assert capsys.readouterr().out == ""
    fit(tiny_cnn(), *loaders, epochs=1, amp=None, progress=True)
    assert capsys.readouterr().out.startswith("epoch 1/1  loss ")
    monkeypatch.setenv("CNNLIB_PROFILE", "cpu")
    fit(tiny_cnn(), *loaders, epochs=1, amp=None)
    assert capsys.readouterr().out.startswith("epoch 1/1  loss ")


def test_callbacks_are_called_at_their_points_of_the_loop(loaders):
    calls = []

    class Recorder(Callback):
        def before_epoch(self, epoch):
            calls.append(("before_epoch", epoch))

        def after_step(self, model):
            calls.append(("after_step", optimizer.state[model[0].weight]["momentum_buffer"] is not None))

        def after_epoch(self, history):
            calls.append(("after_epoch", len(history.epochs)))

    model = tiny_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    fit(model, *loaders, epochs=2, optimizer=optimizer, amp=None, callbacks=[Recorder()])
    epoch = [("after_step", True)] * len(loaders[0])  # after the optimizer's step: its momentum exists
    assert calls == [("before_epoch", 0), *epoch, ("after_epoch", 1), ("before_epoch", 1), *epoch, ("after_epoch", 2)]


def test_the_evaluated_model_and_logits_can_be_chosen(loaders):
    judged = tiny_cnn(seed=1)
    twice = [judged(x).argmax(1) for x, _ in loaders[1]]  # a reference computed outside fit
    expected = sum((p == y).sum().item() for p, (_, y) in zip(twice, loaders[1])) / 128
    history = fit(tiny_cnn(), *loaders, epochs=1, amp=None, eval_model=judged)
    assert history.test_acc == [expected]
    constant = fit(tiny_cnn(), *loaders, epochs=1, amp=None, eval_logits=lambda model, x: torch.eye(10)[[3] * len(x)])
    assert constant.test_acc == [sum((y == 3).sum().item() for _, y in loaders[1]) / 128]


def test_live_plot_callback_updates_one_display(loaders, monkeypatch):
    from cnnlib.lessons.viz import LivePlot

    calls = []

    class Handle:
        def update(self, image):
            calls.append(("update", image.data[:4]))

    def display(image, display_id):
        calls.append(("display", image.data[:4]))
        return Handle()

    monkeypatch.setitem(sys.modules, "IPython.display", types.SimpleNamespace(
        display=display, Image=lambda data: types.SimpleNamespace(data=data)))
    fit(tiny_cnn(), *loaders, epochs=3, amp=None, callbacks=[LivePlot()])
    assert calls == [("display", b"\x89PNG"), ("update", b"\x89PNG"), ("update", b"\x89PNG")]


def test_history_save_load(tmp_path):
    history = History([dict(epoch=1, train_loss=0.5, train_acc=0.8, test_acc=0.7, examples_per_s=10.0,
                            seconds=1.0, lr=0.1)], interrupted=True)
    history.save(tmp_path / "h.json")
    assert History.load(tmp_path / "h.json") == history
    assert history.test_acc == [0.7] and history.to_dict()["interrupted"] is True


def test_seed_everything_repeats_draws():
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3)) and torch.backends.cudnn.deterministic


def test_xavier_init_draws_within_glorots_bound_and_keeps_biases_and_batchnorm():
    seed_everything(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 5), nn.BatchNorm2d(16), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    nn.init.constant_(model[1].weight, 0.5)
    biases = [model[0].bias.clone(), model[3].bias.clone()]
    assert xavier_init_(model) is model
    for layer, fan_in, fan_out in ((model[0], 3 * 25, 16 * 25), (model[3], 256, 10)):
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # fills the interval
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.1 * bound  # the std of U(-a, a)
    assert torch.equal(model[0].bias, biases[0]) and torch.equal(model[3].bias, biases[1])
    assert torch.equal(model[1].weight, torch.full((16,), 0.5))


def test_predict_gives_each_batch_with_its_predictions_and_restores_the_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 3)).train()
    one_hot = torch.eye(3).view(3, 1, 1, 3)  # image i is the one-hot of class i: the model predicts i
    batches = [(one_hot[[2, 0]], torch.tensor([2, 1])), (one_hot[[1]], torch.tensor([1]))]
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3))
        model[1].bias.zero_()
    seen = list(predict(model, batches, amp=None))
    assert [(y.tolist(), p.tolist()) for _, y, p in seen] == [([2, 1], [2, 0]), ([1], [1])] and model.training
    for _ in predict(model, batches, amp=None):
        assert not model.training
        break  # left early: the mode comes back all the same
    assert model.training


def test_fp16_gradient_scaler_path_and_its_checkpoint(loaders, tmp_path, monkeypatch):
    """amp="fp16" runs only on CUDA; the CPU reaches the same code (autocast to float16, a GradScaler
    whose state a checkpoint keeps and a resume restores) when autocast_dtype says float16."""
    monkeypatch.setattr(train_module, "autocast_dtype", lambda amp, device: torch.float16)
    path = tmp_path / "fp16.pt"
    first = fit(tiny_cnn(), *loaders, epochs=1, amp="fp16", checkpoint=path)
    saved = torch.load(path, weights_only=False)
    assert saved["scaler"] is not None and saved["scaler"]["scale"] > 0
    resumed = fit(tiny_cnn(), *loaders, epochs=2, amp="fp16", checkpoint=path, resume=True)
    assert resumed.epochs[0] == first.epochs[0] and len(resumed.epochs) == 2
    assert all(math.isfinite(loss) for loss in resumed.train_loss)
