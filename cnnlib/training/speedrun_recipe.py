"""The speedrun: Fashion-MNIST to a target test accuracy in the least wall-clock time on a CPU.

One recipe, read top to bottom, built from the course's parts: a ResNet from ``cnnlib.models``
(lesson 05) with BatchNorm; random crops and flips on the device (``DeviceLoader``); Nesterov SGD
with warmup and cosine decay and label smoothing (lesson 06, ``cnnlib.training.tricks``); and the fastest
trainers' ingredients of ``cnnlib.training.speed``: patch-whitening initialisation of the first layer, a
larger learning rate for the BatchNorm parameters, progressive resizing, an exponential moving
average of the weights, and flip test-time augmentation. Every hyperparameter is in ``CONFIG``.
The training is ``fit``'s loop; the EMA and the resizing hook into it as callbacks.

The clock starts before the images are read from disk and stops after the last evaluation:
data loading, training and every evaluation are inside it. Tuning uses ``split="val"`` (5,000
training images held out, the model trained on the other 55,000); ``split="test"`` trains on all
60,000 and reports on the test set, which chooses nothing.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from cnnlib.training.data import DATASETS, DeviceLoader, flips_preserve_labels, train_val_split
from cnnlib.models.resnet import small_resnet
from cnnlib.training.speed import (EMA, ProgressiveResizing, flip_tta_logits, progressive_sizes, scaled_lr,
                                   speed_param_groups, whitening_init_)
from cnnlib.training.loop import Callback, History, evaluate, fit, prefers_channels_last, seed_everything
from cnnlib.training.tricks import warmup_cosine, warmup_steps_within

CONFIG = dict(
    blocks=(1, 1, 1, 1), widths=(16, 32, 64, 128),  # lesson 05's small_resnet for 28x28: 308,538 parameters
    epochs=12, batch_size=256,
    lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, warmup_epochs=1.0,  # warmup, then cosine to 0
    norm_lr_scale=1.0,      # BatchNorm gamma/beta and biases: lr times this, no weight decay
    label_smoothing=0.1,
    augment=True,           # random crop (4 px) and, for Fashion-MNIST, horizontal flip
    whiten=True,            # the stem's 3x3 filters from the patches' whitening transform
    start_size=28,          # progressive resizing from this size up to 28 (28: off)
    ema_decay=0.99,         # 0: evaluate the weights themselves
    flip_tta=True,          # Fashion-MNIST only
    amp="auto",             # bf16 where the CPU or GPU computes it natively
)

ABLATIONS = {  # each ingredient switched off alone: the experiment ``speedrun`` (cnnlib.experiments)
    "full recipe": {},
    "no EMA": dict(ema_decay=0.0),
    "no flip TTA": dict(flip_tta=False),
    "no whitening": dict(whiten=False),
    "no label smoothing": dict(label_smoothing=0.0),
    "no Nesterov": dict(nesterov=False),
    "no augmentation": dict(augment=False),
}


def build_model(config: dict, train: DeviceLoader) -> nn.Module:
    """The ``small_resnet`` of ``config``'s blocks and widths, its stem whitened on 5,000
    (normalised) training images if asked."""
    model = small_resnet(tuple(config["blocks"]), tuple(config["widths"]))
    if config["whiten"]:
        x = train.images[:5000].unsqueeze(1).float().div(255).sub(train.mean).div(train.std)
        whitening_init_(model.conv1, x.cpu())
    return model


def run(config: dict | None = None, seed: int = 0, dataset: str = "fashion-mnist", split: str = "val",
        train_subset: int | None = None, eval_subset: int | None = None, targets: Sequence[float] = (0.93, 0.94),
        device: str | torch.device | None = None, log: Callable[[str], None] | None = print,
        final_test: bool = False, callbacks: Sequence[Callback] = (), paired_final: bool = False) -> dict:
    """Train ``config`` (``CONFIG`` updated by it) once; return the run's record.

    ``{"config", "seed", "dataset", "split", "train_examples", "split_sizes": {"train", "eval"}, "flip_tta",
    "epochs": [{epoch, seconds, train_loss, train_error, acc, size}], "acc", "seconds", "examples_per_s",
    "time_to": {target: seconds or None}}``. ``split_sizes`` are the whole splits' (before any subset);
    ``flip_tta`` says whether the evaluation ran flipped images too (not on digits). ``seconds``
    (per epoch: since the start) counts everything from reading the files; ``acc`` is on the
    validation images (``split="val"``) or the test set (``"test"``), of the EMA weights and with
    flip TTA when those are on; ``examples_per_s`` counts training images over the training passes.
    ``final_test`` (with ``split="val"``) adds ``"test_acc"``: the trained model once on the test set
    (``eval_subset`` of it, as of the validation images), after the clock has stopped, for reporting only.
    ``callbacks``: more ``fit`` hooks, after the recipe's own (a profiler's step).
    ``paired_final`` adds ``"final"``: the last weights judged every way at once (``paired_evaluations``),
    after the clock and ``test_acc``.
    """
    config = {**CONFIG, **(config or {})}
    unknown = sorted(set(config) - set(CONFIG))
    if unknown or split not in ("val", "test") or dataset not in DATASETS:
        raise ValueError(f"unknown config key(s) {unknown}, split {split!r} or dataset {dataset!r}: keys are "
                         f"{sorted(CONFIG)}, splits 'val' and 'test', datasets {sorted(DATASETS)}")
    start = time.perf_counter()
    load = DATASETS[dataset]
    train_set, eval_set = train_val_split(load(train=True)) if split == "val" else (load(train=True), load(train=False))
    train = DeviceLoader(train_set, config["batch_size"], shuffle=True, augment=config["augment"],
                         subset=train_subset, device=device, seed=seed, drop_last=True)
    evals = DeviceLoader(eval_set, 1000, shuffle=False, subset=eval_subset, device=device)
    device = train.device
    seed_everything(seed)
    model = build_model(config, train).to(device)
    channels_last = prefers_channels_last(model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    groups = scaled_lr(speed_param_groups(model, config["weight_decay"], config["norm_lr_scale"]), config["lr"])
    optimizer = torch.optim.SGD(groups, lr=config["lr"], momentum=config["momentum"], nesterov=config["nesterov"])
    epochs, steps = config["epochs"], len(train)
    scheduler = warmup_cosine(optimizer, warmup_steps_within(config["warmup_epochs"], steps, epochs * steps), epochs * steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    ema = EMA(model, config["ema_decay"]) if config["ema_decay"] else None
    tta = config["flip_tta"] and flips_preserve_labels(train_set)
    judged, logits_fn = ema.module if ema is not None else model, flip_tta_logits if tta else None
    sizes = progressive_sizes(epochs, config["start_size"], 28)
    clock = _Stopwatch(start, sizes, split, log)
    hooks = [ProgressiveResizing(train, sizes), *([ema] if ema is not None else []), clock, *callbacks]
    history = fit(model, train, evals, epochs, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
                  device=device, amp=config["amp"], channels_last=channels_last, progress=False, callbacks=hooks,
                  eval_model=judged, eval_logits=logits_fn)
    rows = clock.rows
    time_to = {t: next((row["seconds"] for row in rows if row["acc"] >= t), None) for t in targets}
    examples = steps * config["batch_size"]
    train_seconds = sum(examples / row["examples_per_s"] for row in history.epochs)
    record = dict(config=config, seed=seed, dataset=dataset, split=split, train_examples=examples,
                  split_sizes=dict(train=len(train_set), eval=len(eval_set)), flip_tta=tta, epochs=rows,
                  acc=rows[-1]["acc"], seconds=rows[-1]["seconds"], examples_per_s=epochs * examples / train_seconds,
                  time_to=time_to)
    if final_test and split == "val":
        test = DeviceLoader(load(train=False), 1000, shuffle=False, subset=eval_subset, device=device)
        record["test_acc"] = evaluate(judged, test, device, config["amp"], channels_last, logits_fn)
    if paired_final:
        record["final"] = paired_evaluations(model, ema, train, evals, config["amp"], channels_last, tta)
    return record


def paired_evaluations(model: nn.Module, ema: EMA | None, train: DeviceLoader, evals: DeviceLoader,
                       amp: str | None, channels_last: bool, tta: bool, bn_batches: int = 20) -> dict[str, float]:
    """The accuracy on ``evals`` of one training's last weights, judged each way the recipe could judge them,
    so that the differences between ways are paired (the same run, the same images).

    Keys: ``raw`` (the weights themselves); with an ``ema``, ``ema`` (the average, with BatchNorm's running
    statistics averaged along with the weights, as ``EMA`` keeps them) and ``ema_recomputed`` (the average,
    with the statistics recomputed for the averaged weights over ``bn_batches`` training batches, as
    ``torch.optim.swa_utils.update_bn`` does for SWA); each also with ``_tta`` (flip TTA) when ``tta``.
    Recomputing overwrites the EMA's statistics, so this is the run's last evaluation.
    """
    judges = {"raw": model, **({"ema": ema.module} if ema is not None else {})}
    views = {"": None, **({"_tta": flip_tta_logits} if tta else {})}

    def judge(names: dict[str, nn.Module]) -> dict[str, float]:
        return {name + view: evaluate(network, evals, train.device, amp, channels_last, logits)
                for name, network in names.items() for view, logits in views.items()}

    accuracies = judge(judges)
    if ema is not None:
        update_bn(itertools.islice(train, bn_batches), ema.module)
        accuracies |= judge({"ema_recomputed": ema.module})
    return accuracies


class _Stopwatch(Callback):
    """The record's row of each epoch of ``fit``, timed from ``start`` (before the files were read), and its
    log line."""

    def __init__(self, start: float, sizes: list[int], split: str, log: Callable[[str], None] | None) -> None:
        self.start, self.sizes, self.split, self.log, self.rows = start, sizes, split, log, []

    def after_epoch(self, history: History) -> None:
        row, size = history.epochs[-1], self.sizes[len(history.epochs) - 1]
        seconds = time.perf_counter() - self.start
        self.rows.append(dict(epoch=row["epoch"], seconds=seconds, train_loss=row["train_loss"],
                              train_error=1 - row["train_acc"], acc=row["test_acc"], size=size))
        if self.log is not None:
            self.log(f"epoch {row['epoch']:2d}/{len(self.sizes)}  size {size}  loss {row['train_loss']:.4f}  "
                     f"{self.split} acc {row['test_acc']:.4f}  {seconds:6.1f} s")


def epochs_within(seconds: float, config: dict | None = None, dataset: str = "fashion-mnist",
                  device: str | torch.device | None = None, probe_steps: int = 20) -> int:
    """How many epochs of ``config`` (at most its ``epochs``, at least 1) ``run(split="test")`` fits into
    ``seconds`` on this machine: ``probe_steps`` training steps of the recipe time the machine, then
    ``epochs_for`` does the arithmetic. The probe's first steps include the kernels' warm-up, so it
    errs on the short side."""
    config = {**CONFIG, **(config or {})}
    probe = run({**config, "epochs": 1}, dataset=dataset, split="test", train_subset=probe_steps * config["batch_size"],
                eval_subset=config["batch_size"], device=device, log=None)
    sizes, passes = probe["split_sizes"], 2 if probe["flip_tta"] else 1
    return epochs_for(seconds, probe["examples_per_s"], sizes["train"] // config["batch_size"] * config["batch_size"],
                      passes * sizes["eval"], config["epochs"])


def epochs_for(seconds: float, examples_per_s: float, train_examples: int, eval_forwards: int, max_epochs: int) -> int:
    """``floor(seconds / epoch)`` clamped to ``[1, max_epochs]``, where an epoch trains ``train_examples`` at
    ``examples_per_s`` and evaluates ``eval_forwards`` images, each a forward pass: about a third of a
    training step's forward and backward."""
    if seconds <= 0 or examples_per_s <= 0:
        raise ValueError(f"seconds ({seconds}) and examples_per_s ({examples_per_s}) must be positive")
    epoch = (train_examples + eval_forwards / 3) / examples_per_s
    return max(1, min(max_epochs, math.floor(seconds / epoch)))

