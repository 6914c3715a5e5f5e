import shutil
from pathlib import Path

import pytest
import torch
from torchvision import datasets
from torchvision.transforms import v2

from cnnlib.training import data
from cnnlib.training.data import (FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN_STD, MNIST_CLASSES, MNIST_MEAN_STD, DataCorrupted,
                         DataUnavailable, DeviceLoader, balanced_subset, class_names, data_root, fashion_mnist, mnist)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# DeviceLoader against torchvision's per-image transforms, in normalised units. Measured: at most
# 7.2e-7 for sizes 20 to 224 (float32 rounding: both run the same antialiased bilinear kernel).
TORCHVISION_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fashion_test():
    return fashion_mnist(train=False)


@pytest.fixture(scope="module")
def mnist_test():
    return mnist(train=False)


@pytest.fixture
def offline(monkeypatch):
    """Any download attempt fails at once (a closed local port), whether or not there is a network."""
    for cls in (datasets.MNIST, datasets.FashionMNIST):
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])


def raw_copy(tmp_path: Path, name: str = "FashionMNIST") -> Path:
    source = SHARED / name / "raw" if (SHARED / name).is_dir() else data_root() / name / "raw"
    raw = tmp_path / name / "raw"
    raw.mkdir(parents=True)
    for gz in source.glob("*.gz"):
        shutil.copyfile(gz, raw / gz.name)
    return raw


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLIB_DATA", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("CNNLIB_DATA")
    (tmp_path / "course" / "data").mkdir(parents=True)
    (tmp_path / "course" / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "course" / "notebooks")  # a lesson runs here: data/ is beside it
    assert data_root() == tmp_path / "course" / "data"
    monkeypatch.chdir(tmp_path / "course")  # a command runs here
    assert data_root() == tmp_path / "course" / "data"
    monkeypatch.chdir(tmp_path / "env")  # no course here: a new ./data
    assert data_root() == tmp_path / "env" / "data"


def test_datasets_and_class_names(fashion_test, mnist_test):
    assert fashion_test.data.shape == mnist_test.data.shape == (10_000, 28, 28)
    assert class_names(fashion_test) == FASHION_MNIST_CLASSES == datasets.FashionMNIST.classes
    assert class_names(mnist_test) == MNIST_CLASSES == [c.split(" ")[0] for c in datasets.MNIST.classes]
    with pytest.raises(ValueError, match="MNIST or FashionMNIST"):
        class_names(object())


@pytest.mark.parametrize("load, stats", [(fashion_mnist, FASHION_MNIST_MEAN_STD), (mnist, MNIST_MEAN_STD)])
def test_mean_std_constants(load, stats):
    pixels = load(train=True).data.double() / 255
    assert pixels.mean().item() == pytest.approx(stats[0], abs=1e-3)
    assert pixels.std().item() == pytest.approx(stats[1], abs=1e-3)


@pytest.mark.parametrize("resize", [None, 20, 32, 96])
def test_batches_match_torchvision_transforms(resize):
    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                            *([v2.Resize(resize, antialias=True)] if resize else []),
                            v2.Normalize([FASHION_MNIST_MEAN_STD[0]], [FASHION_MNIST_MEAN_STD[1]])])
    reference = datasets.FashionMNIST(data_root(), train=False, transform=transform)
    x, y = next(iter(DeviceLoader(reference, 64, shuffle=False, resize=resize, device="cpu")))
    expected = torch.stack([reference[i][0] for i in range(64)])
    assert x.shape == expected.shape == (64, 1, resize or 28, resize or 28) and x.dtype == torch.float32
    assert (x - expected).abs().max().item() < TORCHVISION_TOLERANCE
    assert y.tolist() == reference.targets[:64].tolist() and y.dtype == torch.int64


def test_shuffle_is_seeded_and_new_each_epoch(fashion_test):
    def labels(loader):
        return torch.cat([y for _, y in loader])

    a, b = (DeviceLoader(fashion_test, 100, shuffle=True, subset=300, seed=1) for _ in range(2))
    first = labels(a)
    assert torch.equal(first, labels(b))
    second = labels(a)
    assert not torch.equal(first, second) and torch.equal(first.sort().values, second.sort().values)
    a.set_epoch(0)
    assert torch.equal(labels(a), first)
    assert not torch.equal(labels(DeviceLoader(fashion_test, 100, shuffle=True, subset=300, seed=2)), first)


def test_balanced_subset(mnist_test):
    index = balanced_subset(mnist_test.targets, 25, seed=0)
    assert torch.bincount(mnist_test.targets[index]).tolist() == [3] * 5 + [2] * 5
    assert torch.equal(index, balanced_subset(mnist_test.targets, 25, seed=0))
    assert not torch.equal(index, balanced_subset(mnist_test.targets, 25, seed=1))
    loader = DeviceLoader(mnist_test, 64, shuffle=True, subset=1000)
    assert torch.bincount(loader.labels).tolist() == [100] * 10
    with pytest.raises(ValueError, match="class 5, which has only 892"):
        balanced_subset(mnist_test.targets, 9000)
    assert DeviceLoader(mnist_test, 64, shuffle=False, subset=10**6).num_examples == 10_000


def test_len_and_drop_last(fashion_test):
    loader = DeviceLoader(fashion_test, 64, shuffle=True, subset=300)
    assert (len(loader), loader.num_examples, loader.classes) == (5, 300, FASHION_MNIST_CLASSES)
    assert [len(y) for _, y in loader] == [64, 64, 64, 64, 44]
    dropped = DeviceLoader(fashion_test, 64, shuffle=True, subset=300, drop_last=True)
    assert len(dropped) == 4 and [len(y) for _, y in dropped] == [64] * 4


def test_dry_run_caps_the_batches_of_every_pass(fashion_test, monkeypatch):
    monkeypatch.setenv("CNNLIB_DRY_RUN", "2")
    loader = DeviceLoader(fashion_test, 64, shuffle=True, subset=300)
    assert len(loader) == 5 and loader.num_examples == 300  # the epoch's true length
    assert [len(y) for _, y in loader] == [64, 64]
    assert [len(y) for _, y in DeviceLoader(fashion_test, 256, shuffle=False, subset=300)] == [256, 44]


def test_distributed_shards_are_disjoint_and_equal(fashion_test):
    whole = torch.cat([y for _, y in DeviceLoader(fashion_test, 8, shuffle=True, subset=101, seed=3)])
    shards = [DeviceLoader(fashion_test, 4, shuffle=True, subset=101, seed=3, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 13 and shards[0].shard_size == 50
    batches = [list(shard) for shard in shards]
    # step j of the two ranks together is step j of one process with twice the batch size
    for j, ((_, y0), (_, y1)) in enumerate(zip(*batches)):
        assert torch.equal(torch.stack([y0, y1], 1).flatten(), whole[8 * j:8 * j + len(y0) + len(y1)])
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(fashion_test, 4, shuffle=True, rank=2, world_size=2)


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` [H, W] moved by (dy, dx) pixels, zero-filled."""
    out = torch.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def crop_flip_explanations(dataset, n=96):
    """For each augmented image: whether it is a shift of the original, and whether of the mirrored original."""
    mean, std = data.mean_std(dataset)
    plain, = [x for x, _ in DeviceLoader(dataset, n, shuffle=False, subset=n, device="cpu")]
    augmented, = [x for x, _ in DeviceLoader(dataset, n, shuffle=False, subset=n, augment=True, device="cpu")]
    plain, augmented = plain[:, 0] * std + mean, augmented[:, 0] * std + mean
    shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]

    def explains(original, result):
        return any(torch.allclose(shifted(original, dy, dx), result, atol=1e-5) for dy, dx in shifts)

    return [(explains(p, a), explains(p.flip(-1), a)) for p, a in zip(plain, augmented)]


def test_augment_never_flips_digits(mnist_test):
    explained = crop_flip_explanations(mnist_test)
    assert all(shift for shift, _ in explained)
    assert not any(flip and not shift for shift, flip in explained)


def test_augment_flips_fashion_half_the_time(fashion_test):
    explained = crop_flip_explanations(fashion_test)
    assert all(shift or flip for shift, flip in explained)
    flipped = sum(flip and not shift for shift, flip in explained)
    assert 0.25 * len(explained) < flipped < 0.75 * len(explained)


def test_augment_keeps_the_resized_shape(fashion_test):
    x, _ = next(iter(DeviceLoader(fashion_test, 16, shuffle=True, resize=40, augment=True)))
    assert x.shape == (16, 1, 40, 40)


def test_augmented_batches_have_nchw_strides(fashion_test):
    """One-channel crops with NHWC strides would make the convolutions run channels_last."""
    x, _ = next(iter(DeviceLoader(fashion_test, 16, shuffle=True, augment=True, device="cpu")))
    assert x.stride() == (28 * 28, 28 * 28, 28, 1)


def test_missing_files_say_what_to_put_where(tmp_path, offline, monkeypatch):
    monkeypatch.setenv("CNNLIB_DATA", str(tmp_path))
    with pytest.raises(DataUnavailable) as error:
        fashion_mnist()
    message = str(error.value)
    assert f"{tmp_path / 'FashionMNIST' / 'raw'}/" in message and "CNNLIB_DATA" in message
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert f"{name} (missing)" in message
    assert "\n" not in message  # one line, as the command-line trainer prints it
    assert not isinstance(error.value, DataCorrupted)


def test_truncated_download_is_named(tmp_path, offline):
    raw = raw_copy(tmp_path)
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:1000])
    with pytest.raises(DataCorrupted, match=f"{gz} is truncated or damaged.*Delete it and fetch it again"):
        fashion_mnist(train=False, root=tmp_path)


def test_truncated_extracted_file_is_named(tmp_path, offline):
    raw = raw_copy(tmp_path, "MNIST")
    assert len(mnist(train=False, root=tmp_path)) == 10_000  # extracts the four files
    extracted = raw / "t10k-images-idx3-ubyte"
    extracted.write_bytes(extracted.read_bytes()[:-28])
    with pytest.raises(DataCorrupted, match=f"{extracted} is truncated or damaged.*Delete it and run again"):
        mnist(train=False, root=tmp_path)
    extracted.unlink()
    assert len(mnist(train=False, root=tmp_path)) == 10_000  # re-extracted from the .gz


def test_unreadable_legacy_cache_is_named(tmp_path, offline):
    processed = tmp_path / "FashionMNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        (processed / name).write_bytes(b"not a torch file")
    with pytest.raises(DataCorrupted, match=f"old cache {processed}/ could not be read.*Delete that folder"):
        fashion_mnist(root=tmp_path)
