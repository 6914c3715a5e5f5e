"""Figures for the notebooks: image grids, training curves, filters, feature maps, confusion
matrices, bar charts.

Every function builds and returns a `Figure` (a matplotlib Figure, 100 dpi, that Jupyter shows
as a PNG) without registering it with pyplot, so a notebook shows it once, as the cell's value,
and nothing is drawn behind the reader's back. Rendering is deterministic (no dates, no
random layout).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib.figure
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from torch import nn

from cnnlib.training.loop import Callback

WRONG = "tab:red"


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that Jupyter displays as a PNG, whether or not pyplot is in use."""

    def to_png(self, crop: bool = True) -> bytes:
        """The figure as PNG bytes: cropped to what is drawn, or (``crop=False``) at its own size,
        for an image redrawn in place (a widget, a live plot) that should not change size."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight" if crop else None)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _grid(n: int, ncols: int, cell: tuple[float, float]) -> tuple[Figure, list]:
    """A figure with n image axes (ticks off) on a grid of ncols columns."""
    if n == 0:
        raise ValueError("nothing to plot: got 0 images")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _figure(cell[0] * ncols, cell[1] * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    for ax in axes[:n]:
        ax.set_axis_off()
    return fig, list(axes[:n])


def _to_numpy(images) -> np.ndarray:
    """Tensor, array, or list of tensors / arrays / PIL images -> one numpy array."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
        return (images.float() if images.is_floating_point() else images).numpy()
    if isinstance(images, (list, tuple)):
        return np.stack([_to_numpy(image) for image in images])
    return np.asarray(images)


def _displayable(image: np.ndarray) -> tuple[np.ndarray, dict]:
    """[H, W], [1, H, W], [3, H, W] or [H, W, 3] -> an array for imshow and its colour settings."""
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"expected images of shape [H, W], [1, H, W] or [3, H, W], got {image.shape}")
    if image.dtype == np.uint8:
        return image, dict(cmap="gray", vmin=0, vmax=255)
    image = image.astype(np.float32)
    lo, hi = float(image.min()), float(image.max())  # normalised floats: stretch to [0, 1]
    image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return image, dict(cmap="gray", vmin=0.0, vmax=1.0)


def _name(label, class_names: Sequence[str] | None) -> str:
    label = int(label)
    return class_names[label] if class_names is not None else str(label)


def show_images(
    images,
    labels=None,
    class_names: Sequence[str] | None = None,
    ncols: int = 8,
    predictions=None,
) -> Figure:
    """Grid of images titled with their class name.

    `images`: uint8 [N, H, W] (raw dataset pixels, shown on 0..255) or float [N, 1, H, W]
    / [N, 3, H, W] (normalised; each image stretched to its own min..max). With `predictions`
    the title is the predicted class, in red with the true class below when it is wrong.
    """
    arrays = _to_numpy(images)
    labels = None if labels is None else [int(v) for v in labels]
    predictions = None if predictions is None else [int(v) for v in predictions]
    fig, axes = _grid(len(arrays), ncols, (1.3, 1.5))
    for i, ax in enumerate(axes):
        image, style = _displayable(arrays[i])
        ax.imshow(image, **style)
        if predictions is not None:
            right = labels is None or predictions[i] == labels[i]
            title = _name(predictions[i], class_names)
            if not right:
                title += f"\n(true: {_name(labels[i], class_names)})"
            ax.set_title(title, fontsize=8, color="black" if right else WRONG)
        elif labels is not None:
            ax.set_title(_name(labels[i], class_names), fontsize=8)
    return fig


def dataset_grid(dataset, class_names: Sequence[str], per_class: int = 2, seed: int = 0) -> Figure:
    """`per_class` seeded random examples of every class; column c shows class c.

    Works with torchvision's MNIST-style datasets (`.targets` and `.data` uint8 [N, H, W]) and
    with any dataset of (image, label) pairs.
    """
    targets = getattr(dataset, "targets", None)
    targets = torch.as_tensor(targets if targets is not None else [int(y) for _, y in dataset])
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    chosen = []
    for c in range(len(class_names)):
        of_class = order[targets[order] == c][:per_class]
        if len(of_class) < per_class:
            raise ValueError(f"class {c} ({class_names[c]}) has only {len(of_class)} examples, need {per_class}")
        chosen.append(of_class)
    index = torch.stack(chosen, dim=1).flatten().tolist()  # row j: the j-th example of each class
    data = getattr(dataset, "data", None)
    images = data[index] if isinstance(data, torch.Tensor) else [dataset[i][0] for i in index]
    return show_images(images, targets[index], class_names, ncols=len(class_names))


def _rows(history) -> list[dict]:
    if hasattr(history, "epochs"):
        return list(history.epochs)
    if isinstance(history, Mapping) and "epochs" in history:  # History.to_dict() or its JSON
        return list(history["epochs"])
    if isinstance(history, Sequence):
        return list(history)
    raise TypeError(f"expected a History (with .epochs) or a list of epoch rows, got {type(history).__name__}")


def plot_history(history_or_dict, metrics: Sequence[str] = ("train_loss", "train_acc", "test_acc")) -> Figure:
    """One panel per metric against the epoch; a dict name -> history overlays several runs."""
    several = isinstance(history_or_dict, Mapping) and "epochs" not in history_or_dict
    runs = dict(history_or_dict) if several and not hasattr(history_or_dict, "epochs") else {"": history_or_dict}
    fig = _figure(3.6 * len(metrics), 2.8)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for name, history in runs.items():
            points = [(row["epoch"], row[metric]) for row in _rows(history) if row.get(metric) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=name or None)
        ax.set(title=metric, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    return fig


class LivePlot(Callback):
    """``plot_history`` as one PNG redrawn in place after each epoch of ``fit`` (no ``clear_output``):
    ``fit(..., callbacks=[LivePlot()])`` in a notebook."""

    def __init__(self) -> None:
        self.handle = None

    def after_epoch(self, history) -> None:
        from IPython.display import Image, display

        image = Image(plot_history(history).to_png(crop=False))
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def plot_time_to_accuracy(records: Sequence[dict], targets: Sequence[float] = (0.93, 0.94),
                          title: str | None = None) -> Figure:
    """Accuracy after each epoch against the wall-clock seconds since the start, one curve per run of
    ``cnnlib.training.speedrun_recipe.run``, with the targets as horizontal lines."""
    fig = Figure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.subplots()
    for record in records:
        rows = record["epochs"]
        ax.plot([r["seconds"] for r in rows], [r["acc"] for r in rows], "o-", markersize=3,
                label=f"{record.get('variant', 'seed')} {record['seed']}")
    for target in targets:
        ax.axhline(target, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="wall-clock seconds (loading, training, evaluation)", ylabel=f"{records[0]['split']} accuracy",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_filters(weight: torch.Tensor | nn.Module, ncols: int = 8) -> Figure:
    """First-layer convolution filters, weight [out, in, kh, kw] (or the conv layer itself).

    Three input channels are shown as colour (each filter stretched to its own range); otherwise
    the mean over input channels on a shared scale, red positive and blue negative.
    """
    w = (weight.weight if isinstance(weight, nn.Module) else weight).detach().float().cpu()
    if w.ndim != 4:
        raise ValueError(f"expected a conv weight [out, in, kh, kw], got shape {tuple(w.shape)}")
    colour = w.shape[1] == 3
    shown = w if colour else w.mean(dim=1)
    vmax = float(shown.abs().max()) or 1.0
    fig, axes = _grid(w.shape[0], ncols, (0.9, 0.9))
    for ax, f in zip(axes, shown.numpy()):
        if colour:
            ax.imshow(_displayable(f)[0])
        else:
            ax.imshow(f, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    fig.suptitle(f"{w.shape[0]} filters, {w.shape[2]}x{w.shape[3]}, {w.shape[1]} input channel(s)")
    return fig


def plot_feature_maps(maps: torch.Tensor, ncols: int = 8, title: str | None = None) -> Figure:
    """Feature maps [C, H, W] (or [1, C, H, W]), one panel per channel, each on its own scale."""
    m = maps.detach().float().cpu()
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(f"expected feature maps [C, H, W] or [1, C, H, W], got shape {tuple(maps.shape)}")
    fig, axes = _grid(m.shape[0], ncols, (1.1, 1.1))
    for ax, fmap in zip(axes, m.numpy()):
        ax.imshow(fmap, cmap="viridis")
    fig.suptitle(title if title is not None else f"{m.shape[0]} feature maps, {m.shape[1]}x{m.shape[2]}")
    return fig


def plot_confusion(matrix, class_names: Sequence[str], title: str = "Confusion matrix") -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with the count in each cell."""
    counts = _to_numpy(matrix)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"matrix of shape {counts.shape} does not match {k} class names")
    fig = _figure(1.0 + 0.5 * k, 0.6 + 0.5 * k)
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    dark, integers = counts.max() / 2, np.issubdtype(counts.dtype, np.integer)
    for i in range(k):
        for j in range(k):
            text = f"{counts[i, j]:d}" if integers else f"{counts[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > dark else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return fig


def plot_bars(
    names: Sequence[str], values: Sequence[float], ylabel: str, title: str | None = None,
    ylim: tuple[float, float] | None = None, errors: Sequence[float | tuple[float, float]] | None = None,
) -> Figure:
    """Bar chart with each value written on its bar (ablations, parameter counts).

    The value axis starts at 0 unless `ylim` says otherwise (to see small accuracy differences).
    `errors`: an error bar per value, symmetric (one number) or (below, above), e.g. a 95% interval.
    """
    if len(names) != len(values) or (errors is not None and len(errors) != len(values)):
        raise ValueError(f"{len(names)} names and {len(errors or values)} errors for {len(values)} values")
    fig = _figure(max(3.0, 0.8 * len(names) + 1.0), 3.2)
    ax = fig.subplots()
    yerr = None if errors is None else np.array([e if np.ndim(e) else (e, e) for e in errors], dtype=float).T
    bars = ax.bar(range(len(names)), values, color="tab:blue", yerr=yerr, capsize=4, ecolor="black")
    integers = all(float(v).is_integer() for v in values)
    ax.bar_label(bars, labels=[f"{v:,.0f}" if integers else f"{v:.3g}" for v in values], fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.margins(y=0.15)
    if ylim is not None:
        ax.set_ylim(ylim)
    return fig


def plot_lines(
    series: Mapping[str, Sequence[float]], xlabel: str, ylabel: str, title: str | None = None,
    logy: bool = False, start: int = 0, spread: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """Several curves y against their index (counted from `start`), one per dict entry.

    `spread`: for some curves, a +- band per point (e.g. the standard deviation over seeds), drawn
    as error bars on the curve.
    """
    fig = _figure(5.0, 3.2)
    ax = fig.subplots()
    for name, values in series.items():
        values = [float(v) for v in values]
        marker = "o" if len(values) <= 50 else None  # long series (lr per batch): a plain line
        band = None if spread is None or name not in spread else [float(v) for v in spread[name]]
        if band is not None and len(band) != len(values):
            raise ValueError(f"{name!r}: {len(band)} spreads for {len(values)} values")
        ax.errorbar(range(start, start + len(values)), values, yerr=band, marker=marker, markersize=3, label=name,
                    capsize=3 if band is not None else 0)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_grad_norms(norms: Mapping[str, Sequence[float]], title: str = "Gradient norm per layer") -> Figure:
    """Per-layer gradient norms (layer 1 = nearest the input) of several networks, log scale."""
    return plot_lines(norms, xlabel="layer", ylabel="gradient norm", title=title, logy=True, start=1)
