"""Figures: the right panels and titles, deterministic PNGs."""

import io
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from cnnlib.lessons.viz import (  # noqa: E402
    dataset_grid,
    plot_bars,
    plot_confusion,
    plot_feature_maps,
    plot_filters,
    plot_grad_norms,
    plot_history,
    plot_lines,
    show_images,
)

NAMES = ["zero", "one", "two"]


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_show_images_uint8_with_class_names():
    images = torch.randint(0, 256, (10, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    fig = show_images(images, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), NAMES, ncols=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 10  # 3 x 4 grid, the 2 spare cells removed
    assert titles(fig)[:4] == ["zero", "one", "two", "zero"]
    assert fig.axes[4].get_subplotspec().rowspan.start == 1  # 5th image starts the second row
    assert fig.axes[0].images[0].get_clim() == (0, 255)  # raw pixels keep their true intensity
    assert not plt.get_fignums()  # not registered with pyplot: a notebook shows it once


def test_show_images_float_predictions_mark_mistakes():
    images = torch.randn(4, 1, 5, 5)
    fig = show_images(images, labels=[0, 1, 2, 1], class_names=NAMES, predictions=[0, 2, 2, 0])
    assert titles(fig) == ["zero", "two\n(true: one)", "two", "zero\n(true: one)"]
    colours = [matplotlib.colors.to_hex(ax.title.get_color()) for ax in fig.axes]
    assert colours[0] == colours[2] == "#000000" and colours[1] == colours[3] == matplotlib.colors.to_hex("tab:red")
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (5, 5) and shown.min() == 0.0 and shown.max() == 1.0  # stretched


def test_show_images_other_inputs():
    rgb = show_images(torch.rand(3, 3, 4, 4))  # colour, no labels: no titles
    assert rgb.axes[0].images[0].get_array().shape == (4, 4, 3) and titles(rgb) == ["", "", ""]
    listed = show_images([np.zeros((4, 4), np.uint8), torch.ones(1, 4, 4)[0].to(torch.uint8)], labels=[1, 2])
    assert titles(listed) == ["1", "2"]
    with pytest.raises(ValueError, match="shape"):
        show_images(torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="0 images"):
        show_images(torch.zeros(0, 4, 4))


def test_rendering_is_deterministic_png():
    images = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    first, second = (show_images(images, [0, 1, 2, 0, 1, 2], NAMES).to_png() for _ in range(2))
    assert first.startswith(b"\x89PNG") and first == second
    fig = show_images(images)
    assert fig._repr_png_() == fig.to_png()  # how Jupyter shows it, with or without pyplot
    assert repr(fig) == "<Figure size 780x150 with 6 Axes>"  # the text nbval compares: no address


def test_png_is_cropped_or_kept_at_the_figures_size():
    fig = plot_bars(["a", "b"], [1, 2], "x")
    full = matplotlib.image.imread(io.BytesIO(fig.to_png(crop=False)), format="png")
    cropped = matplotlib.image.imread(io.BytesIO(fig.to_png()), format="png")
    assert full.shape[:2] == (round(fig.get_figheight() * fig.dpi), round(fig.get_figwidth() * fig.dpi))
    assert cropped.shape[:2] != full.shape[:2]


class TinyDataset:
    """MNIST-like: .data uint8 [N, H, W] and .targets; images encode their index."""

    def __init__(self, n=30, classes=3):
        self.targets = torch.arange(n) % classes
        self.data = torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, 4, 4).contiguous()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], int(self.targets[i])


def test_dataset_grid_columns_are_classes_and_seeded():
    data = TinyDataset()
    fig = dataset_grid(data, NAMES, per_class=2, seed=0)
    assert len(fig.axes) == 6 and titles(fig) == NAMES * 2
    shown = [int(ax.images[0].get_array()[0, 0]) for ax in fig.axes]
    assert [i % 3 for i in shown] == [0, 1, 2, 0, 1, 2] and len(set(shown)) == 6
    assert shown == [int(ax.images[0].get_array()[0, 0]) for ax in dataset_grid(data, NAMES, 2, seed=0).axes]
    assert shown != [int(ax.images[0].get_array()[0, 0]) for ax in dataset_grid(data, NAMES, 2, seed=1).axes]
    pairs = [data[i] for i in range(len(data))]  # any dataset of (image, label) pairs
    assert [int(ax.images[0].get_array()[0, 0]) for ax in dataset_grid(pairs, NAMES, 2, seed=0).axes] == shown
    with pytest.raises(ValueError, match="has only 10 examples"):
        dataset_grid(data, NAMES, per_class=11)


def rows(accs, test=True):
    return [dict(epoch=e + 1, train_loss=1.0 / (e + 1), train_acc=a, test_acc=a - 0.05 if test else None,
                 examples_per_s=100.0, seconds=1.0, lr=0.1) for e, a in enumerate(accs)]


def test_plot_history_single_and_overlaid():
    history = SimpleNamespace(epochs=rows([0.5, 0.7, 0.8]))
    fig = plot_history(history)
    assert titles(fig) == ["train_loss", "train_acc", "test_acc"]
    assert [len(ax.lines) for ax in fig.axes] == [1, 1, 1] and fig.axes[0].get_legend() is None
    assert list(fig.axes[1].lines[0].get_xdata()) == [1, 2, 3]
    assert list(fig.axes[2].lines[0].get_ydata()) == pytest.approx([0.45, 0.65, 0.75])
    runs = {"plain": history, "residual": {"epochs": rows([0.6, 0.9], test=False)}}  # History.to_dict() form
    fig = plot_history(runs, metrics=("train_acc", "test_acc"))
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]  # the run without test accuracy is left out
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["plain", "residual"]
    assert len(plot_history(rows([0.5])).axes) == 3  # a bare list of rows
    with pytest.raises(TypeError, match="History"):
        plot_history({"run": 3})


def test_plot_filters_and_feature_maps():
    fig = plot_filters(torch.randn(6, 1, 5, 5))
    assert len(fig.axes) == 6 and fig.get_suptitle() == "6 filters, 5x5, 1 input channel(s)"
    vmin, vmax = fig.axes[0].images[0].get_clim()
    assert vmin == -vmax  # shared, symmetric scale: the sign of a weight is its colour
    colour = plot_filters(nn.Conv2d(3, 4, 3))
    assert len(colour.axes) == 4 and colour.axes[0].images[0].get_array().shape == (3, 3, 3)
    with pytest.raises(ValueError, match="conv weight"):
        plot_filters(torch.zeros(3, 3))
    maps = plot_feature_maps(torch.rand(1, 5, 7, 7), ncols=3, title="conv1")
    assert len(maps.axes) == 5 and maps.get_suptitle() == "conv1"
    assert plot_feature_maps(torch.rand(2, 3, 3)).get_suptitle() == "2 feature maps, 3x3"
    with pytest.raises(ValueError, match="feature maps"):
        plot_feature_maps(torch.rand(2, 2, 3, 3))


def test_plot_confusion():
    counts = torch.tensor([[2, 1, 0], [0, 2, 1], [0, 0, 1]])
    fig = plot_confusion(counts, NAMES)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_title() == "Confusion matrix"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert [t.get_text() for t in ax.texts] == ["2", "1", "0", "0", "2", "1", "0", "0", "1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert plot_confusion(counts / 3.0, NAMES).axes[0].texts[0].get_text() == "0.67"
    with pytest.raises(ValueError, match="class names"):
        plot_confusion(counts, NAMES[:2])


def test_plot_bars_labels_values():
    fig = plot_bars(["resnet18", "resnet34"], [11_689_512, 21_797_672], "parameters", title="size")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and ax.get_ylabel() == "parameters" and ax.get_title() == "size"
    assert [t.get_text() for t in ax.texts] == ["11,689,512", "21,797,672"]
    zoomed = plot_bars(["a", "b"], [0.8652, 0.9], "acc", ylim=(0.8, 0.95)).axes[0]
    assert [t.get_text() for t in zoomed.texts] == ["0.865", "0.9"] and zoomed.get_ylim() == (0.8, 0.95)
    with pytest.raises(ValueError, match="names"):
        plot_bars(["a"], [1, 2], "x")


def test_plot_bars_error_bars_span_the_intervals():
    ax = plot_bars(["a", "b"], [0.8, 0.9], "acc", errors=[0.02, (0.01, 0.03)]).axes[0]
    (bar_segments,) = [c for c in ax.collections if len(c.get_segments()) == 2]
    spans = [y for seg in bar_segments.get_segments() for y in (seg[0][1], seg[1][1])]
    assert spans == pytest.approx([0.78, 0.82, 0.89, 0.93])
    with pytest.raises(ValueError, match="errors"):
        plot_bars(["a", "b"], [1, 2], "x", errors=[0.1])


def test_plot_grad_norms_and_lines():
    fig = plot_grad_norms({"plain": [1e-4, 1e-2, 1.0], "residual": [0.5, 0.7, 1.0]})
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_xlabel() == "layer"
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    lr = plot_lines({"lr": [0.1, 0.05, 0.0]}, xlabel="step", ylabel="learning rate")
    assert lr.axes[0].get_yscale() == "linear" and list(lr.axes[0].lines[0].get_xdata()) == [0, 1, 2]


def test_plot_lines_draws_the_spread_as_error_bars():
    ax = plot_lines({"relu": [0.5, 0.2], "tanh": [0.6, 0.3]}, "epoch", "error", start=1,
                    spread={"relu": [0.1, 0.05]}).axes[0]
    (bars,) = [c for c in ax.collections if len(c.get_segments())]  # only relu has a spread
    spans = [y for seg in bars.get_segments() for y in (seg[0][1], seg[1][1])]
    assert spans == pytest.approx([0.4, 0.6, 0.15, 0.25])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["relu", "tanh"]
    with pytest.raises(ValueError, match="spreads"):
        plot_lines({"relu": [0.5, 0.2]}, "epoch", "error", spread={"relu": [0.1]})
