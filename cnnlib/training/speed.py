"""The fastest trainers' ingredients, each a small function: what it computes and what it buys.

From airbench (Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU") and
hlb-CIFAR10 (Balsam, 2023), the parts that transfer to 28x28 greyscale images on a CPU:

- ``EMA``: an exponential moving average of the weights, evaluated instead of the weights
  (a ``fit`` callback);
- ``flip_tta_logits``: test-time augmentation by the mirror image (``evaluate(..., logits_fn=)``);
- ``whitening_init_``: the first convolution's filters set to the whitening transform of the
  training images' patches (airbench sec 3.2);
- ``speed_param_groups``: lesson 06's "no bias decay" groups, with a larger learning rate for
  the BatchNorm parameters (airbench's "scaled bias learning rate");
- ``progressive_sizes`` / ``ProgressiveResizing``: smaller images early in training, full size at
  the end (fast.ai's progressive resizing; FixRes, Touvron et al. 2019, on why the last epochs are at test size).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlib.training.loop import Callback
from cnnlib.training.tricks import no_bias_decay


# --- exponential moving average of the weights ---------------------------------------------

class EMA(Callback):
    """A copy of ``model`` whose parameters and floating buffers follow ema <- d * ema + (1 - d) * p
    after every ``update`` (``fit`` calls it after each step: ``callbacks=[ema], eval_model=ema.module``).

    d = ``decay``, or with ``warmup`` d = min(decay, (1 + n) / (10 + n)) at the n-th update (0-based),
    as TensorFlow's ``ExponentialMovingAverage(num_updates=n)``: early on, the average forgets the
    random initial weights within a few steps instead of ~1 / (1 - decay).
    BatchNorm's running mean and variance are averaged like the weights, so that they describe the
    averaged network's activations; integer buffers (``num_batches_tracked``) are copied. Without
    warmup it equals ``torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
    use_buffers=True)`` on parameters and floating buffers after the same updates, once that has been
    given the starting weights (its first ``update_parameters`` copies; ours starts as the copy).
    The averaged weights are a cheap ensemble over the last ~1 / (1 - decay) steps; whether they beat
    the raw weights, and whether averaged statistics do as well as statistics recomputed for the averaged
    weights, is measured, not assumed: paired, in ``results/speedrun_search.json``
    (``speedrun_recipe.paired_evaluations``).
    """

    def __init__(self, model: nn.Module, decay: float = 0.99, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay} (0.99 averages about the last 100 steps)")
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """The d of the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights and buffers."""
        weight = 1.0 - self.current_decay()
        for ema_p, p in zip(self.module.parameters(), model.parameters()):
            ema_p.lerp_(p, weight)  # ema + (1 - d) (p - ema)
        for ema_buffer, buffer in zip(self.module.buffers(), model.buffers()):
            if ema_buffer.is_floating_point():
                ema_buffer.lerp_(buffer, weight)
            else:
                ema_buffer.copy_(buffer)
        self.updates += 1

    def after_step(self, model: nn.Module) -> None:
        self.update(model)


# --- flip test-time augmentation ------------------------------------------------------------

def flip_tta_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The mean of the logits of ``x`` and of its left-right mirror: (f(x) + f(flip(x))) / 2.

    For label-preserving flips only (Fashion-MNIST, CIFAR; never digits). Costs a second forward
    pass; buys the ensemble of two views the network was trained on (random flips).
    """
    return (model(x) + model(x.flip(-1))) / 2


# --- patch-whitening initialisation ---------------------------------------------------------

def patch_covariance(images: Tensor, kernel_size: int) -> Tensor:
    """Covariance [D, D] of all ``kernel_size`` x ``kernel_size`` patches of ``images`` [N, C, H, W],
    D = C * k * k, each patch flattened as ``F.unfold`` (and so ``Conv2d.weight``) orders it."""
    patches = F.unfold(images.double(), kernel_size).transpose(1, 2).reshape(-1, images.shape[1] * kernel_size ** 2)
    return torch.cov(patches.T)


@torch.no_grad()
def whitening_init_(conv: nn.Conv2d, images: Tensor, eps: float = 5e-4) -> Tensor:
    """Set ``conv``'s filters to the whitening transform of ``images``' patches (airbench, sec 3.2).

    With Sigma = V diag(lambda) V^T the patches' covariance, the filters are the rows of
    W = diag(lambda + eps)^(-1/2) V^T, the eigenvectors with the largest eigenvalues first, each
    followed by its negative (so that a ReLU after it loses nothing): out_channels / 2 directions.
    The outputs of the first half then have covariance W Sigma W^T ~ identity. Needs an even
    out_channels <= 2 D, no dilation and one group; the bias, if any, is zeroed. Returns the
    eigenvalues, largest first. A few thousand images are plenty (all patches are kept in memory).
    The first layer starts out as a decorrelating, variance-equalising
    step that gradient descent would otherwise have to learn.
    """
    k = conv.kernel_size[0]
    dims = conv.in_channels * k * k
    if (conv.kernel_size[0] != conv.kernel_size[1] or conv.groups != 1 or conv.dilation != (1, 1)
            or conv.out_channels % 2 or conv.out_channels > 2 * dims):
        raise ValueError(f"whitening needs a square kernel, one group, no dilation and an even out_channels "
                         f"<= 2 * in_channels * k * k = {2 * dims}; got {conv}")
    if images.ndim != 4 or images.shape[1] != conv.in_channels:
        raise ValueError(f"images must be [N, {conv.in_channels}, H, W] like the layer's input, "
                         f"got {tuple(images.shape)}")
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, k))
    order = eigenvalues.argsort(descending=True)[:conv.out_channels // 2]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    filters = eigenvectors.T / (eigenvalues + eps).sqrt()[:, None]
    filters = torch.stack([filters, -filters], dim=1).reshape(conv.out_channels, conv.in_channels, k, k)
    conv.weight.copy_(filters.to(conv.weight.dtype))
    if conv.bias is not None:
        conv.bias.zero_()
    return eigenvalues


# --- optimizer parameter groups ---------------------------------------------------------------

def speed_param_groups(model: nn.Module, weight_decay: float, norm_lr_scale: float = 1.0) -> list[dict]:
    """Two parameter groups for ``torch.optim.SGD(groups, lr, momentum, nesterov=True)``.

    ``tricks.no_bias_decay``'s split: conv/linear weights get ``weight_decay``; everything else
    (biases, BatchNorm gamma and beta) no decay and the learning rate times ``norm_lr_scale``
    (airbench scales its BatchNorm biases' rate by 64: a per-channel shift moves slowly at the
    weights' rate). Each group carries ``lr_scale``; ``scaled_lr`` turns a base rate into the group's.
    """
    if norm_lr_scale <= 0 or weight_decay < 0:
        raise ValueError(f"need norm_lr_scale > 0 and weight_decay >= 0, got {norm_lr_scale} and {weight_decay}")
    weights, others = no_bias_decay(model, weight_decay)
    return [{**weights, "lr_scale": 1.0}, {**others, "lr_scale": norm_lr_scale}]


def scaled_lr(groups: list[dict], lr: float) -> list[dict]:
    """The groups with ``lr = lr * lr_scale`` set in each (LambdaLR and OneCycleLR then keep the ratio)."""
    return [{**group, "lr": lr * group.get("lr_scale", 1.0)} for group in groups]


# --- progressive resizing -----------------------------------------------------------------------

class ProgressiveResizing(Callback):
    """``fit``'s hook that sets the training ``loader``'s ``resize`` to ``sizes[epoch]`` before each epoch
    (``cnnlib.training.data.DeviceLoader`` resizes its batches to it)."""

    def __init__(self, loader, sizes: list[int]) -> None:
        self.loader, self.sizes = loader, sizes

    def before_epoch(self, epoch: int) -> None:
        self.loader.resize = self.sizes[epoch]


def progressive_sizes(epochs: int, start: int, end: int, full_epochs: int = 1, multiple: int = 4) -> list[int]:
    """Per-epoch image sizes growing linearly from ``start`` to ``end``, the last ``full_epochs`` at ``end``.

    Sizes are rounded to a ``multiple`` (of the network's downsampling, so the stages divide it).
    A step at size s costs about (s / end)^2 of a full-size step: the early epochs, where the
    network learns coarse shapes, are cheaper; the last ones match the test images' size.
    """
    if not 0 < full_epochs <= epochs or not 0 < start <= end:
        raise ValueError(f"need 0 < full_epochs <= epochs and 0 < start <= end, got epochs={epochs}, "
                         f"full_epochs={full_epochs}, start={start}, end={end}")
    growing = epochs - full_epochs
    sizes = [start + (end - start) * i / max(growing, 1) for i in range(growing)]
    return [min(end, max(multiple, round(s / multiple) * multiple)) for s in sizes] + [end] * full_epochs
