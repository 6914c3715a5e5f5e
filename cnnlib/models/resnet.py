"""Residual networks (He et al., "Deep residual learning for image recognition", 2015) and the
"Bag of Tricks" variants (He et al., 2018, section 4) from one builder.

- ``resnet(depth)`` for depth 18/34/50/101/152 is torchvision's network: its state_dict loads.
- ResNet-B, stride on the 3x3 of the bottleneck, is the default (torchvision's "V1.5");
  ``stride_on="1x1"`` is the 2015 paper's placement (ResNet-A): same parameters, other outputs.
- ResNet-C: ``stem_type="deep"``, three 3x3 convolutions 32-32-64 instead of the 7x7.
- ResNet-D: ResNet-C plus ``avg_down=True``, a 2x2 average pool before the 1x1 projection,
  so that the shortcut no longer skips three quarters of its input.
- Shortcuts (paper, section 3.3): ``shortcut="projection"`` is option B, a 1x1 projection only
  where the shape changes (torchvision's); ``"zero_pad"`` is option A (strided identity, zero
  channels appended); ``"projection_all"`` is option C (a projection on every block);
  ``"none"`` is the plain twin (no additions), for the degradation experiment.
- ``small_input=True``: a 3x3 stride-1 stem without max-pool, for 28x28 or 32x32 images;
  ``cifar_resnet(depth)`` is the paper's 6n+2-layer network of section 4.2.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlib.models.input_checks import checked_forward

__all__ = [
    "conv3x3",
    "conv1x1",
    "BasicBlock",
    "Bottleneck",
    "ZeroPadShortcut",
    "needs_projection",
    "downsample_conv",
    "downsample_avg",
    "ResNet",
    "DEPTHS",
    "resnet",
    "cifar_resnet",
    "small_resnet",
]

STRIDE_PLACES = ("3x3", "1x1")
SHORTCUTS = ("projection", "zero_pad", "projection_all", "none")
STEM_TYPES = ("default", "deep")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (paper, figure 5 left): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        stride_on: str = "3x3",
    ) -> None:
        super().__init__()
        if stride_on != "3x3":
            raise ValueError("BasicBlock has no 1x1 convolution: stride_on='1x1' applies to Bottleneck")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)  # the ReLU comes after the addition


class Bottleneck(nn.Module):
    """1x1 (reduce to ``planes``), 3x3, 1x1 (expand to 4 * planes) (paper, figure 5 right).

    torchvision puts the stride on the 3x3 ("ResNet V1.5", Bag of Tricks' ResNet-B): the
    default here. The 2015 paper strides the first 1x1 (``stride_on="1x1"``), which skips
    three quarters of the input of the block's main path.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        stride_on: str = "3x3",
    ) -> None:
        super().__init__()
        if stride_on not in STRIDE_PLACES:
            raise ValueError(f"stride_on must be one of {STRIDE_PLACES}, got {stride_on!r}")
        self.conv1 = conv1x1(inplanes, planes, stride if stride_on == "1x1" else 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride if stride_on == "3x3" else 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


def needs_projection(in_planes: int, out_planes: int, stride: int) -> bool:
    """Whether a block's output shape differs from its input's, so that the identity cannot be
    its shortcut: option B puts a 1x1 projection exactly there (option A pads with zeros)."""
    return stride != 1 or in_planes != out_planes


class ZeroPadShortcut(nn.Module):
    """Option A of the paper (section 3.3): keep every stride-th pixel, append zero channels."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"a zero-padding shortcut cannot reduce channels ({in_planes} -> {out_planes})")
        self.extra, self.stride = out_planes - in_planes, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


def downsample_conv(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Projection shortcut (option B): strided 1x1 convolution and BatchNorm."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


def downsample_avg(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """ResNet-D projection: 2x2 average pool (stride 2), then a stride-1 1x1 convolution and BatchNorm."""
    pool = (
        nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride != 1 else nn.Identity()
    )
    return nn.Sequential(pool, conv1x1(in_planes, out_planes), nn.BatchNorm2d(out_planes))


class ResNet(nn.Module):
    """Stem, stages ``layer1..layerN`` (the first at stride 1, the others halving the size),
    global average pool, linear classifier.

    ``stem_width`` is the stem's output width (default 64); for the deep stem it is the width
    of its first two convolutions and the stem outputs twice as many (default 32, so 32-32-64,
    as timm's resnet50d).
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_type: str = "default",
        stem_width: int | None = None,
        small_input: bool = False,
        avg_down: bool = False,
        stride_on: str = "3x3",
        shortcut: str = "projection",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(widths) != len(layers):
            raise ValueError(f"one width per stage: {len(layers)} stages but widths={tuple(widths)}")
        if stem_type not in STEM_TYPES:
            raise ValueError(f"stem_type must be one of {STEM_TYPES}, got {stem_type!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if avg_down and shortcut not in ("projection", "projection_all"):
            raise ValueError(f"avg_down changes the projection shortcut: it does not apply to {shortcut=}")
        if zero_init_residual and shortcut == "none":
            raise ValueError("zero_init_residual on a plain network (shortcut='none') would block all signal")
        self.in_channels = in_channels
        self.block, self.stride_on, self.shortcut, self.avg_down = block, stride_on, shortcut, avg_down

        stem_stride = 1 if small_input else 2
        if stem_type == "deep":
            stem_width = stem_width or 32
            self.inplanes = 2 * stem_width
            self.conv1: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, stem_width, 3, stride=stem_stride, padding=1, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                conv3x3(stem_width, stem_width),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                conv3x3(stem_width, self.inplanes),
            )
        else:
            self.inplanes = stem_width or 64
            kernel = 3 if small_input else 7
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel, stride=stem_stride, padding=kernel // 2, bias=False
            )
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.stage_names = [f"layer{i + 1}" for i in range(len(layers))]
        for i, (name, width, blocks) in enumerate(zip(self.stage_names, widths, layers)):
            self.add_module(name, self._make_layer(width, blocks, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero the last BatchNorm of every residual branch, so that each block starts as the
        # identity: Goyal et al. 2017 ("Accurate, large minibatch SGD", section 5.1), the
        # "zero gamma" of Bag of Tricks (section 3.1).
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, block):
                    m.zero_init_last()

    def _make_shortcut(self, out_planes: int, stride: int) -> nn.Module | None:
        """None (identity) when the shapes match, except under option C; otherwise the chosen kind."""
        reshapes = needs_projection(self.inplanes, out_planes, stride)
        if self.shortcut == "none" or (not reshapes and self.shortcut != "projection_all"):
            return None
        if self.shortcut == "zero_pad":
            return ZeroPadShortcut(self.inplanes, out_planes, stride)
        make = downsample_avg if self.avg_down else downsample_conv
        return make(self.inplanes, out_planes, stride)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """One stage: the first block changes size and width, the others keep them."""
        residual, out_planes = self.shortcut != "none", planes * self.block.expansion
        layers = []
        for i in range(blocks):
            block_stride = stride if i == 0 else 1
            downsample = self._make_shortcut(out_planes, block_stride)
            layers.append(self.block(self.inplanes, planes, block_stride, downsample, residual, self.stride_on))
            self.inplanes = out_planes
        return nn.Sequential(*layers)

    @checked_forward
    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


DEPTHS: dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet(depth: int, num_classes: int = 1000, in_channels: int = 3, **variant) -> ResNet:
    """ResNet-18/34/50/101/152 (paper, table 1); ``variant``: the ``ResNet`` keyword arguments."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    block, layers = DEPTHS[depth]
    return ResNet(block, layers, num_classes, in_channels, **variant)


def cifar_resnet(
    depth: int = 20, num_classes: int = 10, in_channels: int = 1, shortcut: str = "zero_pad", **variant
) -> ResNet:
    """The paper's CIFAR network (section 4.2): a 3x3 stem of 16 channels, three stages of n
    basic blocks at 16, 32 and 64 channels, 6n + 2 layers; option A shortcuts, so that the
    plain twin (``shortcut="none"``) has exactly the same parameters.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock, (n, n, n), num_classes, in_channels,
        widths=(16, 32, 64), stem_width=16, small_input=True, shortcut=shortcut, **variant,
    )  # fmt: skip


def small_resnet(num_classes: int = 10, in_channels: int = 1, **variant) -> ResNet:
    """A d2l-like ResNet for 28x28 digits: four stages of one basic block, 16 to 128 channels,
    3x3 stem without max-pool (28 -> 28 -> 14 -> 7 -> 4)."""
    return ResNet(
        BasicBlock, (1, 1, 1, 1), num_classes, in_channels,
        widths=(16, 32, 64, 128), stem_width=16, small_input=True, **variant,
    )  # fmt: skip
