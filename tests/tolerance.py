"""Tolerances that follow the dtype: a float result computed through a reduction of ``terms``
values carries a relative rounding error of at most about ``terms * eps`` (recursive summation,
Higham, *Accuracy and Stability of Numerical Algorithms*, section 4.2); kernels that sum in
another order or width (SIMD, threads, oneDNN) move the result within that bound."""

import torch


def rounding(dtype: torch.dtype = torch.float32, terms: int = 1) -> float:
    """The relative error bound ``terms * eps(dtype)`` of a result that sums ``terms`` values."""
    return max(terms, 1) * torch.finfo(dtype).eps


def assert_close(actual, expected, terms: int = 1, scale: float = 1.0) -> None:
    """``actual`` equals ``expected`` up to the rounding of a ``terms``-term reduction of values of size ``scale``."""
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    tol = rounding(actual.dtype, terms)
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)
