"""AlexNet (Krizhevsky, Sutskever & Hinton, NeurIPS 2012) in four layouts, one class.

- ``"paper"``: 96-256-384-384-256 kernels, 11x11 stride 4 without padding on a 227x227 input,
  local response normalisation after the ReLUs of conv1 and conv2 (sec. 3.3), overlapping
  3x3 / stride 2 max-pooling (sec. 3.4), dropout 0.5 in the first two fully-connected layers
  (sec. 4.2), and the two-GPU split (sec. 3.2, figure 2) as ``groups=2`` on conv2, conv4 and
  conv5 (conv3 sees both halves). 60,965,224 parameters for 1000 classes.
  The paper says 224x224 inputs, but (224 - 11) / 4 + 1 = 54.25: only 227 gives the 55x55
  maps of its figure (``cnnlib.models.layers.divides_exactly``).
- ``"torchvision"``: torchvision's single-GPU variant (64-192-384-256-256, padding 2, an
  adaptive 6x6 average pool, dropout before the linear layers): its state_dict loads.
- ``"d2l"``: d2l's Fashion-MNIST version (1 channel, 224x224, 10 classes, padding 1).
- ``"small"``: the same stages for 28x28 images (5x5 stride-1 first layer, narrower), for
  training on a CPU.

``lrn``, ``overlap`` (3/2 pooling, else 2/2) and ``dropout`` switch the paper's three tricks
for ablations, and ``activation="tanh"`` replaces every ReLU for the paper's ReLU-vs-tanh
experiment (sec. 3.1); the classifier's input size follows from the conv arithmetic. Weights
start from He et al.'s (2015) normal initialisation (with the activation's gain), biases from
zero: without BatchNorm, PyTorch's default initialisation (which torchvision keeps) and the
paper's N(0, 0.01) with unit biases both make the first epochs crawl.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from cnnlib.models.input_checks import checked_forward
from cnnlib.models.layers import LocalResponseNorm, sequential_out_size
from cnnlib.models.registry import lookup

__all__ = ["AlexNet", "LAYOUTS", "ACTIVATIONS", "he_normal_init_"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}


def he_normal_init_(model: nn.Module, nonlinearity: Literal["relu", "tanh"]) -> nn.Module:
    """He et al.'s (2015) normal initialisation, in place, of every convolution and linear layer of
    ``model``: weights from N(0, gain^2 / fan_in) with the activation's gain (sqrt(2) for ReLU, 5/3 for
    tanh: ``nn.init.kaiming_normal_``), biases 0. Returns ``model``."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)
            nn.init.zeros_(m.bias)
    return model


@dataclass(frozen=True)
class Layout:
    """Everything that differs between the AlexNet layouts."""

    in_channels: int
    num_classes: int
    input_size: int
    channels: tuple[int, int, int, int, int]
    conv1: tuple[int, int, int]  # kernel, stride, padding
    hidden: int = 4096
    lrn: bool = False
    overlap: bool = True
    dropout: float = 0.5
    groups: int = 1
    dropout_before_linear: bool = False  # torchvision: Dropout, Linear, ReLU; else Linear, ReLU, Dropout
    adaptive_pool: bool = False  # torchvision: AdaptiveAvgPool2d(6) before the classifier


LAYOUTS: dict[str, Layout] = {
    "paper": Layout(3, 1000, 227, (96, 256, 384, 384, 256), (11, 4, 0), lrn=True, groups=2),
    "torchvision": Layout(
        3, 1000, 224, (64, 192, 384, 256, 256), (11, 4, 2), dropout_before_linear=True, adaptive_pool=True
    ),
    "d2l": Layout(1, 10, 224, (96, 256, 384, 384, 256), (11, 4, 1)),
    "small": Layout(1, 10, 28, (32, 64, 96, 96, 64), (5, 1, 2), hidden=512, lrn=True),
}


class AlexNet(nn.Module):
    """AlexNet; every argument left as None takes the layout's value (see ``LAYOUTS``).

    ``input_size`` is the image side that the classifier is sized for (the torchvision layout's
    adaptive pool takes any side from 63 up); ``groups=1`` undoes the two-GPU split;
    ``channels`` (the five convolutions' widths) and ``hidden`` (the fully-connected width) resize it;
    ``activation`` is "relu" (the paper's) or "tanh".
    """

    def __init__(
        self,
        layout: Literal["paper", "torchvision", "d2l", "small"] = "paper",
        *,
        num_classes: int | None = None,
        in_channels: int | None = None,
        input_size: int | None = None,
        lrn: bool | None = None,
        overlap: bool | None = None,
        dropout: float | None = None,
        groups: int | None = None,
        channels: tuple[int, int, int, int, int] | None = None,
        hidden: int | None = None,
        activation: Literal["relu", "tanh"] = "relu",
    ) -> None:
        super().__init__()
        base = lookup(LAYOUTS, layout, "AlexNet layout")
        act = lookup(ACTIVATIONS, activation, "activation")
        if isinstance(dropout, bool):
            dropout = 0.5 if dropout else 0.0
        overrides = dict(
            num_classes=num_classes, in_channels=in_channels, input_size=input_size,
            lrn=lrn, overlap=overlap, dropout=dropout, groups=groups,
            channels=None if channels is None else tuple(channels), hidden=hidden,
        )  # fmt: skip
        cfg = replace(base, **{k: v for k, v in overrides.items() if v is not None})
        self.layout, self.in_channels, self.input_size = layout, cfg.in_channels, cfg.input_size

        c1, c2, c3, c4, c5 = cfg.channels
        kernel, stride, padding = cfg.conv1

        def pool() -> nn.MaxPool2d:
            size = 3 if cfg.overlap else 2  # overlapping 3x3 windows every 2 pixels, or tiles of 2x2
            return nn.MaxPool2d(kernel_size=size, stride=2)

        def norm() -> list[nn.Module]:
            return [LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)] if cfg.lrn else []

        self.features = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c1, kernel_size=kernel, stride=stride, padding=padding),
            act(),
            *norm(),
            pool(),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=cfg.groups),
            act(),
            *norm(),
            pool(),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            act(),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=cfg.groups),
            act(),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=cfg.groups),
            act(),
            pool(),
        )
        if cfg.adaptive_pool:
            self.avgpool: nn.Module | None = nn.AdaptiveAvgPool2d((6, 6))
            side = 6
        else:
            self.avgpool = None
            try:
                side = sequential_out_size(self.features, cfg.input_size)
            except ValueError as error:
                raise ValueError(f"input_size={cfg.input_size} is too small for this AlexNet: {error}") from None

        def hidden(n_in: int) -> list[nn.Module]:
            layers = [nn.Linear(n_in, cfg.hidden), act()]
            dropout_layer = nn.Dropout(p=cfg.dropout)
            return [dropout_layer, *layers] if cfg.dropout_before_linear else [*layers, dropout_layer]

        self.classifier = nn.Sequential(
            *hidden(c5 * side * side),
            *hidden(cfg.hidden),
            nn.Linear(cfg.hidden, cfg.num_classes),
        )
        he_normal_init_(self, activation)

    @checked_forward
    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))
