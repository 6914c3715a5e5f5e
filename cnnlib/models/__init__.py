"""The course's models by name: ``get_model("resnet50", num_classes=10, in_channels=1)``.

- ``alexnet``: ``AlexNet``; layout="paper" | "torchvision" | "d2l" | "small", lrn, overlap,
  dropout, groups, activation="relu" | "tanh", input_size.
- ``googlenet``: torchvision's ``GoogLeNet`` without auxiliary heads; dropout, kernel_5x5.
- ``small_inception``: ``SmallInception`` for 28x28 digits.
- ``resnet18`` ... ``resnet152``: torchvision's ``ResNet``; stem_type="deep", stem_width,
  avg_down, stride_on="3x3" | "1x1",
  shortcut="projection" | "zero_pad" | "projection_all" | "none",
  small_input, zero_init_residual, widths.
- ``resnet18d`` ... ``resnet152d``: ResNet-D (stem_type="deep", avg_down=True), same arguments.
- ``small_resnet``: the small ResNets for 28x28 digits (3x3 stem, no max-pool, basic blocks);
  blocks (per stage, default 1, 1, 1, 1), widths (default 16, 32, 64, 128), shortcut,
  stem_type, avg_down (ResNet-C/D), norm_layer, zero_init_residual.
- ``residual_net`` / ``plain_net``: the paper's CIFAR network of depth=6n+2 (default 20) and
  width (default 16), with option-A shortcuts / without shortcuts: the twins of the degradation
  experiment; the ``small_resnet`` arguments.

``num_classes`` and ``in_channels`` left as None keep the model's defaults: 1000 classes and
3 channels for the ImageNet networks, 10 classes and 1 channel for the 28x28 ones (AlexNet:
its layout's).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import Tensor, nn

from cnnlib.models.alexnet import AlexNet
from cnnlib.models.inception import GoogLeNet, Inception, SmallInception
from cnnlib.models.registry import lookup
from cnnlib.models.resnet import BasicBlock, Bottleneck, ResNet, cifar_resnet, resnet, small_resnet

__all__ = [
    "get_model",
    "list_models",
    "compare_with_reference",
    "AlexNet",
    "GoogLeNet",
    "Inception",
    "SmallInception",
    "ResNet",
    "BasicBlock",
    "Bottleneck",
]

_MODELS: dict[str, Callable[..., nn.Module]] = {
    "alexnet": AlexNet,
    "googlenet": GoogLeNet,
    "small_inception": SmallInception,
    **{f"resnet{depth}": partial(resnet, depth) for depth in (18, 34, 50, 101, 152)},
    **{
        f"resnet{depth}d": partial(resnet, depth, stem_type="deep", avg_down=True)
        for depth in (18, 34, 50, 101, 152)
    },
    "residual_net": cifar_resnet,
    "plain_net": partial(cifar_resnet, shortcut="none"),
    "small_resnet": small_resnet,
}


def list_models() -> list[str]:
    """The names ``get_model`` knows, sorted."""
    return sorted(_MODELS)


def get_model(
    name: str, num_classes: int | None = None, in_channels: int | None = None, **variant: Any
) -> nn.Module:
    """Build a model by name; ``variant`` holds the model's own keyword arguments."""
    build = lookup(_MODELS, name, "model")
    sizes = {"num_classes": num_classes, "in_channels": in_channels}
    return build(**{k: v for k, v in sizes.items() if v is not None}, **variant)


def compare_with_reference(
    model: nn.Module, reference: nn.Module, x: Tensor, randomize_norm: bool = True, seed: int = 0
) -> float:
    """Load ``reference``'s state_dict into ``model`` (strict) and return the largest absolute
    difference between their eval-mode outputs on ``x``.

    With ``randomize_norm`` the reference's BatchNorm statistics and affine parameters are first
    drawn at random (seeded): freshly initialised ones are all equal (mean 0, variance 1, weight
    1, bias 0), which would hide a BatchNorm used in the wrong place. A model built on the meta
    device receives the reference's tensors (``assign=True``).
    """
    if randomize_norm:
        generator = torch.Generator().manual_seed(seed)
        ranges = {
            "running_mean": (-0.5, 0.5), "running_var": (0.5, 2.0), "weight": (0.5, 1.5), "bias": (-0.5, 0.5),
        }  # fmt: skip
        with torch.no_grad():
            for m in reference.modules():
                if isinstance(m, nn.BatchNorm2d):
                    for name, (low, high) in ranges.items():
                        tensor = getattr(m, name)
                        tensor.copy_(torch.empty(tensor.shape).uniform_(low, high, generator=generator))
    assign = any(p.is_meta for p in model.parameters())
    model.load_state_dict(reference.state_dict(), strict=True, assign=assign)
    model.eval()
    reference.eval()
    with torch.no_grad():
        return (model(x) - reference(x)).abs().max().item()
