"""The circulating mistakes of lesson 04: each has the measurable effect the lesson shows."""

import torch
from torch import nn

from cnnlib.lessons.bugs import BuggyBlock1, BuggyBlock2, BuggyBlock3, BuggyBlock4, buggy_resnet101
from cnnlib.lessons.gradients import layer_grad_norms
from cnnlib.models import BasicBlock
from cnnlib.models.resnet import resnet


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_bug1_the_first_convolution_gets_no_gradient():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6)
    buggy = layer_grad_norms(BuggyBlock1(8, 8), x, lambda out: out.square().mean())
    right = layer_grad_norms(BasicBlock(8, 8), x, lambda out: out.square().mean())
    assert buggy["conv1"] == 0.0 and buggy["conv2"] > 0
    assert right["conv1"] > 0 and right["conv2"] > 0


def test_bug2_the_branch_can_only_add():
    torch.manual_seed(0)
    x = torch.rand(4, 8, 6, 6)  # non-negative, as the output of the previous block's ReLU
    with torch.no_grad():
        assert (BuggyBlock2(8, 8)(x) - x).min() >= 0
        assert (BasicBlock(8, 8)(x) - x).min() < 0


def test_bug3_one_batchnorm_updated_twice():
    buggy, right = BuggyBlock3(8, 8), BasicBlock(8, 8)
    assert count(right) - count(buggy) == 2 * 8
    buggy(torch.randn(4, 8, 6, 6))
    assert buggy.bn.num_batches_tracked.item() == 2


def test_bug4_projection_on_an_identity_shortcut():
    assert count(BuggyBlock4(64, 64)) - count(BasicBlock(64, 64)) == 64 * 64 + 2 * 64


def test_bug5_widths_divided_by_16():
    with torch.device("meta"):
        buggy, right = buggy_resnet101(), resnet(101)
    assert count(right) == 44_549_160 and count(right) / count(buggy) > 100
    assert buggy.fc.in_features * 16 == right.fc.in_features == 2048
    assert buggy.conv1.out_channels == right.conv1.out_channels == 64  # the stem is as the paper's
