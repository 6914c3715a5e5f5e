"""The Inception block and GoogLeNet (Szegedy et al., "Going deeper with convolutions", 2014).

An Inception block runs four branches side by side on the same input and concatenates their
channels: a 1x1 convolution; a 1x1 "reduction" then a 3x3; a 1x1 reduction then a 5x5; a
3x3 max-pool (stride 1) then a 1x1 "pool projection". The 1x1 reductions are what makes the
block cheap (section 4 of the paper). Every convolution is followed by BatchNorm and ReLU,
as in torchvision (the 2014 network had no BatchNorm).

``GoogLeNet`` follows torchvision's layout so that torchvision's ``googlenet`` state_dict (built
with ``aux_logits=False``) loads strictly: that includes torchvision's 3x3 kernel in the "5x5"
branch (pytorch/vision issue 906); ``kernel_5x5=5`` gives the paper's kernel instead. The
auxiliary classifiers are left out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlib.models.input_checks import checked_forward

__all__ = ["BasicConv2d", "Inception", "GoogLeNet", "SmallInception"]


class BasicConv2d(nn.Module):
    """Convolution (no bias), BatchNorm (eps 0.001, as torchvision), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_args: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_args)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches, concatenated: ch1x1 + ch3x3 + ch5x5 + pool_proj channels out."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel_5x5: int = 5,
    ) -> None:
        super().__init__()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=kernel_5x5, padding=kernel_5x5 // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([branch(x) for branch in branches], dim=1)


class GoogLeNet(nn.Module):
    """GoogLeNet v1 (paper, table 1) in torchvision's layout, without the auxiliary heads.

    ``kernel_5x5=3`` reproduces torchvision (6,624,904 parameters for 1000 classes); the
    initialisation is torchvision's (truncated normal, std 0.01).
    """

    def __init__(
        self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2, kernel_5x5: int = 3
    ) -> None:
        super().__init__()
        self.in_channels = in_channels

        def block(*channels: int) -> Inception:
            return Inception(*channels, kernel_5x5=kernel_5x5)

        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = block(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = block(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = block(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = block(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = block(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = block(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = block(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = block(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = block(832, 384, 192, 384, 48, 128, 128)

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @checked_forward
    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool1(self.conv1(x))  # N x 64 x 56 x 56 (for 224 x 224)
        x = self.maxpool2(self.conv3(self.conv2(x)))  # N x 192 x 28 x 28
        x = self.inception3b(self.inception3a(x))  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5b(self.inception5a(x))  # N x 1024 x 7 x 7
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


class SmallInception(nn.Module):
    """A two-block Inception network for 28x28 digits.

    5x5 conv (10) -> 2x2 max-pool -> Inception (16, 24, 24, 24: 88 channels) -> 5x5 conv (20)
    -> 2x2 max-pool -> Inception (88) -> global average pool -> linear. 28 -> 24 -> 12 -> 8 -> 4.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = BasicConv2d(in_channels, 10, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.inception1 = Inception(10, 16, 16, 24, 16, 24, 24)
        self.conv2 = BasicConv2d(self.inception1.out_channels, 20, kernel_size=5)
        self.pool2 = nn.MaxPool2d(2)
        self.inception2 = Inception(20, 16, 16, 24, 16, 24, 24)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inception2.out_channels, num_classes)

    @checked_forward
    def forward(self, x: Tensor) -> Tensor:
        x = self.inception1(self.pool1(self.conv1(x)))
        x = self.inception2(self.pool2(self.conv2(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))
