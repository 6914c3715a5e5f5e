"""Lesson 02b: ReLU against tanh, as Krizhevsky et al. (2012) measured it (section 3.1, figure 1).

The paper: "A four-layer convolutional neural network with ReLUs reaches a 25% training error
rate on CIFAR-10 six times faster than an equivalent network with tanh neurons. The learning
rates for each network were chosen independently to make training as fast as possible. No
regularization of any kind was employed."

Protocol.

- Network (``four_layer_cnn``): conv 5x5 (w) - act - max-pool 2 - conv 5x5 (2w) - act - max-pool 2 -
  conv 3x3 (2w) - act - max-pool 2 - linear (10); w = 16; no normalisation, no dropout, no
  weight decay, no augmentation; He-normal weights with the activation's gain, zero biases.
- Configurations: activation in {relu, tanh} x learning rate in {0.01, 0.03, 0.1}; SGD with
  momentum 0.9, batch 128, constant rate; 3 seeds each; 10 epochs on the 55,000 training images.
- Measure: the epochs until the (running) training error first falls to ``THRESHOLD``,
  interpolated between epoch ends (``protocol.epochs_to_reach``); a run that diverges is
  recorded as such and never reaches it.
- Choice on the validation split (``best_learning_rates``): for each activation, the rate whose
  validation error reaches ``THRESHOLD`` soonest on average over seeds ("as fast as possible");
  the headline (``speedup``) is then the ratio tanh / relu of the training epochs at those rates.
- Threshold: 10% training error, fixed before the runs. The paper's 25% is a level that its
  network reaches well before it converges; the threshold here must likewise be one that both
  activations reach within the 10 epochs, and that the ReLU net does not reach within its first
  epoch, or the count only measures the epoch's length. The results keep the whole curves, so
  ``epochs_to_threshold(run, threshold=...)`` checks how the ratio depends on the choice.

Sizing: 2 activations x 3 learning rates x 3 seeds, 18 runs of 10 epochs (a tanh epoch about 1.25
times a ReLU one); the measured seconds are in ``benchmarks/README.md`` (Experiment sizing).
"""

from __future__ import annotations

import math
import time
from typing import Literal

import pandas as pd
import torch
from torch import nn

from cnnlib.experiments import report
from cnnlib.experiments.protocol import Scale, epochs_to_reach, train_and_record
from cnnlib.experiments.runner import Context, Experiment
from cnnlib.models.alexnet import he_normal_init_
from cnnlib.models.registry import lookup
from cnnlib.training.loop import TrainingDiverged
from cnnlib.lessons.viz import Figure

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
LEARNING_RATES = (0.01, 0.03, 0.1)
WIDTH, EPOCHS, BATCH, THRESHOLD = 16, 10, 128, 0.10


def four_layer_cnn(activation: Literal["relu", "tanh"], width: int = WIDTH) -> nn.Sequential:
    """Three convolutions and a linear layer for 28x28 images (28 -> 14 -> 7 -> 3), no normalisation,
    initialised as AlexNet (``he_normal_init_``)."""
    act = lookup(ACTIVATIONS, activation, "activation")
    net = nn.Sequential(
        nn.Conv2d(1, width, 5, padding=2), act(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 5, padding=2), act(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 3 * 3, 10),
    )  # fmt: skip
    return he_normal_init_(net, activation)


def mean_derivative(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Per ReLU or tanh layer of ``model``, its local derivative averaged over the units and the images
    ``x``: relu'(z) = 1[z > 0], tanh'(z) = 1 - tanh(z)^2. The share of the gradient that the layer
    passes back on average; the paper's argument is that saturated tanh units pass back little."""
    means = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        derivative = 1 - output.square() if isinstance(module, nn.Tanh) else (output > 0).float()
        means.append(derivative.mean().item())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.ReLU, nn.Tanh))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return means


def configs(scale: Scale) -> list[dict]:
    return [{"activation": a, "lr": lr} for a in ACTIVATIONS for lr in LEARNING_RATES]


def protocol(scale: Scale) -> dict:
    width, epochs = (4, 2) if scale.smoke else (WIDTH, EPOCHS)
    return {"width": width, "epochs": epochs, "batch_size": BATCH, "momentum": 0.9, "threshold": THRESHOLD}


def run(config: dict, seed: int, context: Context) -> dict:
    width, epochs = protocol(context.scale)["width"], protocol(context.scale)["epochs"]
    model = four_layer_cnn(config["activation"], width)
    loaders = context.splits.loaders(BATCH, seed)
    began = time.perf_counter()
    try:
        record, _ = train_and_record(model, loaders, epochs, lr=config["lr"], momentum=0.9)
    except TrainingDiverged as error:  # a result too: this rate is too high for this activation
        return {"train_examples": loaders[0].num_examples, "epochs": epochs, "train_loss": [], "train_error": [],
                "val_acc": [], "test_acc": None, "seconds": time.perf_counter() - began, "diverged": str(error)}
    return record


def epochs_to_threshold(run: dict, curve: Literal["train_error", "val_error"] = "train_error",
                        threshold: float = THRESHOLD) -> float:
    """Epochs until a run's training (or, with ``curve="val_error"``, validation) error reaches ``threshold``."""
    errors = [1 - acc for acc in run["val_acc"]] if curve == "val_error" else run[curve]
    return epochs_to_reach(errors, threshold)


def best_learning_rates(runs: list[dict], threshold: float = THRESHOLD) -> dict[str, float]:
    """Each activation's learning rate with the fewest mean epochs to ``threshold`` validation
    error (ties, including never reaching it: the higher final validation accuracy)."""
    best = {}
    for activation in ACTIVATIONS:
        def score(lr: float) -> tuple[float, float]:
            mine = [r for r in runs if r["config"] == {"activation": activation, "lr": lr}]
            epochs = sum(epochs_to_threshold(r, "val_error", threshold) for r in mine) / len(mine)
            final = sum(r["val_acc"][-1] if r["val_acc"] else 0.0 for r in mine) / len(mine)
            return epochs, -final

        rates = sorted({r["config"]["lr"] for r in runs if r["config"]["activation"] == activation})
        if rates:
            best[activation] = min(rates, key=score)
    return best


def speedup(runs: list[dict], threshold: float = THRESHOLD) -> list[float]:
    """Per seed: epochs for tanh / epochs for relu to reach ``threshold`` training error, each
    at its best learning rate (``best_learning_rates``); NaN where either run never reaches it."""
    rates = best_learning_rates(runs, threshold)
    by_seed = {}
    for activation, lr in rates.items():
        for r in runs:
            if r["config"] == {"activation": activation, "lr": lr}:
                by_seed.setdefault(r["seed"], {})[activation] = epochs_to_threshold(r, threshold=threshold)
    return [e["tanh"] / e["relu"] if math.isfinite(e["tanh"] + e["relu"]) else math.nan
            for _, e in sorted(by_seed.items()) if len(e) == 2]


def table(runs: list[dict], threshold: float = THRESHOLD) -> pd.DataFrame:
    """Per (activation, learning rate): finished and diverged runs; epochs to ``threshold`` training
    and validation error (inf: not reached in every run); final training error, validation and test
    accuracy; each a mean, with its standard deviation over the finished seeds."""
    return report.table(runs, lambda c: (c["activation"], c["lr"]), {
        f"epochs to {threshold:.0%} train error": lambda r: epochs_to_threshold(r, "train_error", threshold),
        f"epochs to {threshold:.0%} val error": lambda r: epochs_to_threshold(r, "val_error", threshold),
        "final train error": lambda r: r["train_error"][-1],
        "final val acc": lambda r: r["val_acc"][-1],
        "test acc": lambda r: r["test_acc"],
    }, index_names=["activation", "lr"])


def figure(runs: list[dict], threshold: float = THRESHOLD) -> Figure:
    """The training error of each activation at its chosen rate (``best_learning_rates``), per
    epoch, mean and standard deviation over seeds, with the threshold drawn across: the paper's figure 1."""
    rates = best_learning_rates(runs, threshold)
    chosen = [r for r in runs if r["config"]["lr"] == rates.get(r["config"]["activation"])]
    return report.figure(chosen, lambda c: f"{c['activation']} (lr {c['lr']:g})",
                         title="Four-layer CNN, Fashion-MNIST", threshold=threshold)


EXPERIMENT = Experiment("relu_tanh", "02b", "Does ReLU reach a fixed training error faster than tanh (the paper's figure 1)?",
                        configs, run, protocol)
