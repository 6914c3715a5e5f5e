"""Lesson 04: degradation, as He et al. (2015) show it in figures 1 and 6 (section 4.2).

Degradation: a deeper plain network has a *higher training* error than a shallower one, so the
problem is optimisation, not overfitting. With BatchNorm the forward signals and the gradients
stay healthy (the paper, section 4.1, checked this): vanishing gradients are not the cause.
Shortcut connections remove it: residual-56 trains to a lower error than residual-20.

Protocol.

- Networks: the paper's CIFAR networks of 6n + 2 layers (``cnnlib.models.resnet.ResNet`` with
  three stages of n basic blocks, a 3x3 stem, no max-pool), at width w, 2w, 4w with w = 8 (the
  paper: 16); plain (no shortcuts) and residual (option A shortcuts: identity, zero-padded
  channels where the width doubles, so both twins have the same parameters); depth 20 and 56.
- Training: SGD, momentum 0.9, weight decay 1e-4, batch 128; learning rate 0.1 (the paper's),
  reached by a linear warmup over the first half epoch (the paper warms its 110-layer net up at
  0.01) and decayed by a cosine to 0 at the end of 3 epochs; no augmentation (the question is
  how well the training set is fitted); 55,000 training images; 3 seeds each.
- Report: the per-epoch (running) training error of each network, mean and spread over seeds,
  and ``train_acc_eval`` at the end; degradation is plain-56 above plain-20, and its cure is
  residual-56 at or below residual-20.

Sizing: 4 networks x 3 seeds x 3 epochs, 36 training epochs (a 56-layer network's epoch about four
times a 20-layer one's); the measured seconds are in ``benchmarks/README.md`` (Experiment
sizing). Three epochs are 1,290 iterations, where the paper's figure 6 already separates the curves.
"""

from __future__ import annotations

import pandas as pd
import torch

from cnnlib.experiments import report
from cnnlib.experiments.protocol import Scale, train_and_record
from cnnlib.experiments.runner import Context, Experiment
from cnnlib.models.resnet import ResNet, cifar_resnet
from cnnlib.training.tricks import warmup_cosine
from cnnlib.lessons.viz import Figure

WIDTH, EPOCHS, BATCH, LR, WEIGHT_DECAY, WARMUP_EPOCHS = 8, 3, 128, 0.1, 1e-4, 0.5
SHORTCUTS = {"plain": "none", "residual": "zero_pad"}


def cifar_network(depth: int, kind: str, width: int = WIDTH) -> ResNet:
    """The paper's 6n + 2-layer CIFAR network (section 4.2) at stage widths (w, 2w, 4w).

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        kind: "plain" (no shortcuts) or "residual" (option A shortcuts).
        width: the first stage's width w (the paper's: 16).
    """
    if kind not in SHORTCUTS:
        raise ValueError(f"kind must be one of {sorted(SHORTCUTS)}, got {kind!r}")
    return cifar_resnet(depth, width=width, shortcut=SHORTCUTS[kind])


def protocol(scale: Scale) -> dict:
    width, epochs = (4, 1) if scale.smoke else (WIDTH, EPOCHS)
    return {"width": width, "epochs": epochs, "batch_size": BATCH, "lr": LR, "momentum": 0.9,
            "weight_decay": WEIGHT_DECAY, "warmup_epochs": WARMUP_EPOCHS, "schedule": "warmup, cosine",
            "augment": False}


def configs(scale: Scale) -> list[dict]:
    depths = (8, 14) if scale.smoke else (20, 56)
    return [{"kind": kind, "depth": depth} for kind in SHORTCUTS for depth in depths]


def paper_sgd(model: torch.nn.Module, steps_per_epoch: int, epochs: int
              ) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """The paper's SGD (section 4.2: lr 0.1, momentum 0.9, weight decay 1e-4), its rate reached by a
    linear warmup over ``WARMUP_EPOCHS`` and decayed by a cosine to 0 after ``epochs``; the scheduler
    steps after every batch (``fit``'s ``scheduler``)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WEIGHT_DECAY)
    return optimizer, warmup_cosine(optimizer, round(WARMUP_EPOCHS * steps_per_epoch), epochs * steps_per_epoch)


def run(config: dict, seed: int, context: Context) -> dict:
    p = protocol(context.scale)
    model = cifar_network(config["depth"], config["kind"], p["width"])
    loaders = context.splits.loaders(BATCH, seed)
    optimizer, scheduler = paper_sgd(model, len(loaders[0]), p["epochs"])
    record, _ = train_and_record(model, loaders, p["epochs"], context.splits.eval_loader("train"),
                                 optimizer=optimizer, scheduler=scheduler)
    return record


def name(config: dict) -> str:
    return f"{config['kind']}-{config['depth']}"


def table(runs: list[dict]) -> pd.DataFrame:
    """Per network: the final running training error (the curves' last point), the trained model's
    training error in evaluation mode, validation and test accuracy; means and standard deviations."""
    return report.table(runs, name, {
        "final train error": lambda r: r["train_error"][-1],
        "train error, eval mode": lambda r: 1 - r["train_acc_eval"],
        "val acc": lambda r: r["val_acc"][-1],
        "test acc": lambda r: r["test_acc"],
    }, index_names=["network"])


def figure(runs: list[dict]) -> Figure:
    """The running training error per epoch of each network, mean and standard deviation over seeds."""
    return report.figure(runs, name, title="Plain and residual nets, Fashion-MNIST")


def depth_penalty(runs: list[dict]) -> dict[str, list[float]]:
    """Per kind (plain, residual), seed by seed: the deepest network's final training error (eval
    mode) minus the shallowest's. Above 0 is degradation: the deeper network fits its training set worse."""
    penalty = {}
    for kind in SHORTCUTS:
        of_kind = [r for r in runs if r["config"]["kind"] == kind]
        depths = sorted({r["config"]["depth"] for r in of_kind})
        if depths:
            by_depth = report.differences(of_kind, label=lambda config: str(config["depth"]), baseline=str(depths[0]),
                                          metric=lambda run: 1 - run["train_acc_eval"])
            penalty[kind] = by_depth.get(str(depths[-1]), [])
    return penalty


EXPERIMENT = Experiment("degradation", "04", "plain-56 trains worse than plain-20; residual-56 does not",
                        configs, run, protocol)
