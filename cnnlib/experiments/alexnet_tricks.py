"""Lesson 02b: AlexNet's local response normalisation, overlapping pooling and dropout, each removed.

The paper (Krizhevsky et al., 2012): LRN lowers the top-1 / top-5 error by 1.4 / 1.2 points
(section 3.3), overlapping pooling by 0.4 / 0.3 (section 3.4); dropout "reduces overfitting
substantially" and "roughly doubles the number of iterations required to converge" (section 4.2).
``cnnlib.lessons.references.ALEXNET`` holds those figures with their source.

Protocol.

- Network: AlexNet's ``small`` layout for 28x28 images at its native resolution (no upscaling),
  at half its widths: convolutions 16-32-48-48-32, fully-connected 256-256; LRN (n = 5, alpha =
  1e-4, beta = 0.75, k = 2) after the first two convolutions, 3x3 / stride 2 max-pooling,
  dropout 0.5 in the two hidden fully-connected layers: the paper's three choices.
- Configurations: all three; without LRN; with 2x2 / stride 2 pooling instead of overlapping;
  without dropout. 3 seeds each.
- Training: the paper's SGD (momentum 0.9, weight decay 5e-4, batch 128, learning rate 0.01),
  decayed by a cosine to 0 over 8 epochs so that the training accuracy has flattened by the end
  (the paper divides by 10 when the validation error stops improving); no augmentation, so that
  overfitting, what dropout acts on, is not hidden by it; 55,000 training images.
- Report: test error with its 95% interval over seeds, the train-test gap (``train_acc_eval``:
  the trained network on the training images in eval mode, minus the test accuracy) and the
  training-error curves (how much longer dropout takes to converge).

Sizing: 4 configurations x 3 seeds x 8 epochs, 96 training epochs of the small AlexNet (an epoch
with LRN about twice as long as one without); the measured seconds are in ``benchmarks/README.md``
(Experiment sizing).
"""

from __future__ import annotations

import math
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from cnnlib.experiments import report
from cnnlib.experiments.protocol import CHANCE_ERROR, Scale, epochs_to_reach, train_and_record
from cnnlib.experiments.runner import Context, Experiment
from cnnlib.models import get_model
from cnnlib.training.loop import seed_everything
from cnnlib.lessons.viz import Figure

CHANNELS, HIDDEN, EPOCHS, BATCH, LR, WEIGHT_DECAY = (16, 32, 48, 48, 32), 256, 8, 128, 0.01, 5e-4
ALL_THREE = {"lrn": True, "overlap": True, "dropout": 0.5}


def protocol(scale: Scale) -> dict:
    channels, hidden, epochs = ((4, 8, 8, 8, 8), 16, 1) if scale.smoke else (CHANNELS, HIDDEN, EPOCHS)
    return {"channels": list(channels), "hidden": hidden, "epochs": epochs, "batch_size": BATCH, "lr": LR,
            "momentum": 0.9, "weight_decay": WEIGHT_DECAY, "schedule": "cosine", "augment": False}


def configs(scale: Scale) -> list[dict]:
    return [ALL_THREE, {**ALL_THREE, "lrn": False}, {**ALL_THREE, "overlap": False}, {**ALL_THREE, "dropout": 0.0}]


def network(config: dict, channels: tuple[int, ...] = CHANNELS, hidden: int = HIDDEN) -> torch.nn.Module:
    """AlexNet's ``small`` layout at the protocol's widths, its three switches set by ``config``."""
    return get_model("alexnet", layout="small", channels=tuple(channels), hidden=hidden, **config)


def paper_sgd(model: torch.nn.Module, steps_per_epoch: int, epochs: int
              ) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """The paper's SGD (section 5: lr 0.01, momentum 0.9, weight decay 5e-4), its rate decayed by a
    cosine to 0 after ``epochs``; the scheduler steps after every batch (``fit``'s ``scheduler``)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WEIGHT_DECAY)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)


def run(config: dict, seed: int, context: Context) -> dict:
    p = protocol(context.scale)
    model = network(config, p["channels"], p["hidden"])
    loaders = context.splits.loaders(BATCH, seed)
    optimizer, scheduler = paper_sgd(model, len(loaders[0]), p["epochs"])
    record, _ = train_and_record(model, loaders, p["epochs"], context.splits.eval_loader("train"),
                                 optimizer=optimizer, scheduler=scheduler)
    return record


def name(config: dict) -> str:
    """``all three``, or the one trick switched off."""
    off = [label for key, label in (("lrn", "no LRN"), ("overlap", "2x2 pooling"), ("dropout", "no dropout"))
           if config[key] != ALL_THREE[key]]
    return ", ".join(off) or "all three"


def table(runs: list[dict]) -> pd.DataFrame:
    """Per configuration: test error, training error in evaluation mode, their gap (overfitting)
    and the running training error of the last epoch; means and standard deviations over seeds."""
    return report.table(runs, name, {
        "test error": lambda r: 1 - r["test_acc"],
        "train error, eval mode": lambda r: 1 - r["train_acc_eval"],
        "train-test gap": lambda r: r["train_acc_eval"] - r["test_acc"],
        "final running train error": lambda r: r["train_error"][-1],
    }, index_names=["configuration"])


def figure(runs: list[dict]) -> Figure:
    """The running training error per epoch of each configuration, mean and standard deviation over seeds."""
    return report.figure(runs, name, title="Small AlexNet, one trick off at a time")


def removal_cost(runs: list[dict], error: Callable[[dict], float] = lambda run: 1 - run["test_acc"]
                 ) -> dict[str, list[float]]:
    """Per trick switched off, seed by seed: its ``error`` (by default the test error) minus that
    of the network with all three: the points of error that the trick saves (the paper's figures
    are in ``references.ALEXNET``)."""
    return report.differences(runs, name, baseline=name(ALL_THREE), metric=error)


def first_step(config: dict, images: torch.Tensor, labels: torch.Tensor, seed: int) -> dict[str, float]:
    """The network of ``config`` as ``seed`` initialises it (the switches have no weights, so every
    configuration with the same pooling starts from the same weights), in evaluation mode on one
    batch: the standard deviation of its logits, its cross-entropy and the norm of that loss's
    gradient for the first convolution's weights, the size of the first step a learning rate takes."""
    seed_everything(seed)
    model = network(config).eval()
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    return {"logit std": logits.std().item(), "loss": loss.item(),
            "first-layer gradient": model.features[0].weight.grad.norm().item()}


def never_learned(runs: list[dict], margin: float = 0.05) -> dict[str, list[int]]:
    """Per configuration, the seeds whose final running training error is still within ``margin`` of
    chance (``CHANCE_ERROR``): networks that never started to learn (their mean would hide them)."""
    stuck: dict[str, list[int]] = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        seeds = stuck.setdefault(name(r["config"]), [])
        if r["train_error"][-1] >= CHANCE_ERROR - margin:
            seeds.append(r["seed"])
    return stuck


def dropout_slowdown(runs: list[dict]) -> list[float]:
    """Per seed: the epochs that the network with dropout needs to reach its own final running
    training error, over the epochs that the same network without dropout needs to reach it
    (``epochs_to_reach``, interpolated); the paper's "roughly doubles" is a ratio of 2. NaN where
    the network without dropout never gets there.

    The numerator is the last epoch by construction (the level is the curve's own last value, which
    a cosine schedule ending at 0 reaches at the end), and the running error is measured with
    dropout on: the ratio says how late the network without dropout reaches that level, not how
    long either takes to converge."""
    with_dropout = {r["seed"]: r["train_error"] for r in runs if r["config"] == ALL_THREE}
    ratios = []
    for r in sorted(runs, key=lambda r: r["seed"]):
        if name(r["config"]) == "no dropout" and r["seed"] in with_dropout:
            curve = with_dropout[r["seed"]]
            level = curve[-1]
            ratios.append(epochs_to_reach(curve, level) / epochs_to_reach(r["train_error"], level)
                          if min(r["train_error"]) <= level else math.nan)
    return ratios


EXPERIMENT = Experiment("alexnet_tricks", "02b", "LRN, overlapping pooling and dropout: what each removal costs",
                        configs, run, protocol)
