"""The protocol every experiment follows: data splits, one training run, its record.

- Fashion-MNIST's 60,000 training images are split once, with a fixed seed, into 55,000 for
  training and a class-balanced 5,000 (500 per class) for validation. Every choice an
  experiment makes (learning rate, epochs, teacher) is made on the validation split; the
  10,000 test images are used only for the final figure.
- A run is ``cnnlib.training.loop.fit`` on the CPU in fp32 (the results are those of a CPU; no GPU is
  needed) with the validation loader in the place of the test loader,
  so that ``val_acc`` is recorded after every epoch, then one ``evaluate`` on the test set.
  ``train_error`` and ``train_loss`` are fit's running figures over each epoch (the model
  changes during the epoch; dropout and augmentation are on), as the papers' training curves.
- ``Scale.smoke`` shrinks everything to seconds so that the tests can run every experiment.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torchvision import datasets

from cnnlib.training.data import SPLIT_SEED, DeviceLoader, balanced_subset, fashion_mnist, take, train_val_split
from cnnlib.training.loop import evaluate, fit

CHANCE_ERROR = 0.9  # ten balanced classes
EVAL_BATCH = 1000


@dataclass(frozen=True)
class Scale:
    """How much data a command uses: ``None`` is the whole split (the protocol), a number a
    class-balanced sample of that size (the smoke test)."""

    smoke: bool = False
    train: int | None = None
    val: int | None = None
    test: int | None = None

    @classmethod
    def of(cls, smoke: bool) -> Scale:
        return cls(True, 320, 200, 200) if smoke else cls()


@dataclass
class Splits:
    """The three datasets of the protocol, at a ``Scale``."""

    train: datasets.MNIST
    val: datasets.MNIST
    test: datasets.MNIST

    @classmethod
    def load(cls, scale: Scale) -> Splits:
        train, val = train_val_split(fashion_mnist(train=True))
        test = fashion_mnist(train=False)

        def shrink(dataset: datasets.MNIST, n: int | None) -> datasets.MNIST:
            if n is None:
                return dataset
            return take(dataset, balanced_subset(torch.as_tensor(dataset.targets), n, SPLIT_SEED))

        return cls(shrink(train, scale.train), shrink(val, scale.val), shrink(test, scale.test))

    def loaders(self, batch_size: int, seed: int, augment: bool = False) -> tuple[DeviceLoader, DeviceLoader, DeviceLoader]:
        """(train, val, test) loaders on the CPU; the training order and augmentation follow ``seed``."""
        train = DeviceLoader(self.train, batch_size, shuffle=True, augment=augment, seed=seed, device="cpu")
        return train, self.eval_loader("val"), self.eval_loader("test")

    def eval_loader(self, split: Literal["train", "val", "test"]) -> DeviceLoader:
        """A loader for measuring accuracy on ``split`` ("train", "val" or "test"): in order, no augmentation."""
        return DeviceLoader(getattr(self, split), EVAL_BATCH, shuffle=False, device="cpu")


def train_and_record(model: nn.Module, loaders: tuple[DeviceLoader, DeviceLoader, DeviceLoader], epochs: int,
                     train_eval: DeviceLoader | None = None, **fit_args) -> tuple[dict, nn.Module]:
    """Train with ``cnnlib.training.loop.fit`` (validation after each epoch), then measure the test accuracy once.

    Returns the run's measurements (``train_examples``, per-epoch ``train_loss``, ``train_error``,
    ``val_acc``, ``lr``, ``epoch_seconds``; final ``test_acc``; ``seconds`` of the whole run)
    and the trained model. With ``train_eval`` (``Splits.eval_loader("train")``) also the final
    ``train_acc_eval``: the trained model's accuracy on the training images in eval mode, without
    dropout, augmentation or mixup, which the running ``train_error`` includes; the honest side
    of a train-test gap. Runs in fp32 (``amp=None``) so that CPUs with and without bfloat16
    compute the same arithmetic.
    """
    train, val, test = loaders
    began = time.perf_counter()
    history = fit(model, train, val, epochs, amp=None, progress=False, device="cpu", **fit_args)
    if history.interrupted:
        raise KeyboardInterrupt  # an interrupted run is not a result: the runner stops without saving it
    test_acc = evaluate(model, test, amp=None)
    extra = {} if train_eval is None else {"train_acc_eval": evaluate(model, train_eval, amp=None)}
    return {
        "train_examples": train.num_examples,
        "epochs": epochs,
        "train_loss": history.train_loss,
        "train_error": [1.0 - acc for acc in history.train_acc],
        "val_acc": history.test_acc,
        "test_acc": test_acc,
        "lr": history.lr,
        "epoch_seconds": history.seconds,
        "seconds": time.perf_counter() - began,
        **extra,
    }, model


def epochs_to_reach(errors: list[float], threshold: float) -> float:
    """Epochs until a per-epoch error curve first falls to ``threshold``, linearly interpolated
    between epoch ends (the curve starts at epoch 0 from chance, ``CHANCE_ERROR``); ``inf`` if it never does."""
    if threshold >= CHANCE_ERROR:
        return 0.0
    previous = CHANCE_ERROR
    for epoch, error in enumerate(errors, start=1):
        if error <= threshold:
            return epoch - 1 + (previous - threshold) / (previous - error)
        previous = error
    return math.inf
