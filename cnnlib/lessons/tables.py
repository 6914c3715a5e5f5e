"""A layer-by-layer table of a model: output shape, parameters, multiply-accumulates, and for
convolution and pooling layers the output-size arithmetic with its numbers.

MACs (multiply-accumulates) are counted for the layers that do nearly all the arithmetic:

    Conv2d: output elements * (in_channels / groups) * kernel_h * kernel_w
    Linear: output elements * in_features

Bias additions, BatchNorm, activations, pooling and residual additions count 0: the same
convention as ``torch.utils.flop_counter``, whose FLOPs are 2 * MACs. The model runs once, in
eval mode and without gradients, on an input of the given size (on the model's own device: a
model built on the "meta" device gives its table without computing anything).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from cnnlib.models.layers import windows

__all__ = ["LayerRow", "LayerTable", "layer_table", "layer_macs", "layer_arithmetic"]


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One call of a layer (or one group of layers, see ``layer_table(depth=...)``)."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None  # None: the layer was not called
    params: int
    macs: int
    arithmetic: str = ""


def layer_macs(module: nn.Module, output_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one call of a Conv2d or Linear with this output shape; 0 for others."""
    elements = math.prod(output_shape)
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return elements * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return elements * module.in_features
    return 0


def layer_arithmetic(module: nn.Module, input_hw: tuple[int, int], output_hw: tuple[int, int]) -> str:
    """The output-size formula of a conv / pool layer with its numbers, e.g.
    "(227 - 11 + 2*0) / 4 + 1 = 55"; one formula per axis when the two axes differ."""
    geometry = windows(module)
    if geometry is not None:
        texts = [window.formula(n) for window, n in zip(geometry, input_hw)]
        return texts[0] if texts[0] == texts[1] else f"H: {texts[0]}; W: {texts[1]}"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"adaptive: {input_hw[0]}x{input_hw[1]} -> {output_hw[0]}x{output_hw[1]}"
    return ""


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "(not called)" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


class LayerTable:
    """Rows of ``LayerRow`` with totals; ``str()`` gives a text table, notebooks show HTML."""

    columns = ("Layer", "Type", "Output shape", "Params", "MACs", "Arithmetic")

    def __init__(self, rows: list[LayerRow], input_shape: tuple[int, ...]) -> None:
        self.rows, self.input_shape = rows, input_shape

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def total_flops(self) -> int:
        """2 * MACs, comparable with ``torch.utils.flop_counter``."""
        return 2 * self.total_macs

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[LayerRow]:
        return iter(self.rows)

    def row(self, name: str) -> LayerRow:
        """The first row of the layer with this name."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no layer named {name!r} in the table")

    def summary(self) -> str:
        return (
            f"input {_shape_text(self.input_shape)}: {self.total_params:,} parameters, "
            f"{self.total_macs:,} MACs ({self.total_flops / 1e9:.3f} GFLOPs)"
        )

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (r.name, r.type, _shape_text(r.output_shape), f"{r.params:,}", f"{r.macs:,}", r.arithmetic)
            for r in self.rows
        ]

    def _total_cells(self) -> tuple[str, ...]:
        return ("Total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}", "")

    def __str__(self) -> str:
        lines = [self.columns, *self._cells(), self._total_cells()]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.columns))]
        numeric = {3, 4}

        def render(line: tuple[str, ...]) -> str:
            cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
            return "  ".join(cells).rstrip()

        rule = "-" * len(render(tuple("-" * w for w in widths)))
        body = [render(line) for line in lines[1:-1]]
        return "\n".join([render(lines[0]), rule, *body, rule, render(lines[-1]), self.summary()])

    def __repr__(self) -> str:
        return f"<LayerTable: {len(self.rows)} rows; {self.summary()}>"

    def _repr_html_(self) -> str:
        def row_html(cells: tuple[str, ...], tag: str = "td") -> str:
            styled = [
                f'<{tag} style="text-align:{"right" if i in (3, 4) else "left"}">{html.escape(c)}</{tag}>'
                for i, c in enumerate(cells)
            ]
            return "<tr>" + "".join(styled) + "</tr>"

        return (
            "<table>"
            f"<thead>{row_html(self.columns, 'th')}</thead>"
            f"<tbody>{''.join(row_html(cells) for cells in self._cells())}</tbody>"
            f"<tfoot>{row_html(self._total_cells(), 'th')}</tfoot>"
            f"</table><p>{html.escape(self.summary())}</p>"
        )

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame (pandas is imported on demand)."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(row) for row in self.rows])


def _input_shape(model: nn.Module, input_size: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_size, int):
        if not hasattr(model, "in_channels"):
            raise ValueError("give input_size as (channels, height, width): the model has no in_channels")
        return (1, model.in_channels, input_size, input_size)
    shape = tuple(int(n) for n in input_size)
    if len(shape) == 3:
        return (1, *shape)
    if len(shape) == 4:
        return shape
    raise ValueError(f"input_size must be n, (C, H, W) or (N, C, H, W), got {input_size!r}")


def _group(name: str, depth: int | None) -> str:
    return name if depth is None else ".".join(name.split(".")[:depth])


def layer_table(model: nn.Module, input_size: int | Sequence[int], depth: int | None = None) -> LayerTable:
    """Run ``model`` once on an input of ``input_size`` and tabulate its layers.

    ``input_size``: (C, H, W) (batch of 1), (N, C, H, W), or an int n for an n x n image with
    the model's ``in_channels``. ``depth=None`` gives one row per call of a leaf layer (a layer
    called twice gives two rows, its parameters counted once); ``depth=1`` one row per
    top-level child (stem layers, stages, classifier), ``depth=2`` one per block, and so on,
    each with the MACs of the layers inside it. Parameters that the forward pass never reaches
    appear in rows marked "(not called)", so that the total is the model's parameter count.
    """
    shape = _input_shape(model, input_size)
    calls: list[tuple[str, nn.Module, tuple[int, ...], tuple[int, ...]]] = []  # leaf calls
    group_outputs: dict[str, tuple[int, ...]] = {}

    def leaf_hook(name: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if args and isinstance(args[0], Tensor) and isinstance(output, Tensor):
            calls.append((name, module, tuple(args[0].shape), tuple(output.shape)))

    def group_hook(name: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, Tensor):
            group_outputs[name] = tuple(output.shape)

    named = dict(model.named_modules())
    leaves = [name for name, m in named.items() if not any(m.children())]
    hooks = [named[name].register_forward_hook(functools.partial(leaf_hook, name)) for name in leaves]
    if depth is not None:
        groups = {_group(name, depth) for name in leaves}
        hooks += [named[g].register_forward_hook(functools.partial(group_hook, g)) for g in groups]
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()

    seen: set[int] = set()

    def new_params(parameters: Iterable[nn.Parameter]) -> int:
        fresh = {id(p): p for p in parameters if id(p) not in seen}
        seen.update(fresh)
        return sum(p.numel() for p in fresh.values())

    rows: list[LayerRow] = []
    if depth is None:
        for name, module, in_shape, out_shape in calls:
            arithmetic = layer_arithmetic(module, in_shape[-2:], out_shape[-2:]) if len(in_shape) == 4 else ""
            params, macs = new_params(module.parameters()), layer_macs(module, out_shape)
            rows.append(LayerRow(name, type(module).__name__, out_shape, params, macs, arithmetic))
    else:
        macs: dict[str, int] = {}
        last_call: dict[str, tuple[nn.Module, tuple[int, ...], tuple[int, ...]]] = {}
        for name, module, in_shape, out_shape in calls:
            group = _group(name, depth)
            macs[group] = macs.get(group, 0) + layer_macs(module, out_shape)
            last_call[group] = (module, in_shape, out_shape)
        for group, total in macs.items():  # dicts keep the order of the first call
            module, in_shape, out_shape = last_call[group]
            arithmetic = ""
            if module is named[group] and len(in_shape) == 4:  # the group is a single layer
                arithmetic = layer_arithmetic(module, in_shape[-2:], out_shape[-2:])
            unit = named[group]
            params = new_params(unit.parameters())
            rows.append(LayerRow(group, type(unit).__name__, group_outputs[group], params, total, arithmetic))
    for name, module in named.items():
        params = new_params(module.parameters(recurse=False))
        if params:
            rows.append(LayerRow(name, type(module).__name__, None, params, 0))
    return LayerTable(rows, shape)
