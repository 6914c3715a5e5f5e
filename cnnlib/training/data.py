"""MNIST and Fashion-MNIST, and a loader that keeps them on the device.

The datasets come from ``torchvision.datasets`` (``download=True``; offline, the four official
``.gz`` files of a set can be put into ``<root>/<Name>/raw/`` by hand). ``DeviceLoader`` then
skips the per-image ``Dataset.__getitem__`` + ``DataLoader`` machinery: it moves the whole split,
as 28x28 uint8, to the device once (47 MB for 60,000 images) and converts, resizes, augments and
normalises each *batch* there in a few tensor operations.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets
from torchvision.datasets.utils import calculate_md5

from cnnlib.files import CourseFolderMissing, course_folder
from cnnlib.training.profiles import choose_device, dry_run_steps

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(digit) for digit in range(10)]

# Mean and standard deviation of all training pixels scaled to [0, 1]
# (tests/test_data.py recomputes them from the files).
FASHION_MNIST_MEAN_STD = (0.2860, 0.3530)
MNIST_MEAN_STD = (0.1307, 0.3081)
# The validation split of every experiment and the speedrun: 5,000 class-balanced training images.
VAL_SIZE, SPLIT_SEED = 5000, 0

_KNOWN = {  # torchvision class name -> (class names, (mean, std), horizontal flip is label-preserving)
    "FashionMNIST": (FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN_STD, True),
    "MNIST": (MNIST_CLASSES, MNIST_MEAN_STD, False),  # a mirrored 2, 3, 7 is no digit
}


class DataUnavailable(RuntimeError):
    """A dataset is neither on disk nor downloadable; the message says which files to put where."""


class DataCorrupted(DataUnavailable):
    """A dataset file on disk is truncated or damaged; the message names it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``root``, else ``$CNNLIB_DATA``, else the course's ``data/`` beside the
    working directory (``./data``, or ``../data`` from ``notebooks/``), else a new ``./data``."""
    if root is not None:
        return Path(root).expanduser()
    try:
        return course_folder("data", env="CNNLIB_DATA")
    except CourseFolderMissing:
        return Path.cwd() / "data"


def fashion_mnist(train: bool = True, root: str | os.PathLike | None = None) -> datasets.FashionMNIST:
    """Fashion-MNIST (Xiao et al., 2017): 60,000 train / 10,000 test 28x28 greyscale clothes, 10 classes."""
    return _load(datasets.FashionMNIST, train, root)


def mnist(train: bool = True, root: str | os.PathLike | None = None) -> datasets.MNIST:
    """MNIST (LeCun et al., 1998): 60,000 train / 10,000 test 28x28 handwritten digits."""
    return _load(datasets.MNIST, train, root)

# The datasets by the names the command lines take (``--dataset``).
DATASETS = {"fashion-mnist": fashion_mnist, "mnist": mnist}


def _load(cls: type[datasets.MNIST], train: bool, root: str | os.PathLike | None) -> datasets.MNIST:
    root = data_root(root)
    try:
        return cls(root, train=train, download=True)
    # Offline: RuntimeError (torchvision's "Error downloading ..."). A truncated extracted file:
    # AssertionError from torchvision's reader. A damaged legacy cache: UnpicklingError or RuntimeError.
    except (RuntimeError, OSError, EOFError, AssertionError, pickle.UnpicklingError) as err:
        raise _explain(cls, root, err) from err


def _explain(cls: type[datasets.MNIST], root: Path, err: Exception) -> DataUnavailable:
    """Turn torchvision's failure into a message that names the files and what to do with them.

    torchvision looks, in this order, for (1) its legacy cache ``<root>/<Name>/processed/``
    ``training.pt`` and ``test.pt`` (read if both exist), (2) the four extracted files in
    ``<root>/<Name>/raw/`` (read, unchecked, if all four exist), (3) each ``<file>.gz`` there,
    extracted if its MD5 matches torchvision's list and downloaded otherwise. So a bad file is an
    unreadable legacy cache, an extracted file whose size disagrees with its header, or a
    ``.gz`` with the wrong MD5; anything else is missing.
    """
    reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__  # the innermost cause
    processed, raw = root / cls.__name__ / "processed", root / cls.__name__ / "raw"
    if (processed / "training.pt").is_file() and (processed / "test.pt").is_file():
        return DataCorrupted(f"torchvision's old cache {processed}/ could not be read ({reason}). "
                             f"Delete that folder: the files in {raw}/ are then used (or downloaded).")
    status = {}
    for name, md5 in cls.resources:
        gz, extracted = raw / name, raw / name.removesuffix(".gz")
        if extracted.is_file() and not _idx_complete(extracted):
            return DataCorrupted(f"{extracted} is truncated or damaged (its size disagrees with its header). "
                                 f"Delete it and run again: it is re-extracted from {name} (or downloaded).")
        if gz.is_file() and (actual := calculate_md5(gz)) != md5:
            return DataCorrupted(f"{gz} is truncated or damaged (MD5 {actual}, expected {md5}). "
                                 "Delete it and fetch it again: cnnlib downloads it when there is network access; "
                                 f"offline, copy a good {name} into {raw}/.")
        status[name] = "found" if gz.is_file() or extracted.is_file() else "missing"
    listing = ", ".join(f"{name} ({state})" for name, state in status.items())
    return DataUnavailable(
        f"{cls.__name__} is not in {root} and could not be downloaded ({reason}). "
        f"Put its four official files into {raw}/: {listing}; from {cls.mirrors[0]} or any copy with "
        f"the same MD5. Or set the CNNLIB_DATA environment variable to a folder that holds "
        f"{cls.__name__}/raw/ with them.")


def _idx_complete(path: Path) -> bool:
    """Whether an IDX file (the MNIST format: magic, dims, uint8 data) has exactly the bytes its header promises."""
    with open(path, "rb") as f:
        header = f.read(4)
        if len(header) < 4:
            return False
        ndim = header[3]
        dims = np.frombuffer(f.read(4 * ndim), dtype=">u4")
    return len(dims) == ndim and path.stat().st_size == 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64))


def _kind(dataset: datasets.MNIST) -> tuple[list[str], tuple[float, float], bool]:
    name = type(dataset).__name__
    if name not in _KNOWN:
        raise ValueError(f"expected a torchvision MNIST or FashionMNIST dataset, got {name}")
    return _KNOWN[name]


def class_names(dataset: datasets.MNIST) -> list[str]:
    """The ten class names of an MNIST or Fashion-MNIST dataset."""
    return list(_kind(dataset)[0])


def mean_std(dataset: datasets.MNIST) -> tuple[float, float]:
    """The training-set pixel mean and standard deviation (in [0, 1] units) used to normalise this dataset."""
    return _kind(dataset)[1]


def flips_preserve_labels(dataset: datasets.MNIST) -> bool:
    """Whether a left-right mirrored image keeps its label (clothes: yes; digits: no)."""
    return _kind(dataset)[2]


def balanced_subset(labels: Tensor, n: int, seed: int = 0) -> Tensor:
    """Sorted indices of ``n`` examples drawn with ``seed``: ``n // C`` per class, one more for the first ``n % C``."""
    classes = labels.unique()
    base, extra = divmod(n, len(classes))
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for i, c in enumerate(classes.tolist()):
        members = (labels == c).nonzero().flatten()
        k = base + (i < extra)
        if k > len(members):
            raise ValueError(f"subset={n} needs {k} examples of class {c}, which has only {len(members)}")
        picks.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(picks).sort().values


def take(dataset: datasets.MNIST, indices: torch.Tensor) -> datasets.MNIST:
    """A copy of a torchvision MNIST-family dataset holding only the examples at ``indices``."""
    part = copy.copy(dataset)
    part.data, part.targets = dataset.data[indices], torch.as_tensor(dataset.targets)[indices]
    return part


def train_val_split(dataset: datasets.MNIST, val_size: int = VAL_SIZE,
                    seed: int = SPLIT_SEED) -> tuple[datasets.MNIST, datasets.MNIST]:
    """The training set split into (train, validation): a class-balanced, seeded ``val_size``
    examples for validation, every other example for training. The same seed gives the same split."""
    labels = torch.as_tensor(dataset.targets)
    if not 0 < val_size < len(labels):
        raise ValueError(f"val_size must be between 1 and {len(labels) - 1}, got {val_size}")
    val = balanced_subset(labels, val_size, seed)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    return take(dataset, keep.nonzero().flatten()), take(dataset, val)


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Each image of ``x`` [B, C, H, W] zero-padded by ``padding`` and cropped back to H x W at a random offset.

    Vectorised ``RandomCrop(size, padding)``: per-sample offsets (dy, dx) in [0, 2 * padding] pick
    rows ``dy + arange(H)`` and columns ``dx + arange(W)`` of the padded batch by advanced indexing.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b, 1), generator=generator).to(x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    crops = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    # Copied into NCHW strides: for one channel, .contiguous() would keep the NHWC strides (it ignores
    # size-1 dimensions), the convolutions would then run channels_last, and torch 2.14's CPU backward
    # of a 1x1 stride-2 convolution with 4 input channels corrupts memory on such input.
    return crops.clone(memory_format=torch.contiguous_format)


def random_hflip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Each image of ``x`` [B, C, H, W] mirrored left-right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class DeviceLoader:
    """Batches ``(x, y)`` of an MNIST-family dataset, made on the device from a resident uint8 copy.

    Per batch: uint8 -> float in [0, 1]; bilinear antialiased resize to ``resize`` x ``resize``;
    if ``augment``, random crop with 4 pixels of zero (black) padding, plus a horizontal flip for
    Fashion-MNIST only (never for digits); then ``(x - mean) / std`` with the training-set
    statistics. ``x`` is float32 [B, 1, H, W], ``y`` int64 [B].

    Shuffling draws a new permutation each epoch from a generator seeded with ``(seed, epoch)``,
    so runs are reproducible and a resumed run sees the same batches (``fit`` calls ``set_epoch``).
    ``subset`` keeps a class-balanced sample of that many examples (all of them if ``subset`` is
    at least the split's size). Under ``torch.distributed`` (or with explicit ``rank`` and
    ``world_size``) each rank iterates the disjoint slice ``order[rank::world_size]`` of the same
    permutation, truncated so that every rank has ``num_examples // world_size`` examples and as
    many batches as the others; ``batch_size`` is then per rank.
    """

    def __init__(self, dataset: datasets.MNIST, batch_size: int, shuffle: bool, resize: int | None = None,
                 augment: bool = False, subset: int | None = None, device: str | torch.device | None = None,
                 seed: int = 0, drop_last: bool = False, rank: int | None = None, world_size: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        classes, (self.mean, self.std), flip = _kind(dataset)
        self.classes = list(classes)
        images, labels = dataset.data, torch.as_tensor(dataset.targets)
        if subset is not None and subset < len(labels):
            keep = balanced_subset(labels, subset, seed)
            images, labels = images[keep], labels[keep]
        self.device = choose_device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.resize, self.drop_last = batch_size, shuffle, resize, drop_last
        self.augment, self.flip, self.seed, self.epoch = augment, augment and flip, seed, 0
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else dist.get_rank() if distributed else 0
        self.world_size = world_size if world_size is not None else dist.get_world_size() if distributed else 1
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {self.rank}, world_size {self.world_size}")

    @property
    def num_examples(self) -> int:
        """Examples held (after ``subset``), over all ranks."""
        return len(self.labels)

    @property
    def shard_size(self) -> int:
        """Examples this rank iterates per epoch."""
        return self.num_examples // self.world_size

    def __len__(self) -> int:
        """Batches per epoch (on this rank)."""
        n = self.shard_size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use ``epoch``'s permutation and augmentations (as ``DistributedSampler``)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        self.epoch += 1
        return self._batches(torch.Generator().manual_seed(seed))

    def _batches(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.num_examples
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        order = order[self.rank::self.world_size][:self.shard_size].to(self.device)
        steps = dry_run_steps()  # a dry run stops the pass early; len() stays the epoch's true length
        for i in range(len(self) if steps is None else min(len(self), steps)):
            yield self._batch(order[i * self.batch_size:(i + 1) * self.batch_size], generator)

    def _batch(self, index: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = self.images[index].unsqueeze(1).float().div_(255)
        if self.resize and self.resize != x.shape[-1]:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=True)
        if self.augment:  # before normalising, so that the padding is black like the background
            x = random_crop(x, 4, generator)
            if self.flip:
                x = random_hflip(x, generator)
        return x.sub_(self.mean).div_(self.std), self.labels[index]

    def __repr__(self) -> str:
        return (f"DeviceLoader({self.num_examples} examples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"resize={self.resize}, augment={self.augment}, device={self.device}, "
                f"rank={self.rank}/{self.world_size})")
