"""Every registered model forward and backward at its smallest valid input, and one model per family
under ``torch.compile``.

As timm's and torchvision's model tests do: each ``list_models()`` entry, built for 10 classes and 1
channel, takes a batch of two images of the smallest square size it accepts (``smallest_input_size``),
gives logits of shape [2, 10], and its loss sends a finite gradient to every parameter. The sweep
runs in float64: in float32, ResNet-101's training-mode gradients at its smallest input (1x1, where
each 3x3 convolution sees only its centre tap) were not finite from conv1 to layer2 (measured).

``torch.compile`` is checked with ``fullgraph=True``, so that a graph break (for instance in the input
checks that ``checked_forward`` wraps around each ``forward``) fails the test, on the smallest model of
each family, with the ``eager`` backend: Dynamo's graph capture, run by eager kernels. Code
generation is left out for time: on this project's 2-core CPU, Inductor took 92 s (AlexNet, small
layout), 141 s (small ResNet) and 225 s (small Inception) per model, and even ``aot_eager``
(AOTAutograd's forward and backward graphs) took about 3x as long as ``eager``.
"""

import pytest
import torch
from torch import nn

from cnnlib.models.input_checks import smallest_input_size
from cnnlib.models import get_model, list_models

BATCH, CLASSES = 2, 10  # two examples: BatchNorm in training mode needs more than one value per channel
COMPILED = {"alexnet": dict(layout="small"), "small_inception": {}, "small_resnet": {}}  # one per family
# The captured graph runs the same kernels in the same order as the eager model: measured difference 0.0.
TOLERANCE = 1e-5


@pytest.mark.parametrize("name", list_models())
def test_forward_and_backward_at_the_smallest_input(name):
    torch.manual_seed(0)
    model = get_model(name, num_classes=CLASSES, in_channels=1).double()
    n = smallest_input_size(model)
    logits = model(torch.randn(BATCH, 1, n, n, dtype=torch.float64))
    assert logits.shape == (BATCH, CLASSES)
    nn.functional.cross_entropy(logits, torch.arange(BATCH)).backward()
    missing = [p_name for p_name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing}"
    infinite = [p_name for p_name, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not infinite, f"{name}: non-finite gradient in {infinite}"


@pytest.mark.parametrize("name", sorted(COMPILED))
def test_compiled_model_matches_eager(name):
    torch.manual_seed(0)
    model = get_model(name, num_classes=CLASSES, in_channels=1, **COMPILED[name]).eval()  # eval: no dropout draws
    x = torch.randn(BATCH, 1, smallest_input_size(model), smallest_input_size(model))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    eager_out, compiled_out = model(x), compiled(x)
    torch.testing.assert_close(compiled_out, eager_out, rtol=0, atol=TOLERANCE)
    eager_grads = torch.autograd.grad(eager_out.sum(), list(model.parameters()))
    compiled_grads = torch.autograd.grad(compiled_out.sum(), list(model.parameters()))
    for eager, compiled_grad in zip(eager_grads, compiled_grads):
        torch.testing.assert_close(compiled_grad, eager, rtol=0, atol=TOLERANCE)
