"""Convolution arithmetic against torch's own shapes, the receptive field, and LRN."""

import itertools
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.models.layers import (
    LocalResponseNorm,
    conv_out_size,
    divides_exactly,
    effective_kernel,
    leftover,
    measured_receptive_field,
    out_size_formula,
    pool_out_size,
    receptive_field,
    sequential_out_size,
    windows,
)

GRID = list(itertools.product(range(1, 12), range(1, 6), range(1, 4), range(0, 3), range(1, 3)))


def torch_size(op, n: int) -> int | None:
    """Output size computed by torch on the meta device, None where torch refuses."""
    try:
        return op(torch.empty(1, 1, n, n, device="meta")).shape[-1]
    except RuntimeError:
        return None


def ours(fn, *args, **kwargs) -> int | None:
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return None


def test_alexnet_first_layer_and_the_224_puzzle():
    assert conv_out_size(227, 11, 4) == 55
    assert conv_out_size(224, 11, 4) == 54
    assert divides_exactly(227, 11, 4) and not divides_exactly(224, 11, 4)
    assert conv_out_size(224, 11, 4, padding=2) == 55  # torchvision pads by 2 instead


def test_conv_out_size_matches_torch_on_a_grid():
    for n, k, s, p, d in GRID:
        weight = torch.empty(1, 1, k, k, device="meta")
        conv = lambda x: F.conv2d(x, weight, stride=s, padding=p, dilation=d)  # noqa: E731
        assert ours(conv_out_size, n, k, s, p, d) == torch_size(conv, n), (n, k, s, p, d)


def test_effective_kernel_and_leftover_match_the_taps_torch_reads():
    """A conv of ones over a padded row: the gradient is zero exactly where no tap reads."""
    for n, k, s, p, d in GRID:
        if ours(conv_out_size, n, k, s, p, d) is None:
            continue
        row = torch.zeros(1, 1, n + 2 * p, requires_grad=True)
        F.conv1d(row, torch.ones(1, 1, k), stride=s, dilation=d).sum().backward()
        read = row.grad[0, 0].nonzero().flatten()
        assert leftover(n, k, s, p, d) == n + 2 * p - 1 - read.max().item(), (n, k, s, p, d)
        first_window = F.conv1d(torch.zeros(1, 1, n + 2 * p), torch.ones(1, 1, k), dilation=d)
        assert effective_kernel(k, d) == n + 2 * p - first_window.shape[-1] + 1, (n, k, d)
        assert divides_exactly(n, k, s, p, d) == (leftover(n, k, s, p, d) == 0)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_out_size_matches_torch_on_a_grid(ceil_mode):
    for n, k, s, p, d in GRID:
        pool = nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=ceil_mode)
        assert ours(pool_out_size, n, k, s, p, d, ceil_mode) == torch_size(pool, n), (n, k, s, p, d)


def test_pool_stride_defaults_to_kernel():
    assert pool_out_size(28, 2) == 14
    assert pool_out_size(7, 2, ceil_mode=True) == 4 and pool_out_size(7, 2) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        ((5, 7), "kernel 7 is larger than the padded input 5 + 2*0 = 5"),
        ((5, 3, 1, 0, 3), "kernel 3 (dilated to 7) is larger"),
        ((28, 3, 0), "stride must be at least 1, got 0"),
        ((28, 3, 1, -1), "padding must be at least 0, got -1"),
        ((0, 3), "input size must be at least 1"),
        ((28, 3.0), "kernel must be an integer"),
    ],
)
def test_impossible_conv_arguments_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        conv_out_size(*args)


def test_pool_padding_larger_than_half_the_window_is_refused():
    with pytest.raises(ValueError, match="padding 2 is more than half the pooling kernel 3"):
        pool_out_size(28, 3, 2, padding=2)


def test_formula_text():
    assert out_size_formula(227, 11, 4) == "(227 - 11 + 2*0) / 4 + 1 = 55"
    assert out_size_formula(224, 11, 4) == "floor((224 - 11 + 2*0) / 4) + 1 = 54"
    assert out_size_formula(28, 3, 1, 1) == "(28 - 3 + 2*1) / 1 + 1 = 28"
    assert out_size_formula(32, 3, 1, 0, dilation=2) == "(32 - 2*(3 - 1) - 1 + 2*0) / 1 + 1 = 28"
    assert out_size_formula(112, 3, 2, ceil_mode=True, pool=True) == "ceil((112 - 3 + 2*0) / 2) + 1 = 56"
    assert out_size_formula(7, 2, 2, ceil_mode=True, pool=True) == "ceil((7 - 2 + 2*0) / 2) + 1 = 4"
    assert out_size_formula(6, 2, pool=True) == "(6 - 2 + 2*0) / 2 + 1 = 3"  # pooling's stride defaults to its kernel
    # the last window would start in the padding: torch drops it
    assert pool_out_size(5, 3, 3, 1, ceil_mode=True) == 2
    text = out_size_formula(5, 3, 3, 1, ceil_mode=True, pool=True)
    assert text == "ceil((5 - 3 + 2*1) / 3) + 1 - 1 = 2 (a last window may not start in the padding)"


def test_windows_and_sequential_out_size():
    conv = nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 0), dilation=(2, 1))
    height, width = windows(conv)
    assert (height.kernel, height.stride, height.padding, height.dilation) == (3, 1, 1, 2)
    assert (width.kernel, width.stride, width.padding, width.dilation) == (5, 2, 0, 1)
    assert windows(nn.ReLU()) is None
    assert windows(nn.Conv2d(3, 8, 3, padding="same")) is None
    stack = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5), nn.MaxPool2d(2))
    assert sequential_out_size(stack, 28) == 4 == stack(torch.zeros(1, 1, 28, 28)).shape[-1]


def test_receptive_field():
    assert receptive_field([(3, 1)] * 2) == 5  # two 3x3 see what one 5x5 sees
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([(3, 1, 2)]) == 5
    assert receptive_field([(2, 2), (3, 1)]) == 6
    alexnet = [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)]
    assert receptive_field(alexnet) == 195
    modules = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))
    assert receptive_field(modules) == receptive_field([(3, 1), (2, 2), (3, 1)]) == 8


@pytest.mark.parametrize("stack", [
    [(3, 1)] * 3,
    [(3, 1, 2), (3, 2, 3)],
    [(2, 2), (3, 1)],
    [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)],
    nn.Sequential(nn.Conv2d(1, 1, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.Conv2d(1, 1, 3, 1, 1)),
], ids=["3x3-3x3-3x3", "dilated", "pool-conv", "alexnet", "resnet-stem"])
def test_measured_receptive_field_agrees_with_the_formula(stack):
    assert measured_receptive_field(stack) == receptive_field(stack)


def test_measured_receptive_field_needs_a_large_enough_input():
    with pytest.raises(ValueError, match="use a larger n"):
        measured_receptive_field([(3, 1)] * 5, n=11)  # sees all 11 inputs, maybe more


def paper_lrn(a: torch.Tensor, n=5, alpha=1e-4, beta=0.75, k=2.0) -> torch.Tensor:
    """The paper's sum, written out channel by channel."""
    channels = a.shape[1]
    b = torch.empty_like(a)
    for i in range(channels):
        window = a[:, max(0, i - n // 2) : min(channels - 1, i + n // 2) + 1]
        b[:, i] = a[:, i] / (k + alpha * window.pow(2).sum(1)).pow(beta)
    return b


def test_lrn_is_the_papers_formula():
    a = torch.randn(2, 7, 3, 3, dtype=torch.float64) * 30
    assert torch.allclose(LocalResponseNorm()(a), paper_lrn(a), rtol=0, atol=1e-12)


def test_lrn_equals_torch_once_alpha_is_reconciled():
    torch.manual_seed(0)
    a = torch.randn(2, 16, 6, 6, dtype=torch.float64) * 20  # large enough for the normalisation to matter
    ours_out = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a)
    reconciled = nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)(a)
    assert (ours_out - reconciled).abs().max() <= 1e-6
    naive = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a)  # same numbers, torch's convention
    assert (ours_out - naive).abs().max() > 1e-2
    # in float32 the two agree to float32 rounding (relative 1e-6)
    a32 = a.float()
    ours32, torch32 = LocalResponseNorm()(a32), LocalResponseNorm().to_torch()(a32)
    assert ((ours32 - torch32).abs() / torch32.abs().clamp_min(1)).max() <= 1e-6


def test_lrn_even_size_follows_torch_and_rejects_bad_input():
    a = torch.randn(1, 6, 2, 2) * 10
    assert torch.allclose(LocalResponseNorm(4)(a), LocalResponseNorm(4).to_torch()(a), atol=1e-6)
    with pytest.raises(ValueError, match="expected input"):
        LocalResponseNorm()(torch.zeros(4, 4))
