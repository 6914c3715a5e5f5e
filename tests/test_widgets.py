"""The conv explorer's arithmetic agrees with torch; its widgets are wired to it."""

import io
import itertools
import math

import ipywidgets as widgets
import matplotlib.image
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from cnnlib.models.layers import conv_out_size, leftover, out_size_formula
from cnnlib.lessons.widgets import (
    conv_explanation,
    conv_explorer,
    draw_window,
    window_figure,
    window_png,
    window_positions,
)

# Every combination, invalid values included (n 0, kernel 0, stride 0, padding -1, dilation 0).
GRID = list(itertools.product(range(0, 9), range(0, 6), range(0, 4), range(-1, 4), range(0, 4)))


def torch_out_size(n, kernel, stride, padding, dilation):
    """The output size of F.conv2d on a real n x n input, or None when torch refuses."""
    try:
        y = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, kernel, kernel),
                     stride=stride, padding=padding, dilation=dilation)
    except RuntimeError:
        return None
    assert y.shape[-1] == y.shape[-2]
    return y.shape[-1]


@pytest.fixture(scope="module")
def torch_sizes():
    return {args: torch_out_size(*args) for args in GRID}


def test_grid_covers_possible_and_impossible(torch_sizes):
    impossible = sum(size is None for size in torch_sizes.values())
    assert 0 < impossible < len(GRID)


def test_explanation_agrees_with_torch_on_every_combination(torch_sizes):
    for args, expected in torch_sizes.items():
        explanation = conv_explanation(*args)
        if expected is None:
            assert not explanation.possible, args
            assert explanation.output_size is None and explanation.error, args
            assert explanation.text().startswith("impossible: "), args
        else:
            assert explanation.possible and explanation.error is None, args
            assert explanation.output_size == expected, args


def test_formula_evaluates_to_the_output_size(torch_sizes):
    for args, expected in torch_sizes.items():
        if expected is None:
            continue
        explanation = conv_explanation(*args)
        left, right = explanation.formula.split(" = ")
        assert eval(left, {"floor": math.floor}) == expected == int(right), args
        assert explanation.is_exact == (not left.startswith("floor(")), args


def test_formula_text():
    assert conv_explanation(7, 3, 2, 1).formula == "(7 - 3 + 2*1) / 2 + 1 = 4"
    assert conv_explanation(7, 3, 2, 1).is_exact
    inexact = conv_explanation(8, 3, 2, 1)
    assert inexact.formula == "floor((8 - 3 + 2*1) / 2) + 1 = 4"
    assert not inexact.is_exact and inexact.uncovered == 1
    dilated = conv_explanation(7, 3, 1, 0, 2)
    assert dilated.formula == "(7 - 2*(3 - 1) - 1 + 2*0) / 1 + 1 = 3"  # the notation of cnnlib.models.layers
    assert "effective kernel 2*(3 - 1) + 1 = 5" in dilated.html()
    assert conv_explanation(7, 3, 2, 1).text() == "output size 4: (7 - 3 + 2*1) / 2 + 1 = 4"


def test_explanation_is_a_view_of_cnnlib_layers(torch_sizes):
    """One validation, one formula: the widget says exactly what cnnlib.models.layers says."""
    for args, expected in torch_sizes.items():
        explanation = conv_explanation(*args)
        if expected is None:
            with pytest.raises(ValueError) as refused:
                conv_out_size(*args)
            assert explanation.error == str(refused.value), args
        else:
            assert explanation.formula == out_size_formula(*args), args
            assert explanation.uncovered == leftover(*args), args


def test_impossible_messages():
    assert conv_explanation(5, 9).error == "kernel 9 is larger than the padded input 5 + 2*0 = 5"
    assert conv_explanation(5, 3, 1, 0, 3).error == (
        "kernel 3 (dilated to 7) is larger than the padded input 5 + 2*0 = 5"
    )
    assert conv_explanation(5, 3, 0).text() == "impossible: stride must be at least 1, got 0"
    assert 'color: #c62828' in conv_explanation(5, 9).html()


def test_window_positions_match_the_taps_torch_reads(torch_sizes):
    """Output i of a conv with a one-hot kernel at tap j reads input i*s - p + j*d (0 in the padding)."""
    for (n, kernel, stride, padding, dilation), expected in torch_sizes.items():
        if expected is None or kernel > 3:
            continue
        starts = window_positions(n, kernel, stride, padding, dilation)
        assert len(starts) == expected
        x = torch.arange(1.0, n + 1).view(1, 1, n)  # values 1..n; padding reads 0
        for j in range(kernel):
            w = torch.zeros(1, 1, kernel)
            w[0, 0, j] = 1.0
            y = F.conv1d(x, w, stride=stride, padding=padding, dilation=dilation)[0, 0].tolist()
            reads = [start + j * dilation for start in starts]
            assert y == [float(i + 1) if 0 <= i < n else 0.0 for i in reads], (n, kernel, stride, padding, dilation, j)


def test_window_positions_raise_on_impossible():
    with pytest.raises(ValueError, match="larger than the padded input"):
        window_positions(5, 9)


def test_draw_window():
    ax = Figure().add_subplot()
    draw_window(ax, 7, 3, 2, 1, 2, step=3)  # padded 9x9 grid, output 3x3, position (1, 0)
    assert len(ax.patches) == 3 * 3 + 1 and ax.get_xlim() == (0, 9)
    assert ax.get_title() == "output (1, 0) of 3x3: window at input (1, -1)"
    taps = sorted((p.get_x(), p.get_y()) for p in ax.patches[:9])
    assert taps == [(x, y) for x in (0, 2, 4) for y in (2, 4, 6)]
    with pytest.raises(ValueError, match="between 0 and 8"):
        draw_window(Figure().add_subplot(), 7, 3, 2, 1, 2, step=9)
    with pytest.raises(ValueError, match="larger than the padded input"):
        draw_window(Figure().add_subplot(), 5, 9, 1, 0, 1, step=0)


def test_window_figure_has_one_panel_per_step():
    fig = window_figure(7, 3, 2, 1, steps=(0, 1, 15))
    assert [ax.get_title() for ax in fig.axes] == [
        "output (0, 0) of 4x4: window at input (-1, -1)",
        "output (0, 1) of 4x4: window at input (-1, 1)",
        "output (3, 3) of 4x4: window at input (5, 5)",
    ]
    assert fig._repr_png_().startswith(b"\x89PNG")  # Jupyter shows it as a PNG without pyplot
    assert len(window_figure(5, 3).axes) == 1


def test_window_png_keeps_one_size_for_possible_and_impossible():
    """The explorer's image does not jump when a slider changes it."""
    sizes = {matplotlib.image.imread(io.BytesIO(window_png(*args)), format="png").shape
             for args in [(7, 3, 1, 0, 1, 0), (16, 9, 4, 4, 3, 3), (5, 9, 1, 0, 1, 0)]}
    assert sizes == {(336, 336, 4)}  # 4.2 x 4.2 inches at 80 dpi, RGBA


def find(container, cls, **traits):
    """The one widget of type ``cls`` under ``container`` whose traits have these values."""
    found, stack = [], [container]
    while stack:
        w = stack.pop()
        stack.extend(getattr(w, "children", ()))
        if isinstance(w, cls) and all(getattr(w, k) == v for k, v in traits.items()):
            found.append(w)
    assert len(found) == 1, (cls, traits, found)
    return found[0]


def test_explorer_wiring():
    ui = conv_explorer(n=7, kernel=3)
    formula = find(ui, widgets.HTML)
    image = find(ui, widgets.Image)
    step = find(ui, widgets.IntSlider, description="output position")
    assert "conv-formula" in formula._dom_classes and "conv-window" in image._dom_classes
    assert "<b>output size 5</b>" in formula.value and step.max == 24
    first = image.value

    find(ui, widgets.IntSlider, description="stride s").value = 2
    assert "<b>output size 3</b>" in formula.value and "(7 - 3 + 2*0) / 2 + 1 = 3" in formula.value
    assert step.max == 8 and image.value != first
    image_before_step = image.value

    step.value = 8
    after_step = image.value
    assert after_step != image_before_step
    find(ui, widgets.IntSlider, description="input n").value = 8
    assert "floor((8 - 3 + 2*0) / 2) + 1 = 3" in formula.value and "not exact" in formula.value
    assert step.max == 8 and step.value == 8 and image.value != after_step
    find(ui, widgets.IntSlider, description="padding p").value = 1
    assert "floor((8 - 3 + 2*1) / 2) + 1 = 4" in formula.value and step.max == 15

    find(ui, widgets.IntSlider, description="padding p").value = 0
    find(ui, widgets.IntSlider, description="kernel k").value = 9
    assert "impossible: kernel 9 is larger than the padded input 8 + 2*0 = 8" in formula.value
    assert step.disabled and step.max == 0 and step.value == 0

    find(ui, widgets.IntSlider, description="kernel k").value = 3
    assert "<b>output size 3</b>" in formula.value and not step.disabled and step.max == 8


def test_explorer_sliders_admit_out_of_range_start_values():
    ui = conv_explorer(n=32, kernel=11, stride=4, padding=2)
    assert find(ui, widgets.IntSlider, description="input n").value == 32
    assert "<b>output size 7</b>" in find(ui, widgets.HTML).value
