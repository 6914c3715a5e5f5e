"""One notebook, three budgets: the same training recipe at full, laptop and CI size.

A notebook states its *full* recipe once and asks for the budget of the active profile::

    b = budget(epochs=10, batch_size=128, resize=96, cpu=dict(resize=64), smoke=dict(resize=32))
    train = DeviceLoader(fashion_mnist(), b.batch_size, shuffle=True, resize=b.resize, subset=b.train_subset)

``CNNLIB_PROFILE`` chooses the profile; unset, it is ``full`` where a GPU (CUDA or Apple MPS)
is present and ``cpu`` elsewhere. Default scaling of the full recipe, before the overrides:

=======  ======================================================================================
full     the recipe as stated (``None`` subsets: the whole split)
cpu      at most 3 epochs, 6,000 train / 2,000 test images: minutes on 2 laptop cores
smoke    1 epoch, 512 train / 256 test images, ``resize`` capped at 32: a CI check that the
         cells run, not a result
=======  ======================================================================================

Per-profile overrides (``cpu=dict(...)``, ``smoke=dict(...)``) replace the scaled values.

A *dry run* (``CNNLIB_DRY_RUN=N``, a positive integer) keeps everything of the active profile's
recipe (model, resolution, batch size, optimizer, schedule, teacher) but lets every
``DeviceLoader`` stop each pass after ``N`` batches (its ``len`` stays the epoch's true length,
so schedules keep their full-recipe shape), and caps the epochs at ``N``: CI executes
the ``full`` profile's code path on a CPU in minutes, with figures that mean nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Literal, cast

import torch

Profile = Literal["smoke", "cpu", "full"]
PROFILES: tuple[Profile, ...] = ("smoke", "cpu", "full")

CPU_EPOCHS, CPU_TRAIN_SUBSET, CPU_TEST_SUBSET = 3, 6000, 2000
SMOKE_EPOCHS, SMOKE_TRAIN_SUBSET, SMOKE_TEST_SUBSET, SMOKE_MAX_RESIZE = 1, 512, 256, 32


def dry_run_steps() -> int | None:
    """``$CNNLIB_DRY_RUN`` as a positive integer (batches per loader pass and epochs), ``None`` when unset."""
    value = os.environ.get("CNNLIB_DRY_RUN", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"CNNLIB_DRY_RUN={value!r} is not a positive integer: set it to the number of batches "
                         "per pass (for instance 2), or unset it for a real run")
    return int(value)


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else the first available of CUDA, Apple MPS and the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def active_profile() -> Profile:
    """``$CNNLIB_PROFILE`` if set, else ``"full"`` on a GPU and ``"cpu"`` without one."""
    name = os.environ.get("CNNLIB_PROFILE", "").strip().lower()
    if not name:
        return "cpu" if choose_device().type == "cpu" else "full"
    return _check_profile(name, source="CNNLIB_PROFILE")


def _check_profile(name: str, source: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"{source}={name!r} is not a profile: use one of {', '.join(PROFILES)}"
                         " (or leave CNNLIB_PROFILE unset to pick full on a GPU, cpu otherwise)")
    return cast(Profile, name)


@dataclass(frozen=True)
class Budget:
    """The numbers a training cell uses under one profile (``None`` subset: the whole split)."""

    profile: Profile
    epochs: int
    batch_size: int
    resize: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None

    def describe(self) -> str:
        """One line for a notebook: ``cpu profile: 3 epochs, batch 128, resize 96, 6,000 train / 2,000 test images``."""
        def images(n: int | None) -> str:
            return "all" if n is None else f"{n:,}"

        size = f"resize {self.resize}" if self.resize else "native size"
        return (f"{self.profile} profile: {self.epochs} epoch{'s' * (self.epochs != 1)}, batch {self.batch_size}, "
                f"{size}, {images(self.train_subset)} train / {images(self.test_subset)} test images")


def _at_most(n: int | None, cap: int) -> int:
    return cap if n is None else min(n, cap)


def budget(epochs: int, batch_size: int, resize: int | None = None, train_subset: int | None = None,
           test_subset: int | None = None, *, cpu: dict | None = None, smoke: dict | None = None,
           profile: Profile | None = None) -> Budget:
    """The active profile's budget for a full recipe (see the module docstring for the scaling).

    Args:
        epochs, batch_size, resize, train_subset, test_subset: the full recipe (``None`` resize: the
            native size; ``None`` subset: the whole split).
        cpu, smoke: that profile's overrides of the scaled values, e.g. ``cpu=dict(resize=64)``.
        profile: the profile to use; ``None``: the active one (``active_profile``).
    """
    profile = active_profile() if profile is None else _check_profile(profile, source="profile")
    full = Budget("full", epochs, batch_size, resize, train_subset, test_subset)
    if full.epochs < 1 or full.batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    steps = dry_run_steps()
    if profile == "full":
        return full if steps is None else replace(full, epochs=min(epochs, steps))
    if profile == "cpu":
        scaled = replace(full, profile="cpu", epochs=min(epochs, CPU_EPOCHS),
                         train_subset=_at_most(train_subset, CPU_TRAIN_SUBSET),
                         test_subset=_at_most(test_subset, CPU_TEST_SUBSET))
        overrides = cpu
    else:
        scaled = replace(full, profile="smoke", epochs=SMOKE_EPOCHS,
                         resize=None if resize is None else min(resize, SMOKE_MAX_RESIZE),
                         train_subset=_at_most(train_subset, SMOKE_TRAIN_SUBSET),
                         test_subset=_at_most(test_subset, SMOKE_TEST_SUBSET))
        overrides = smoke
    overrides = overrides or {}
    allowed = [f.name for f in fields(Budget) if f.name != "profile"]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise TypeError(f"unknown {profile}= override(s) {unknown}: valid keys are {allowed}")
    scaled = replace(scaled, **overrides)
    return scaled if steps is None else replace(scaled, epochs=min(scaled.epochs, steps))
