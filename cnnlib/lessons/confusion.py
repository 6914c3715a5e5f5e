"""Where a classifier goes wrong: the confusion matrix, its largest off-diagonal entries, and the
images behind one of them. Predictions come from ``cnnlib.training.loop.predict``, the loop of ``evaluate``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from cnnlib.training.loop import predict
from cnnlib.lessons.viz import Figure, show_images

__all__ = ["confusion_matrix", "most_confused", "show_mistakes"]


def confusion_matrix(model: nn.Module, loader: Iterable, num_classes: int, device=None) -> torch.Tensor:
    """Counts [K, K] int64 on the CPU: entry (i, j) = examples of true class i predicted as j.

    Args:
        model: the classifier, run in evaluation mode on every batch.
        loader: batches (x, y).
        num_classes: K.
        device: where the model runs (None: the device of its parameters).
    """
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    for _, y, predicted in predict(model, loader, device):
        counts += torch.bincount((y * num_classes + predicted).cpu(), minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def most_confused(matrix: torch.Tensor, k: int = 3) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal counts of a confusion matrix, as (true class, predicted class, count)."""
    off_diagonal = torch.as_tensor(matrix).clone()
    off_diagonal.fill_diagonal_(-1)
    size = off_diagonal.shape[1]
    counts, index = off_diagonal.flatten().topk(min(k, off_diagonal.numel() - size))
    return [(i // size, i % size, c) for i, c in zip(index.tolist(), counts.tolist())]


def show_mistakes(model: nn.Module, loader: Iterable, class_names: Sequence[str], true: int, predicted: int,
                  n: int = 8, device=None) -> Figure:
    """The first `n` images of class `true` that the model takes for `predicted` (``viz.show_images``).

    Args:
        model: the classifier, run in evaluation mode.
        loader: batches (x, y), searched in order.
        class_names: the names of the K classes, for the titles.
        true, predicted: the pair of classes (indices), e.g. from ``most_confused``.
        n: at most this many images.
        device: where the model runs (None: the device of its parameters).
    """
    found: list[torch.Tensor] = []
    for x, y, guess in predict(model, loader, device):
        found.extend(x[(y == true) & (guess == predicted)].cpu())
        if len(found) >= n:
            break
    if not found:
        raise ValueError(f"no image of class {class_names[true]!r} is predicted as {class_names[predicted]!r}")
    found = found[:n]
    return show_images(found, [true] * len(found), class_names, ncols=len(found), predictions=[predicted] * len(found))
