"""layer_grad_norms: per-layer weight-gradient norms in forward order."""

import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.lessons.gradients import layer_grad_norms


def test_norms_follow_the_forward_order_and_match_autograd():
    torch.manual_seed(0)

    class Reordered(nn.Module):  # registered b, a; called a, b; c never called
        def __init__(self):
            super().__init__()
            self.b, self.a, self.c = nn.Linear(4, 3), nn.Linear(5, 4), nn.Linear(3, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    model = Reordered()
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    norms = layer_grad_norms(model, x, lambda out: F.cross_entropy(out, y))
    assert list(norms) == ["a", "b", "c"] and norms["c"] == 0.0
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert norms["a"] == model.a.weight.grad.norm().item()
    assert norms["b"] == model.b.weight.grad.norm().item()


def test_previous_gradients_are_cleared_and_hooks_removed():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(2, 1, 5, 5)
    first = layer_grad_norms(model, x, lambda out: out.sum())
    assert layer_grad_norms(model, x, lambda out: out.sum()) == first  # not accumulated
    assert not any(m._forward_hooks for m in model.modules())
