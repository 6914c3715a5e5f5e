"""Gradient flow: how large the gradient of each layer's weights is after one backward pass.

The degradation experiment of lesson 04 compares these norms, layer by layer, for a deep plain
network and its residual twin at initialisation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

__all__ = ["layer_grad_norms"]

WEIGHTED = (nn.Conv2d, nn.Linear)


def layer_grad_norms(model: nn.Module, x: Tensor, loss_fn: Callable[[Tensor], Tensor]) -> dict[str, float]:
    """Run ``loss_fn(model(x))`` forward and backward once; return the L2 norm of the weight
    gradient of every Conv2d and Linear layer, by name, in the order the forward pass first
    calls them (layer 1: nearest the input), then any layer it never calls.

    A weight that receives no gradient (its layer's output is not used) counts 0.0. The model
    keeps its mode (train mode: BatchNorm uses the batch's statistics, as in training); its
    previous gradients are cleared and the new ones are left in ``.grad``.
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, WEIGHTED)}
    order: list[str] = []

    def record(name: str, module: nn.Module, args: Any, output: Any) -> None:
        if name not in order:
            order.append(name)

    hooks = [m.register_forward_hook(functools.partial(record, name)) for name, m in layers.items()]
    model.zero_grad(set_to_none=True)
    try:
        loss_fn(model(x)).backward()
    finally:
        for hook in hooks:
            hook.remove()
    order += [name for name in layers if name not in order]
    grads = {name: layers[name].weight.grad for name in order}
    return {name: 0.0 if g is None else g.norm().item() for name, g in grads.items()}
