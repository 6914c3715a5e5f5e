"""Convolution arithmetic, the AlexNet paper's local response normalisation, input checks.

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

import contextvars
import functools
from dataclasses import dataclass
from itertools import chain
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "conv_out_size",
    "pool_out_size",
    "divides_exactly",
    "out_size_formula",
    "receptive_field",
    "measured_receptive_field",
    "Window",
    "windows",
    "sequential_out_size",
    "LocalResponseNorm",
    "checked_forward",
    "check_input_batch",
    "input_size_problem",
    "smallest_input_size",
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


def _span(kernel: int, dilation: int) -> int:
    """Pixels covered by a dilated kernel: d*(k - 1) + 1."""
    return dilation * (kernel - 1) + 1


def conv_out_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((n - d*(k - 1) - 1 + 2p) / s) + 1; ValueError when the window does not fit."""
    _check_args(n, kernel, stride, padding, dilation)
    span = _span(kernel, dilation)
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
    """Output size of max/average pooling (stride defaults to the kernel, as in torch)."""
    stride = kernel if stride is None else stride
    _check_args(n, kernel, stride, padding, dilation)
    span = _span(kernel, dilation)
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


def divides_exactly(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> bool:
    """Whether (n - d*(k - 1) - 1 + 2p) is a multiple of s: no row or column is left over."""
    conv_out_size(n, kernel, stride, padding, dilation)
    return (n + 2 * padding - _span(kernel, dilation)) % stride == 0


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

    ``stride`` defaults to 1 for a convolution and to the kernel for pooling, as in torch.
    """
    if stride is None:
        stride = kernel if pool else 1
    if pool:
        out = pool_out_size(n, kernel, stride, padding, dilation, ceil_mode)
    else:
        out = conv_out_size(n, kernel, stride, padding, dilation)
    span = f"{kernel}" if dilation == 1 else f"{dilation}*({kernel} - 1) - 1"
    fraction = f"({n} - {span} + 2*{padding}) / {stride}"
    if (n + 2 * padding - _span(kernel, dilation)) % stride == 0:
        return f"{fraction} + 1 = {out}"
    if not ceil_mode:
        return f"floor({fraction}) + 1 = {out}"
    ceiling = f"ceil({fraction}) + 1"
    if out == (n + 2 * padding - _span(kernel, dilation)) // stride + 2:
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
        field += dilation * (kernel - 1) * jump
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


# ---------------------------------------------------------------------------------------------
# Input checks shared by every cnnlib model: a wrong channel count is caught before the forward
# pass; a size error is explained after torch raises, by a dry run on the meta device (no data,
# no arithmetic on real tensors) where each conv/pool layer applies the formulas above.


class _SizeProblem(ValueError):
    """An input size that a layer cannot take."""


class _Vanished(_SizeProblem):
    """A feature map smaller than a conv / pool window."""


class _Misfit(_SizeProblem):
    """A flattened feature map of the wrong length for a Linear layer."""

    def __init__(self, message: str, got: int, expected: int) -> None:
        super().__init__(message)
        self.got, self.expected = got, expected


_DRY_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("cnnlib_dry_run", default=False)


def _check_layer(name: str, module: nn.Module, args: tuple[Tensor, ...]) -> None:
    x = args[0]
    if isinstance(module, nn.Linear):
        if x.shape[-1] != module.in_features:
            raise _Misfit(
                f"layer '{name}' ({module}) expects {module.in_features} features, "
                f"but the feature map before it flattens to {x.shape[-1]}",
                got=x.shape[-1],
                expected=module.in_features,
            )
        return
    for axis, window, n in zip(("height", "width"), windows(module), x.shape[-2:]):  # type: ignore[arg-type]
        try:
            window.out_size(int(n))
        except ValueError as error:
            raise _Vanished(
                f"the feature map vanishes at layer '{name}' ({module}): its input is "
                f"{x.shape[-2]}x{x.shape[-1]} and along the {axis} the {error}",
            ) from None


def _dry_run(model: nn.Module, height: int, width: int, meta: dict[str, Tensor]) -> None:
    """Run the model on an empty meta tensor, raising _SizeProblem at the first layer that fails."""
    hooks = [
        module.register_forward_pre_hook(functools.partial(_check_layer, name))
        for name, module in model.named_modules()
        if windows(module) is not None or isinstance(module, nn.Linear)
    ]
    token = _DRY_RUN.set(True)
    try:
        with torch.no_grad():
            x = torch.empty(2, model.in_channels, height, width, device="meta")
            functional_call(model, meta, (x,))
    finally:
        _DRY_RUN.reset(token)
        for hook in hooks:
            hook.remove()


def _meta_state(model: nn.Module) -> dict[str, Tensor]:
    named = chain(model.named_parameters(), model.named_buffers())
    return {name: tensor.to("meta") for name, tensor in named}


def _probe(model: nn.Module, n: int, meta: dict[str, Tensor]) -> str:
    """ "ok", "vanished", "too few features" or "too many features" for an n x n input."""
    try:
        _dry_run(model, n, n, meta)
    except _Misfit as misfit:
        return "too few features" if misfit.got < misfit.expected else "too many features"
    except _SizeProblem:
        return "vanished"
    return "ok"


def _first(predicate: Callable[[int], bool], start: int, max_size: int) -> int | None:
    """Smallest n in [start, max_size] where a monotone predicate holds: doubling, then bisection."""
    low, high = start - 1, start  # invariant: low fails, high is the candidate
    while not predicate(high):
        if high >= max_size:
            return None
        low, high = high, min(2 * high, max_size)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if predicate(middle) else (middle, high)
    return high


def smallest_input_size(model: nn.Module, max_size: int = 4096) -> int:
    """Smallest n such that an n x n input passes through the model.

    Feature maps grow with the input, so both "no feature map vanishes" and "enough features
    for the classifier" (a Linear after a flatten) hold from some size on: found by bisection,
    each trial a dry run on the meta device.
    """
    meta = _meta_state(model)
    smallest = _first(lambda n: _probe(model, n, meta) not in ("vanished", "too few features"), 1, max_size)
    if smallest is None or _probe(model, smallest, meta) != "ok":
        raise ValueError(f"no square input up to {max_size} pixels passes through {type(model).__name__}")
    return smallest


def input_size_problem(model: nn.Module, height: int, width: int) -> str | None:
    """Why an input of this size cannot pass through the model, or None if it can."""
    meta = _meta_state(model)
    try:
        _dry_run(model, height, width, meta)
    except _SizeProblem as problem:
        smallest = smallest_input_size(model)
        name = type(model).__name__
        if isinstance(problem, _Vanished):
            return (
                f"input of {height}x{width} is too small for {name}: {problem}. "
                f"The smallest square input that works is {smallest}x{smallest}."
            )
        too_large = _first(lambda n: _probe(model, n, meta) == "too many features", smallest, 4096)
        largest = f"{too_large - 1}x{too_large - 1}" if too_large else "4096x4096"
        return (
            f"input of {height}x{width} does not fit {name}: {problem}. This classifier needs a "
            f"fixed feature size: square inputs from {smallest}x{smallest} to {largest} work."
        )
    return None


def check_input_batch(model: nn.Module, x: Tensor) -> None:
    """ValueError unless x is a batch [N, C, H, W] with the model's number of channels."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        batchless = isinstance(x, Tensor) and x.dim() == 3
        hint = " (add the batch dimension with x.unsqueeze(0))" if batchless else ""
        raise ValueError(f"{type(model).__name__} expects a batch of images [N, C, H, W], got {shape}{hint}")
    expected, got = model.in_channels, x.shape[1]
    if got != expected:
        plural = "s" if expected != 1 else ""
        raise ValueError(
            f"{type(model).__name__} expected {expected} input channel{plural}, got {got} "
            f"(input shape {tuple(x.shape)}): build the model with in_channels={got}, "
            f"or convert the images to {expected} channel{plural}"
        )


def checked_forward(forward: Callable[[nn.Module, Tensor], Tensor]) -> Callable[[nn.Module, Tensor], Tensor]:
    """Decorate a model's ``forward``: checks the batch's shape and channels first, and turns
    torch's size errors into a ValueError naming the layer where the feature map vanishes
    (or the classifier does not fit) and the smallest input that works. The model has an
    ``in_channels`` attribute.
    """

    @functools.wraps(forward)
    def checked(model: nn.Module, x: Tensor) -> Tensor:
        if _DRY_RUN.get():
            return forward(model, x)
        check_input_batch(model, x)
        try:
            return forward(model, x)
        except RuntimeError as error:
            try:
                problem = input_size_problem(model, x.shape[-2], x.shape[-1])
            except Exception:  # the diagnosis itself failed: torch's own error is the best we have
                problem = None
            if problem is None:
                raise
            raise ValueError(problem) from error

    return checked
