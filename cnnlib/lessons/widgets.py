"""Interactive explorers for the notebooks, with their logic in plain, testable functions.

Lesson 01: ``conv_explorer()`` shows how kernel, stride, padding and dilation set the output
size of a convolution, and where the window sits for each output position. The arithmetic, its
checks and its notation are those of ``cnnlib.models.layers``; this module only presents them.

Throughout, ``n, kernel, stride, padding, dilation`` are the arguments of
``cnnlib.models.layers.conv_out_size`` (the input's side n, then k, s, p, d), and ``step`` is an
output position counted row by row (0 .. o*o - 1 for an o x o output).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from cnnlib.lessons import viz
from cnnlib.models.layers import conv_out_size, effective_kernel, leftover, out_size_formula

IMPOSSIBLE_COLOR = "#c62828"


@dataclass(frozen=True)
class ConvExplanation:
    """The output size of a convolution along one axis, with the arithmetic written out."""

    n: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    output_size: int | None  # None when the arguments are impossible
    formula: str  # ``cnnlib.models.layers.out_size_formula``, e.g. "(7 - 3 + 2*1) / 2 + 1 = 4"; "" when impossible
    error: str | None  # why the arguments are impossible (``conv_out_size``'s ValueError), else None

    @property
    def possible(self) -> bool:
        return self.error is None

    @property
    def uncovered(self) -> int:
        """Padded cells at the end that no window reaches (``cnnlib.models.layers.leftover``); 0 when impossible."""
        return leftover(self.n, self.kernel, self.stride, self.padding, self.dilation) if self.possible else 0

    @property
    def is_exact(self) -> bool:
        """The last window ends exactly at the end of the padded input."""
        return self.possible and self.uncovered == 0

    def text(self) -> str:
        """One line: the output size and its formula, or why it is impossible."""
        if not self.possible:
            return f"impossible: {self.error}"
        return f"output size {self.output_size}: {self.formula}"

    def html(self) -> str:
        """The explanation as HTML for the explorer (red when impossible)."""
        if not self.possible:
            return f'<b style="color: {IMPOSSIBLE_COLOR}">impossible: {html.escape(self.error)}</b>'
        lines = [f"<b>output size {self.output_size}</b>", f"<code>{html.escape(self.formula)}</code>"]
        if self.dilation > 1:
            span = effective_kernel(self.kernel, self.dilation)
            lines.append(f"effective kernel {self.dilation}*({self.kernel} - 1) + 1 = {span}")
        if self.is_exact:
            lines.append("exact: the last window ends at the last padded cell")
        else:
            lines.append(f"not exact: the last {self.uncovered} padded cell(s) of each row and column "
                         "are never covered")
        return "<br>".join(lines)


def conv_explanation(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> ConvExplanation:
    """Explain ``cnnlib.models.layers.conv_out_size(n, kernel, stride, padding, dilation)``: its result
    and ``out_size_formula``, or its ValueError's message when the arguments are impossible."""
    try:
        out = conv_out_size(n, kernel, stride, padding, dilation)
    except ValueError as error:
        return ConvExplanation(n, kernel, stride, padding, dilation, None, "", str(error))
    formula = out_size_formula(n, kernel, stride, padding, dilation)
    return ConvExplanation(n, kernel, stride, padding, dilation, out, formula, None)


def window_positions(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> list[int]:
    """Start index of the window for each output position along one axis.

    Indices are into the unpadded input, so a negative start lies in the padding: output
    ``i`` reads the inputs ``i*s - p + j*d`` for ``j = 0 .. k-1``. ValueError if impossible.
    """
    explanation = conv_explanation(n, kernel, stride, padding, dilation)
    if not explanation.possible:
        raise ValueError(explanation.error)
    return [i * stride - padding for i in range(explanation.output_size)]


def draw_window(ax: Axes, n: int, kernel: int, stride: int, padding: int, dilation: int, step: int) -> Axes:
    """Draw the padded n x n input (padding in grey) and the window of output ``step``.

    ``step`` counts output positions row by row (0 .. o*o - 1). The kernel's taps are the
    filled cells; the dashed square is the span of the (dilated) window.
    """
    starts = window_positions(n, kernel, stride, padding, dilation)
    o = len(starts)
    if not 0 <= step < o * o:
        raise ValueError(f"step must be between 0 and {o * o - 1} for a {o}x{o} output (got {step})")
    row, col = divmod(step, o)
    size = n + 2 * padding
    shade = np.full((size, size), 0.85)  # grey padding, white input
    shade[padding:padding + n, padding:padding + n] = 1.0
    ax.imshow(shade, cmap="gray", vmin=0, vmax=1, extent=(0, size, size, 0), interpolation="nearest")
    ax.hlines(range(size + 1), 0, size, color="#9e9e9e", linewidth=0.8)
    ax.vlines(range(size + 1), 0, size, color="#9e9e9e", linewidth=0.8)
    top, left = starts[row] + padding, starts[col] + padding
    for i in range(kernel):
        for j in range(kernel):
            ax.add_patch(Rectangle((left + j * dilation, top + i * dilation), 1, 1,
                                   facecolor="tab:blue", alpha=0.6, edgecolor="tab:blue"))
    span = effective_kernel(kernel, dilation)
    ax.add_patch(Rectangle((left, top), span, span, fill=False, edgecolor="tab:red", linewidth=2, linestyle="--"))
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.set_aspect("equal")
    ticks = [i + 0.5 for i in range(size)]
    labels = [str(i - padding) for i in range(size)]
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(f"output ({row}, {col}) of {o}x{o}: window at input ({starts[row]}, {starts[col]})", fontsize=9)
    return ax


def window_figure(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                  steps: Sequence[int] = (0,)) -> viz.Figure:
    """One ``draw_window`` panel per output position in ``steps``: the explorer, frozen, for
    readers of a stored notebook (a ``cnnlib.lessons.viz.Figure``, shown as PNG)."""
    fig = viz.Figure(figsize=(3.2 * len(steps), 3.4), dpi=100, layout="constrained")
    for ax, step in zip(np.atleast_1d(fig.subplots(1, len(steps))), steps):
        draw_window(ax, n, kernel, stride, padding, dilation, step)
    return fig


def window_png(n: int, kernel: int, stride: int, padding: int, dilation: int, step: int) -> bytes:
    """``draw_window`` as PNG bytes of a fixed size, or a short message when the arguments are impossible."""
    fig = viz.Figure(figsize=(4.2, 4.2), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    if conv_explanation(n, kernel, stride, padding, dilation).possible:
        draw_window(ax, n, kernel, stride, padding, dilation, step)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no output:\nsee the message", ha="center", va="center", color=IMPOSSIBLE_COLOR, fontsize=12)
    return fig.to_png(crop=False)


SLIDERS = {  # name: (description, min, max)
    "n": ("input n", 1, 16),
    "kernel": ("kernel k", 1, 9),
    "stride": ("stride s", 1, 4),
    "padding": ("padding p", 0, 4),
    "dilation": ("dilation d", 1, 3),
}


def update_formula(sliders: dict[str, widgets.IntSlider], step: widgets.IntSlider, formula: widgets.HTML) -> None:
    """Show the explanation for the sliders' values; bound the output-position slider."""
    explanation = conv_explanation(**{name: s.value for name, s in sliders.items()})
    formula.value = explanation.html()
    step.max = explanation.output_size ** 2 - 1 if explanation.possible else 0
    step.disabled = not explanation.possible


def update_image(sliders: dict[str, widgets.IntSlider], step: widgets.IntSlider, image: widgets.Image) -> None:
    """Redraw the window for the current output position."""
    image.value = window_png(**{name: s.value for name, s in sliders.items()}, step=step.value)


def conv_explorer(n: int = 7, kernel: int = 3, stride: int = 1, padding: int = 0, dilation: int = 1) -> widgets.HBox:
    """Sliders for n, k, s, p, d and the output position; the formula (HTML with CSS class
    ``conv-formula``) and the drawn window (Image with CSS class ``conv-window``)."""
    initial = {"n": n, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    style = {"description_width": "initial"}
    sliders = {
        name: widgets.IntSlider(value=initial[name], min=min(low, initial[name]), max=max(high, initial[name]),
                                description=description, style=style)
        for name, (description, low, high) in SLIDERS.items()
    }
    step = widgets.IntSlider(value=0, min=0, max=0, description="output position", style=style)
    formula = widgets.HTML()
    formula.add_class("conv-formula")
    image = widgets.Image(format="png")
    image.add_class("conv-window")

    def on_size_change(change: dict) -> None:
        update_formula(sliders, step, formula)
        update_image(sliders, step, image)

    for slider in sliders.values():
        slider.observe(on_size_change, names="value")
    step.observe(lambda change: update_image(sliders, step, image), names="value")
    on_size_change({})
    return widgets.HBox([widgets.VBox([*sliders.values(), step, formula]), image])
