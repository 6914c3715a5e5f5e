"""Residual code as it circulates, with the mistakes left in: the material of lesson 04's
"spot the bug". Each block has the constructor of a correct block of the same kind, so that
it can be compared with ``cnnlib.models.BasicBlock`` on the same input (blocks 1 to 3 have no
shortcut for a change of shape: use them with ``inplanes == planes`` and stride 1, as identity
blocks); the class docstrings do not give the answer away. The answers:

1. ``BuggyBlock1``: the second convolution reads the block's input ``x`` instead of the first
   convolution's output, so ``conv1`` and ``bn1`` never receive a gradient.
2. ``BuggyBlock2``: a ReLU on the residual branch before the addition, so the branch can only
   add (``block(x) >= x``), never subtract.
3. ``BuggyBlock3``: one BatchNorm module normalises both convolutions: its affine parameters are
   shared and its running statistics mix two layers (updated twice per training step).
4. ``BuggyBlock4``: a 1x1 projection on the shortcut even where the shapes already match: the
   paper's option C, extra parameters and no identity path.
5. ``buggy_resnet101``: the stages' filter counts divided by 16 (the 7x7 stem keeps its 64):
   over a hundred times fewer parameters than ResNet-101, under the same name.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from cnnlib.models.resnet import Bottleneck, ResNet, conv1x1, conv3x3

__all__ = ["BuggyBlock1", "BuggyBlock2", "BuggyBlock3", "BuggyBlock4", "buggy_resnet101"]


class BuggyBlock1(nn.Module):
    """A basic block (spot the bug 1)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(x))
        return F.relu(out + x)


class BuggyBlock2(nn.Module):
    """A basic block (spot the bug 2)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(out + x)


class BuggyBlock3(nn.Module):
    """A basic block (spot the bug 3)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.conv2 = conv3x3(planes, planes)
        self.bn = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.conv1(x)))
        out = self.bn(self.conv2(out))
        return F.relu(out + x)


class BuggyBlock4(nn.Module):
    """A basic block (spot the bug 4)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def buggy_resnet101(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """A "ResNet-101" (spot the bug 5)."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes, in_channels, widths=(4, 8, 16, 32), stem_width=64)
