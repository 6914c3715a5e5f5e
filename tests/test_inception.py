"""The Inception block, GoogLeNet against torchvision, and the small Inception network."""

import warnings

import pytest
import torch
import torchvision
from torch import nn

from cnnlib.models.input_checks import smallest_input_size
from cnnlib.models import compare_with_reference
from cnnlib.models.inception import GoogLeNet, Inception, SmallInception


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_block_concatenates_its_four_branches():
    block = Inception(192, 64, 96, 128, 16, 32, 32).eval()  # GoogLeNet's 3a
    out = block(torch.randn(2, 192, 28, 28))
    assert out.shape == (2, 64 + 128 + 32 + 32, 28, 28) and block.out_channels == 256
    parts = [block.branch1(torch.zeros(1, 192, 5, 5)).shape[1]] + [
        branch(torch.zeros(1, 192, 5, 5)).shape[1] for branch in (block.branch2, block.branch3, block.branch4)
    ]
    assert parts == [64, 128, 32, 32]
    assert block.branch3[1].conv.kernel_size == (5, 5) and block.branch3[1].conv.padding == (2, 2)
    assert Inception(192, 64, 96, 128, 16, 32, 32, kernel_5x5=3).branch3[1].conv.kernel_size == (3, 3)
    assert isinstance(block.branch4[0], nn.MaxPool2d) and block.branch4[0].stride == 1


def test_one_by_one_reductions_save_parameters():
    reduced = Inception(192, 64, 96, 128, 16, 32, 32)
    direct_3x3 = 192 * 128 * 9
    assert count(reduced.branch2) < 0.6 * direct_3x3  # 1x1 to 96, then 3x3 to 128


def test_googlenet_equals_torchvision():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torchvision.models.googlenet(aux_logits=False, init_weights=True)
    with torch.device("meta"):
        model = GoogLeNet()
    assert count(model) == count(reference) == 6_624_904
    x = torch.randn(2, 3, 96, 96)
    difference = compare_with_reference(model, reference, x)
    assert difference <= 1e-5
    assert model(x).abs().max() > 1e-2  # the comparison is not between two near-zero outputs


def test_googlenet_variants_and_sizes():
    with torch.device("meta"):
        assert count(GoogLeNet(kernel_5x5=5)) == 6_624_904 + 380_928  # the paper's 5x5 kernels
        assert GoogLeNet(num_classes=10, in_channels=1).fc.out_features == 10
    model = GoogLeNet(num_classes=10, in_channels=1).eval()
    assert model(torch.zeros(2, 1, 96, 96)).shape == (2, 10)  # d2l's Fashion-MNIST size
    assert smallest_input_size(model) == 15  # torchvision's meta "min_size"


def test_small_inception_for_mnist():
    model = SmallInception()
    assert model.inception1.out_channels == model.inception2.out_channels == 16 + 24 + 24 + 24 == 88
    assert count(model) == 73_952
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    with pytest.raises(ValueError, match="expected 1 input channel, got 3"):
        model(torch.zeros(1, 3, 28, 28))
    with pytest.raises(ValueError, match="too small for SmallInception.*'conv2.conv'.*16x16"):
        model(torch.zeros(1, 1, 12, 12))
