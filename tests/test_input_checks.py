"""The input diagnosis: the smallest input found by forward passes on the meta device is the one a real forward pass accepts."""

import pytest
import torch
from torch import nn

from cnnlib.models.input_checks import check_input_batch, checked_forward, input_size_problem, smallest_input_size


class Stack(nn.Module):
    """Two convolutions and a pool; with ``fixed=True`` a Linear that needs a 2x2 feature map."""

    in_channels = 1

    def __init__(self, fixed: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 5), nn.BatchNorm2d(2), nn.MaxPool2d(3, 2), nn.Conv2d(2, 2, 3))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 2 * 2, 3)) if fixed else nn.Flatten()

    @checked_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def passes(model: nn.Module, n: int) -> bool:
    """The reference: a real forward pass on an n x n batch."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, 1, n, n))
        return True
    except (RuntimeError, ValueError):
        return False


@pytest.mark.parametrize("fixed", [False, True])
def test_smallest_input_size_is_the_first_size_that_passes(fixed):
    model = Stack(fixed)
    working = [n for n in range(1, 40) if passes(model, n)]
    assert smallest_input_size(model) == working[0]
    if fixed:  # a fixed classifier takes a range of sizes only
        assert working == list(range(working[0], working[-1] + 1)) and working[-1] < 39
        sizes = f"from {working[0]}x{working[0]} to {working[-1]}x{working[-1]} work"
        assert sizes in input_size_problem(model, 40, 40)


def test_problems_name_the_layer_and_leave_the_model_as_it_was():
    model = Stack().train()
    problem = input_size_problem(model, 6, 6)
    assert "too small for Stack" in problem and "'features.2'" in problem and "11x11" in problem  # 6 -> 2 -> pool 3
    assert input_size_problem(model, 11, 11) is None and model.training
    assert input_size_problem(Stack().double(), 6, 6) == problem  # meta-device passes in the model's own dtype
    with pytest.raises(ValueError, match="too small for Stack"):
        model(torch.zeros(2, 1, 6, 6))


def test_batches_of_the_wrong_rank_or_channels():
    with pytest.raises(ValueError, match=r"expects a batch of images \[N, C, H, W\], got \(1, 11, 11\).*unsqueeze"):
        check_input_batch(Stack(), torch.zeros(1, 11, 11))
    with pytest.raises(ValueError, match="expected 1 input channel, got 3 .* in_channels=3"):
        Stack()(torch.zeros(2, 3, 11, 11))
