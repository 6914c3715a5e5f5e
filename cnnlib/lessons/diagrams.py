"""Architecture diagrams drawn from the module itself, so that the picture cannot disagree with
the network.

``diagram(model, input_size)`` runs one forward pass on the meta device (shapes, no arithmetic)
with hooks on the layers it draws, and records a `Diagram`: a node per call of a layer with
its output shape, and an edge for each step the data took, including the merges that are not
modules (the ``+`` of a residual block, the ``torch.cat`` of an Inception block), seen through
a `TorchFunctionMode`. ``draw`` lays a diagram out, one row per step from the input and a
column per parallel branch, and returns a `Figure`::

    draw(diagram(get_model("resnet18"), 224))            # stem layers, then one box per block
    draw({"ResNet-B": diagram(resnet_b.layer2[0], (256, 56, 56)),
          "ResNet-D": diagram(resnet_d.layer2[0], (256, 56, 56))})   # side by side
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.patches import FancyBboxPatch
from torch import Tensor, nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from cnnlib.lessons.tables import _input_shape
from cnnlib.lessons.viz import Figure

__all__ = ["Node", "Diagram", "diagram", "draw"]

_MERGES = {
    **dict.fromkeys([torch.cat, torch.concat, torch.concatenate], "concat"),
    **dict.fromkeys([torch.add, Tensor.add, Tensor.add_, Tensor.__add__, Tensor.__radd__, Tensor.__iadd__], "add"),
}


@dataclass(frozen=True)
class Node:
    """One box. ``name``: the layer's qualified name ("layer1.0.conv1"), or "input", "add",
    "concat"; ``kind``: the layer's class name, or "input", "add", "concat"; ``label``: what the
    box says; ``shape``: the output's shape without the batch axis."""

    name: str
    kind: str
    label: str
    shape: tuple[int, ...]


@dataclass
class Diagram:
    """Nodes in the order the forward pass reached them (the input first) and edges
    ``(from, to)`` between their indices."""

    nodes: list[Node]
    edges: list[tuple[int, int]]

    def predecessors(self, i: int) -> list[int]:
        return [a for a, b in self.edges if b == i]

    def successors(self, i: int) -> list[int]:
        return [b for a, b in self.edges if a == i]


def _boxes(module: nn.Module, depth: int, prefix: str = "") -> dict[str, nn.Module]:
    """The layers drawn as boxes: children opened ``depth`` levels down. A container
    (Sequential, ModuleList) only groups, so it is always opened; an Identity does nothing, so
    it is left out."""
    boxes: dict[str, nn.Module] = {}
    for name, child in module.named_children():
        grouping = isinstance(child, (nn.Sequential, nn.ModuleList, nn.ModuleDict))
        if any(child.children()) and (grouping or depth > 1):
            boxes |= _boxes(child, depth if grouping else depth - 1, f"{prefix}{name}.")
        elif not isinstance(child, nn.Identity):
            boxes[prefix + name] = child
    return boxes


def _label(name: str, module: nn.Module) -> str:
    """"name · Kind", with the kernel and stride of its only window (a conv or pool layer, or
    a conv-BN-ReLU unit) as "3x3/2", its groups, a dropout's probability."""
    text = f"{name} · {type(module).__name__}"
    windows = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    if len(windows) == 1:
        window = windows[0]
        kernel, stride = (v if isinstance(v, int) else v[0] for v in (window.kernel_size, window.stride))  # square
        text += f" {kernel}x{kernel}" + (f"/{stride}" if stride != 1 else "")
        if getattr(window, "groups", 1) > 1:
            text += f", {window.groups} groups"
    if isinstance(module, nn.Dropout):
        text += f" {module.p:g}"
    return text


def _tensors(values: Any) -> list[Tensor]:
    """The tensors among a call's arguments, looking one level into lists (``torch.cat``)."""
    flat = chain.from_iterable(v if isinstance(v, (list, tuple)) else [v] for v in values)
    return [v for v in flat if isinstance(v, Tensor)]


class _Stop(Exception):
    """Raised after the ``until`` layer, to end the forward pass there."""


class _Trace(TorchFunctionMode):
    """Builds the diagram during the forward pass: hooks add the boxes' nodes; torch functions
    called between boxes add the merges, and pass on where the other tensors came from."""

    def __init__(self, until: str | None) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        self.edges: list[tuple[int, int]] = []
        self.producer: dict[int, int] = {}  # id(tensor) -> index of the node that made it
        self.alive: list[Tensor] = []  # every tensor in `producer`, so that no id is reused
        self.inside = 0  # > 0 inside a box: its own functions are not drawn
        self.until = until

    def add(self, node: Node, inputs: list[Tensor], output: Tensor) -> None:
        index = len(self.nodes)
        self.nodes.append(node)
        sources = dict.fromkeys(self.producer[id(t)] for t in inputs if id(t) in self.producer)
        self.edges += [(source, index) for source in sources]
        self.producer[id(output)] = index
        self.alive.append(output)

    def enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.inside += 1

    def leave(self, name: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self.inside -= 1
        out = _tensors([output])[0]
        node = Node(name, type(module).__name__, _label(name, module), tuple(out.shape[1:]))
        self.add(node, _tensors(args), out)
        if name == self.until:
            raise _Stop

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        output = func(*args, **(kwargs or {}))
        inputs = _tensors(args)
        if self.inside or not isinstance(output, Tensor) or not inputs:
            return output
        sources = {self.producer[id(t)] for t in inputs if id(t) in self.producer}
        if func in _MERGES and len(sources) > 1:
            kind = _MERGES[func]
            self.add(Node(kind, kind, "+" if kind == "add" else "concat", tuple(output.shape[1:])), inputs, output)
        elif id(output) not in self.producer and sources:  # flatten, slicing, ...: the same data
            self.producer[id(output)] = self.producer.get(id(inputs[0]), min(sources))
            self.alive.append(output)
        return output


def diagram(
    model: nn.Module, input_size: int | Sequence[int], depth: int = 1, until: str | None = None
) -> Diagram:
    """Trace ``model`` on the meta device and return its `Diagram`.

    Args:
        model: a network or a block, on any device (its parameters are not used).
        input_size: (C, H, W), or an int n for an n x n image with the model's ``in_channels``.
        depth: how many levels of submodules to open: 1 draws the model's children (a block is
            one box), 2 also opens those. ``nn.Sequential`` containers are always opened.
        until: the name of the last layer to draw (``"maxpool"``: a ResNet's stem).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    boxes = _boxes(model, depth)
    if not boxes:
        raise ValueError(f"{type(model).__name__} has no layers to draw: give a network or a block")
    if until is not None and until not in boxes:
        raise ValueError(f"until={until!r} is not one of the layers drawn: {', '.join(boxes)}")
    x = torch.zeros(_input_shape(model, input_size), device="meta")
    tensors = chain(model.named_parameters(), model.named_buffers())
    meta = {name: torch.empty_like(t, device="meta") for name, t in tensors}
    trace = _Trace(until)
    trace.add(Node("input", "input", "input", tuple(x.shape[1:])), [], x)
    hooks = [m.register_forward_pre_hook(trace.enter) for m in boxes.values()]
    hooks += [m.register_forward_hook(functools.partial(trace.leave, name)) for name, m in boxes.items()]
    modes = {m: m.training for m in model.modules()}
    model.eval()  # BatchNorm with running statistics: a batch of one is fine
    try:
        with trace, torch.no_grad():
            functional_call(model, meta, (x,))
    except _Stop:
        pass
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training
    return Diagram(trace.nodes, trace.edges)


def _layout(d: Diagram) -> list[tuple[float, int]]:
    """(column, row) per node. Row: the longest path from the input. Column: a node continues
    its predecessor's; branches leaving one node fan out side by side around it; a merge sits
    in the middle of what it joins. (Enough for blocks whose branches do not branch again.)"""
    places: list[tuple[float, int]] = []
    for i in range(len(d.nodes)):  # the nodes are in call order: predecessors come first
        preds = d.predecessors(i)
        if not preds:
            places.append((0.0, 0))
            continue
        row = 1 + max(places[p][1] for p in preds)
        if len(preds) > 1:
            places.append((sum(places[p][0] for p in preds) / len(preds), row))
            continue
        (p,) = preds
        branches = [s for s in d.successors(p) if len(d.predecessors(s)) == 1]
        places.append((places[p][0] + branches.index(i) - (len(branches) - 1) / 2, row))
    return places


# Sizes in inches (one data unit is one inch); colours by kind of node, then by family of layer.
LANE, ROW, BOX_W, BOX_H, MERGE_W, TITLE, PAD = 2.6, 0.62, 2.35, 0.44, 1.0, 0.4, 0.3
KIND_COLORS = {"input": "#ffffff", "add": "#fff0a8", "concat": "#fff0a8"}
FAMILY_COLORS = {"Conv": "#cfe2ff", "Norm": "#d1f2d9", "Pool": "#e8dcff", "ReLU": "#ffe0c2", "Tanh": "#ffe0c2",
                 "Linear": "#e6e6e6"}  # fmt: skip


def _color(kind: str) -> str:
    if kind in KIND_COLORS:
        return KIND_COLORS[kind]
    return next((color for family, color in FAMILY_COLORS.items() if family in kind), "#f4f4f4")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _draw_one(ax: Axes, d: Diagram, places: list[tuple[float, int]], title: str | None, rows: int) -> None:
    left = min(x for x, _ in places)
    xy = [((x - left) * LANE + LANE / 2, -row * ROW - ROW / 2) for x, row in places]
    widths = [MERGE_W if n.kind in ("add", "concat") else BOX_W for n in d.nodes]
    for node, (x, y), w in zip(d.nodes, xy, widths):
        box = FancyBboxPatch((x - w / 2, y - BOX_H / 2), w, BOX_H, boxstyle="round,pad=0,rounding_size=0.06",
                             facecolor=_color(node.kind), edgecolor="#444444", linewidth=0.8)  # fmt: skip
        ax.add_patch(box)
        ax.text(x, y, f"{node.label}\n{_shape_text(node.shape)}", ha="center", va="center", fontsize=8)
    arrow = dict(arrowstyle="-|>", color="#444444", linewidth=0.8, shrinkA=0, shrinkB=0)
    line = dict(color="#444444", linewidth=0.8)
    gap = (ROW - BOX_H) / 2  # between two rows of boxes
    for a, b in d.edges:
        (xa, ya), (xb, yb) = xy[a], xy[b]
        if abs(xa - xb) < 1e-9 and places[b][1] - places[a][1] > 1:  # skips boxes in its column: go round them
            side = xa + max(widths[a], widths[b]) / 2
            ax.plot([side, side + PAD, side + PAD], [ya, ya, yb], **line)
            ax.annotate("", (xb + widths[b] / 2, yb), (side + PAD, yb), arrowprops=arrow)
        else:  # down its own column to just above the target's row, then into the target
            bend = yb + BOX_H / 2 + gap
            ax.plot([xa, xa], [ya - BOX_H / 2, bend], **line)
            ax.annotate("", (xb, yb + BOX_H / 2), (xa, bend), arrowprops=arrow)
    width = (max(x for x, _ in places) - left + 1) * LANE + PAD
    ax.set_xlim(0, width)
    ax.set_ylim(-rows * ROW, TITLE)
    ax.set_axis_off()
    if title:
        ax.text((width - PAD) / 2, TITLE / 2, title, ha="center", va="center", fontsize=10, fontweight="bold")


def draw(diagrams: Diagram | Mapping[str, Diagram]) -> Figure:
    """Draw one diagram, or several side by side under their titles: a box per node (name,
    kind, output shape), an arrow per edge. Returns a `Figure` (a PNG in a notebook)."""
    panels = {"": diagrams} if isinstance(diagrams, Diagram) else dict(diagrams)
    if not panels:
        raise ValueError("nothing to draw: got no diagrams")
    layouts = [_layout(d) for d in panels.values()]
    widths = [(max(x for x, _ in p) - min(x for x, _ in p) + 1) * LANE + PAD for p in layouts]
    rows = max(max(row for _, row in p) + 1 for p in layouts)
    width, height = sum(widths), rows * ROW + TITLE
    fig = Figure(figsize=(width, height), dpi=100)
    left = 0.0
    for (title, d), places, panel in zip(panels.items(), layouts, widths):
        _draw_one(fig.add_axes((left / width, 0, panel / width, 1)), d, places, title or None, rows)
        left += panel
    return fig
