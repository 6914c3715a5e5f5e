"""Convolution arithmetic and the AlexNet paper's local response normalisation.

Output size of a convolution along one axis (Dumoulin & Visin, "A guide to convolution
arithmetic", 2016), for input size n, kernel k, stride s, padding p and dilation d:

    out = floor((n - d*(k - 1) - 1 + 2p) / s) + 1        (= (n - k + 2p) / s + 1 when d = 1)

Pooling uses the same formula; with ``ceil_mode=True`` the floor becomes a ceiling, except
that the last window must start inside the input or its left padding (PyTorch's rule).

The 224-vs-227 AlexNet puzzle: the paper says 224x224 inputs, but with an 11x11 kernel,
stride 4 and no padding, (224 - 11) / 4 + 1 = 54.25 does not divide; (227 - 11) / 4 + 1 = 55,
the 55x55 maps of the paper's figure. ``divides_exactly`` tells the two cases apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "conv_out_size",
    "pool_out_size",
    "effective_kernel",
    "leftover",
    "divides_exactly",
    "out_size_formula",
    "receptive_field",
    "measured_receptive_field",
    "Window",
    "windows",
    "sequential_out_size",
    "LocalResponseNorm",
]


def _check_args(n: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    for name, value, least in (
        ("input size", n, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Pixels spanned by a dilated kernel: d*(k - 1) + 1."""
    return dilation * (kernel - 1) + 1


def conv_out_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((n - d*(k - 1) - 1 + 2p) / s) + 1; ValueError when the window does not fit.

    Args (the same in ``leftover``, ``divides_exactly``, ``pool_out_size``, ``out_size_formula``):
        n: the input's side (height or width).
        kernel: the kernel's side k.
        stride: s.
        padding: p, added on each side.
        dilation: d, the step between the kernel's taps.
    """
    _check_args(n, kernel, stride, padding, dilation)
    span = effective_kernel(kernel, dilation)
    if span > n + 2 * padding:
        dilated = f" (dilated to {span})" if dilation != 1 else ""
        raise ValueError(
            f"kernel {kernel}{dilated} is larger than the padded input {n} + 2*{padding} = {n + 2 * padding}"
        )
    return (n + 2 * padding - span) // stride + 1


def pool_out_size(
    n: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output size of max/average pooling (stride defaults to the kernel, as in torch); the arguments
    as in ``conv_out_size``, and ``ceil_mode`` rounds the division up (a last window may not start in
    the right padding), as torch's pooling layers."""
    stride = kernel if stride is None else stride
    _check_args(n, kernel, stride, padding, dilation)
    span = effective_kernel(kernel, dilation)
    if padding > kernel // 2:
        raise ValueError(f"padding {padding} is more than half the pooling kernel {kernel}")
    out = (n + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1  # the last window would start inside the right padding
    if out < 1:
        raise ValueError(
            f"pooling window {span} is larger than the padded input {n} + 2*{padding} = {n + 2 * padding}"
        )
    return out


def leftover(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """(n - d*(k - 1) - 1 + 2p) mod s: the padded positions after the last window, which no window reads."""
    conv_out_size(n, kernel, stride, padding, dilation)
    return (n + 2 * padding - effective_kernel(kernel, dilation)) % stride


def divides_exactly(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> bool:
    """Whether (n - d*(k - 1) - 1 + 2p) is a multiple of s: no row or column is left over."""
    return leftover(n, kernel, stride, padding, dilation) == 0


def out_size_formula(
    n: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
    pool: bool = False,
) -> str:
    """The arithmetic with its numbers, e.g. "(227 - 11 + 2*0) / 4 + 1 = 55".

    The arguments as in ``pool_out_size``; ``pool`` chooses pooling's arithmetic over a
    convolution's, and ``stride`` defaults to 1 for a convolution and to the kernel for pooling, as in torch.
    """
    if stride is None:
        stride = kernel if pool else 1
    if pool:
        out = pool_out_size(n, kernel, stride, padding, dilation, ceil_mode)
    else:
        out = conv_out_size(n, kernel, stride, padding, dilation)
    span = f"{kernel}" if dilation == 1 else f"{dilation}*({kernel} - 1) - 1"
    fraction = f"({n} - {span} + 2*{padding}) / {stride}"
    reach = n + 2 * padding - effective_kernel(kernel, dilation)  # the last start a window may have
    if reach % stride == 0:
        return f"{fraction} + 1 = {out}"
    if not ceil_mode:
        return f"floor({fraction}) + 1 = {out}"
    ceiling = f"ceil({fraction}) + 1"
    if out == reach // stride + 2:
        return f"{ceiling} = {out}"
    return f"{ceiling} - 1 = {out} (a last window may not start in the padding)"


@dataclass(frozen=True)
class Window:
    """Geometry of a convolution or pooling layer along one spatial axis."""

    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    ceil_mode: bool = False
    pool: bool = False

    def out_size(self, n: int) -> int:
        if self.pool:
            return pool_out_size(n, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        return conv_out_size(n, self.kernel, self.stride, self.padding, self.dilation)

    def formula(self, n: int) -> str:
        return out_size_formula(
            n, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode, self.pool
        )


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def windows(module: nn.Module) -> tuple[Window, Window] | None:
    """(height, width) geometry of a Conv2d / MaxPool2d / AvgPool2d; None for other layers.

    A convolution with ``padding="same"`` keeps its input size and also gives None.
    """
    if isinstance(module, nn.Conv2d):
        if module.padding == "same":
            return None
        padding = (0, 0) if module.padding == "valid" else module.padding
        parts = zip(module.kernel_size, module.stride, padding, module.dilation)
        return tuple(Window(k, s, p, d) for k, s, p, d in parts)  # type: ignore[return-value]
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        dilation = module.dilation if isinstance(module, nn.MaxPool2d) else 1
        stride = module.stride if module.stride is not None else module.kernel_size
        parts = zip(_pair(module.kernel_size), _pair(stride), _pair(module.padding), _pair(dilation))
        return tuple(  # type: ignore[return-value]
            Window(k, s, p, d, bool(module.ceil_mode), pool=True) for k, s, p, d in parts
        )
    return None


def sequential_out_size(layers: Iterable[nn.Module], n: int) -> int:
    """Height of the feature map after a flat sequence of layers, for an n x n input."""
    for layer in layers:
        geometry = windows(layer)
        if geometry is not None:
            n = geometry[0].out_size(n)
    return n


def receptive_field(layers: Iterable[tuple[int, ...] | nn.Module]) -> int:
    """Receptive field of a stack: r = 1 + sum_l d_l*(k_l - 1) * prod_{i<l} s_i.

    ``layers`` holds (kernel, stride) or (kernel, stride, dilation) tuples, or the layers of a
    flat sequence (an ``nn.Sequential`` of convolutions, pools and activations).
    """
    field, jump = 1, 1
    for layer in layers:
        if isinstance(layer, nn.Module):
            geometry = windows(layer)
            if geometry is None:
                continue
            kernel, stride, dilation = geometry[0].kernel, geometry[0].stride, geometry[0].dilation
        else:
            kernel, stride, dilation = (tuple(layer) + (1,))[:3]
        _check_args(1, kernel, stride, 0, dilation)
        field += (effective_kernel(kernel, dilation) - 1) * jump
        jump *= stride
    return field


def measured_receptive_field(layers: Iterable[tuple[int, ...] | nn.Module], n: int = 512) -> int:
    """The receptive field found by backpropagation, an independent check of ``receptive_field``.

    Each conv / pool layer (same forms as ``receptive_field``) becomes a one-channel 1-D
    convolution of ones with its kernel, stride, padding and dilation; the gradient of the
    middle output with respect to an input of length ``n`` is then positive exactly on the
    inputs that output sees. Returns the length of that span; ValueError when the span reaches
    the input's border (``n`` too small to tell).
    """
    x = torch.zeros(1, 1, n, dtype=torch.float64, requires_grad=True)
    y = x
    for layer in layers:
        if isinstance(layer, nn.Module):
            geometry = windows(layer)
            if geometry is None:
                continue
            w = geometry[0]
            kernel, stride, padding, dilation = w.kernel, w.stride, w.padding, w.dilation
        else:
            (kernel, stride, dilation), padding = (tuple(layer) + (1,))[:3], 0
        ones = torch.ones(1, 1, kernel, dtype=torch.float64)
        y = torch.nn.functional.conv1d(y, ones, stride=stride, padding=padding, dilation=dilation)
    y[0, 0, y.shape[-1] // 2].backward()
    seen = x.grad[0, 0].nonzero().flatten()
    first, last = seen.min().item(), seen.max().item()
    if first == 0 or last == n - 1:
        raise ValueError(f"the receptive field reaches the border of the {n}-pixel input: use a larger n")
    return last - first + 1


class LocalResponseNorm(nn.Module):
    """Local response normalisation across channels (Krizhevsky et al. 2012, sec. 3.3):

        b_i = a_i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2) ** beta

    with the paper's k=2, n=5, alpha=1e-4, beta=0.75. ``torch.nn.LocalResponseNorm`` divides
    alpha by n (it averages the squares instead of summing them), so this layer equals
    ``nn.LocalResponseNorm(n, alpha=n * alpha, beta, k)``: see ``to_torch``. For an even n the
    window takes n//2 channels before and (n-1)//2 after, as torch does.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"expected input [N, C, ...], got shape {tuple(x.shape)}")

        def zeros(channels: int) -> Tensor:
            return x.new_zeros(x.shape[0], channels, *x.shape[2:])

        squares = torch.cat([zeros(self.size // 2), x.pow(2), zeros((self.size - 1) // 2)], dim=1)
        window_sum = sum(squares[:, j : j + x.shape[1]] for j in range(self.size))
        return x * (self.k + self.alpha * window_sum).pow(-self.beta)

    def to_torch(self) -> nn.LocalResponseNorm:
        """The same layer in torch's convention (alpha multiplied by the window size)."""
        return nn.LocalResponseNorm(self.size, alpha=self.alpha * self.size, beta=self.beta, k=self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
