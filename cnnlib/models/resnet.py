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
- ``norm_layer``: the normalisation after every convolution, ``nn.BatchNorm2d`` by default.
- ``small_input=True``: a 3x3 stride-1 stem without max-pool, for 28x28 or 32x32 images.
- ``small_resnet(blocks, widths, ...)`` builds every small network the course trains (the
  registry's, the speedrun's, the experiments'); ``cifar_resnet(depth)`` is its preset for the
  paper's 6n+2-layer network of section 4.2.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence, get_args

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

StridePlace = Literal["3x3", "1x1"]
Shortcut = Literal["projection", "zero_pad", "projection_all", "none"]
StemType = Literal["default", "deep"]
NormLayer = Callable[[int], nn.Module]  # channels -> module: nn.BatchNorm2d, partial(nn.GroupNorm, 8), ...
STRIDE_PLACES: tuple[str, ...] = get_args(StridePlace)
SHORTCUTS: tuple[str, ...] = get_args(Shortcut)
STEM_TYPES: tuple[str, ...] = get_args(StemType)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (paper, figure 5 left): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    Args:
        inplanes: input channels.
        planes: output channels.
        stride: the first convolution's stride.
        downsample: the shortcut where the shape changes (None: the identity).
        residual: False for the plain twin: no addition at all.
        stride_on: only "3x3" (the block has no 1x1 convolution).
        norm_layer: the normalisation after each convolution.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        stride_on: StridePlace = "3x3",
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride_on != "3x3":
            raise ValueError("BasicBlock has no 1x1 convolution: stride_on='1x1' applies to Bottleneck")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
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

    torchvision puts the stride on the 3x3 ("ResNet V1.5", Bag of Tricks' ResNet-B, section
    4.2): the default here. The 2015 paper strides the first 1x1 (``stride_on="1x1"``), which
    skips three quarters of the input of the block's main path.

    Args:
        inplanes: input channels.
        planes: the bottleneck's width; the block outputs ``4 * planes`` channels.
        stride: the stride of the convolution that ``stride_on`` names.
        downsample: the shortcut where the shape changes (None: the identity).
        residual: False for the plain twin: no addition at all.
        stride_on: "3x3" (ResNet-B, torchvision) or "1x1" (the 2015 paper, ResNet-A).
        norm_layer: the normalisation after each convolution.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        stride_on: StridePlace = "3x3",
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride_on not in STRIDE_PLACES:
            raise ValueError(f"stride_on must be one of {STRIDE_PLACES}, got {stride_on!r}")
        self.conv1 = conv1x1(inplanes, planes, stride if stride_on == "1x1" else 1)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride if stride_on == "3x3" else 1)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
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


def downsample_conv(
    in_planes: int, out_planes: int, stride: int, norm_layer: NormLayer = nn.BatchNorm2d
) -> nn.Sequential:
    """Projection shortcut (option B): strided 1x1 convolution and BatchNorm (``norm_layer``)."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), norm_layer(out_planes))


def downsample_avg(
    in_planes: int, out_planes: int, stride: int, norm_layer: NormLayer = nn.BatchNorm2d
) -> nn.Sequential:
    """ResNet-D projection (Bag of Tricks, section 4.2): 2x2 average pool (stride 2), then a
    stride-1 1x1 convolution and BatchNorm (``norm_layer``)."""
    pool = (
        nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride != 1 else nn.Identity()
    )
    return nn.Sequential(pool, conv1x1(in_planes, out_planes), norm_layer(out_planes))


class ResNet(nn.Module):
    """Stem, stages ``layer1..layerN`` (the first at stride 1, the others halving the size),
    global average pool, linear classifier.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage.
        num_classes: outputs of the classifier.
        in_channels: image channels.
        widths: each stage's ``planes`` (a bottleneck stage outputs four times as many channels).
        stem_type: "default", one convolution (7x7 stride 2, or 3x3 stride 1 for small inputs);
            "deep", three 3x3 convolutions (ResNet-C, Bag of Tricks section 4.2).
        stem_width: the stem's output width (default 64); for the deep stem the width of its
            first two convolutions, the stem then outputs twice as many (default 32, so 32-32-64,
            as timm's resnet50d).
        small_input: a 3x3 stride-1 stem without max-pool, for 28x28 or 32x32 images.
        avg_down: ResNet-D's projection shortcut, a 2x2 average pool before the 1x1 convolution.
        stride_on: where a bottleneck strides: "3x3" (ResNet-B) or "1x1" (the 2015 paper).
        shortcut: "projection" (option B of the paper's section 3.3), "zero_pad" (option A),
            "projection_all" (option C) or "none" (the plain twin).
        norm_layer: the normalisation after every convolution, called with the channel count.
        zero_init_residual: the last normalisation of every residual branch starts at zero.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_type: StemType = "default",
        stem_width: int | None = None,
        small_input: bool = False,
        avg_down: bool = False,
        stride_on: StridePlace = "3x3",
        shortcut: Shortcut = "projection",
        norm_layer: NormLayer = nn.BatchNorm2d,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if not layers or len(widths) != len(layers):
            raise ValueError(f"one width per stage, at least one stage: {tuple(layers)=}, {tuple(widths)=}")
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
        self.norm_layer = norm_layer

        stem_stride = 1 if small_input else 2
        if stem_type == "deep":
            stem_width = stem_width or 32
            self.inplanes = 2 * stem_width
            self.conv1: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, stem_width, 3, stride=stem_stride, padding=1, bias=False),
                norm_layer(stem_width),
                nn.ReLU(inplace=True),
                conv3x3(stem_width, stem_width),
                norm_layer(stem_width),
                nn.ReLU(inplace=True),
                conv3x3(stem_width, self.inplanes),
            )
        else:
            self.inplanes = stem_width or 64
            kernel = 3 if small_input else 7
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel, stride=stem_stride, padding=kernel // 2, bias=False
            )
        self.bn1 = norm_layer(self.inplanes)
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
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
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
        return make(self.inplanes, out_planes, stride, self.norm_layer)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """One stage: the first block changes size and width, the others keep them."""
        residual, out_planes = self.shortcut != "none", planes * self.block.expansion
        layers = []
        for i in range(blocks):
            block_stride = stride if i == 0 else 1
            downsample = self._make_shortcut(out_planes, block_stride)
            layers.append(self.block(
                self.inplanes, planes, block_stride, downsample, residual, self.stride_on, norm_layer=self.norm_layer
            ))  # fmt: skip
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


def small_resnet(
    blocks: Sequence[int] = (1, 1, 1, 1),
    widths: Sequence[int] = (16, 32, 64, 128),
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    shortcut: Shortcut = "projection",
    stem_type: StemType = "default",
    avg_down: bool = False,
    norm_layer: NormLayer = nn.BatchNorm2d,
    zero_init_residual: bool = False,
) -> ResNet:
    """The course's small ResNets, for 28x28 or 32x32 images: basic blocks, a 3x3 stride-1 stem
    of ``widths[0]`` channels without max-pool, one stage per entry of ``blocks``, each after the
    first halving the size (four stages: 28 -> 28 -> 14 -> 7 -> 4).

    The defaults are the d2l-like network for digits: four stages of one block, 16 to 128
    channels, 308,538 parameters. ``cifar_resnet`` is the paper's CIFAR network.

    Args:
        blocks: basic blocks per stage.
        widths: channels per stage, one per entry of ``blocks``.
        num_classes: outputs of the classifier.
        in_channels: image channels.
        shortcut: "projection" (option B of the paper's section 3.3), "zero_pad" (option A),
            "projection_all" (option C) or "none" (the plain twin).
        stem_type: "deep" for ResNet-C (Bag of Tricks, section 4.2): three 3x3 convolutions of
            widths[0] / 2, widths[0] / 2 and widths[0] channels.
        avg_down: ResNet-D's projection shortcut (with ``stem_type="deep"``: the ResNet-D of
            Bag of Tricks, section 4.2), a 2x2 average pool before the 1x1 convolution.
        norm_layer: the normalisation after every convolution, called with the channel count.
        zero_init_residual: the last normalisation of every residual branch starts at zero.
    """
    if not blocks or len(widths) != len(blocks):
        raise ValueError(f"one width per stage, at least one stage: {tuple(blocks)=}, {tuple(widths)=}")
    if stem_type == "deep" and widths[0] % 2:
        raise ValueError(f"the deep stem outputs twice its first convolutions' width: widths[0] must be even, "
                         f"got widths={tuple(widths)}")
    return ResNet(
        BasicBlock, blocks, num_classes, in_channels,
        widths=widths, stem_type=stem_type, stem_width=widths[0] // 2 if stem_type == "deep" else widths[0],
        small_input=True, avg_down=avg_down, shortcut=shortcut, norm_layer=norm_layer,
        zero_init_residual=zero_init_residual,
    )  # fmt: skip


def cifar_resnet(
    depth: int = 20,
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    width: int = 16,
    shortcut: Shortcut = "zero_pad",
    **variant,
) -> ResNet:
    """The paper's CIFAR network (He et al. 2015, section 4.2): ``small_resnet`` with three
    stages of n basic blocks at widths w, 2w, 4w, 6n + 2 weighted layers; option A shortcuts,
    so that the plain twin (``shortcut="none"``) has exactly the same parameters.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        num_classes: outputs of the classifier.
        in_channels: image channels.
        width: the first stage's width w (the paper's: 16).
        shortcut: "zero_pad" (option A) or "none" (the plain twin); see ``small_resnet``.
        **variant: the other keyword arguments of ``small_resnet``.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    widths = (width, 2 * width, 4 * width)
    return small_resnet((n, n, n), widths, num_classes, in_channels, shortcut=shortcut, **variant)
