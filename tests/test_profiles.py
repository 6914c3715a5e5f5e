import pytest
import torch

from cnnlib.training import profiles
from cnnlib.training.profiles import PROFILES, Budget, active_profile, budget, choose_device

RECIPE = dict(epochs=10, batch_size=128, resize=96)


def test_active_profile_defaults_to_the_hardware(monkeypatch):
    monkeypatch.delenv("CNNLIB_PROFILE", raising=False)
    monkeypatch.setattr(profiles, "choose_device", lambda: torch.device("cpu"))
    assert active_profile() == "cpu"
    monkeypatch.setattr(profiles, "choose_device", lambda: torch.device("cuda"))
    assert active_profile() == "full"


@pytest.mark.parametrize("name", PROFILES)
def test_active_profile_reads_the_environment(monkeypatch, name):
    monkeypatch.setenv("CNNLIB_PROFILE", f" {name.upper()} ")
    assert active_profile() == name


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("CNNLIB_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast'.*smoke, cpu, full"):
        active_profile()
    with pytest.raises(ValueError, match="smoke, cpu, full"):
        budget(**RECIPE, profile="gpu")


def test_full_is_the_recipe():
    assert budget(**RECIPE, train_subset=None, profile="full") == Budget("full", 10, 128, 96, None, None)


def test_cpu_scales_epochs_and_data():
    assert budget(**RECIPE, profile="cpu") == Budget("cpu", 3, 128, 96, 6000, 2000)
    assert budget(epochs=2, batch_size=64, train_subset=1000, profile="cpu") == Budget("cpu", 2, 64, None, 1000, 2000)


def test_smoke_is_one_short_epoch():
    assert budget(**RECIPE, profile="smoke") == Budget("smoke", 1, 128, 32, 512, 256)
    assert budget(epochs=5, batch_size=32, resize=None, profile="smoke").resize is None


def test_overrides_of_the_active_profile_win(monkeypatch):
    kwargs = dict(RECIPE, cpu=dict(resize=64, epochs=5), smoke=dict(train_subset=128))
    assert budget(**kwargs, profile="cpu") == Budget("cpu", 5, 128, 64, 6000, 2000)
    assert budget(**kwargs, profile="smoke") == Budget("smoke", 1, 128, 32, 128, 256)
    assert budget(**kwargs, profile="full") == Budget("full", 10, 128, 96, None, None)
    monkeypatch.setenv("CNNLIB_PROFILE", "smoke")
    assert budget(**kwargs).train_subset == 128


def test_bad_arguments_are_reported():
    with pytest.raises(TypeError, match="lr.*valid keys"):
        budget(**RECIPE, cpu=dict(lr=0.1), profile="cpu")
    with pytest.raises(ValueError, match="positive"):
        budget(epochs=0, batch_size=128, profile="full")


def test_describe():
    b = budget(**RECIPE, profile="cpu")
    assert b.describe() == "cpu profile: 3 epochs, batch 128, resize 96, 6,000 train / 2,000 test images"
    assert (Budget("full", 1, 256).describe()
            == "full profile: 1 epoch, batch 256, native size, all train / all test images")


def test_choose_device(monkeypatch):
    """CUDA first, then Apple's MPS, then the CPU; an explicit device always wins."""
    for cuda, mps, expected in [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        assert choose_device() == torch.device(expected)
        assert choose_device("cpu") == torch.device("cpu") and choose_device("cuda:1") == torch.device("cuda", 1)


def test_dry_run_caps_epochs_and_keeps_the_recipe(monkeypatch):
    monkeypatch.setenv("CNNLIB_DRY_RUN", "2")
    assert profiles.dry_run_steps() == 2
    assert budget(**RECIPE, profile="full") == Budget("full", 2, 128, 96, None, None)
    assert budget(epochs=1, batch_size=64, profile="full").epochs == 1
    assert budget(**RECIPE, profile="cpu") == Budget("cpu", 2, 128, 96, 6000, 2000)
    monkeypatch.delenv("CNNLIB_DRY_RUN")
    assert profiles.dry_run_steps() is None
    assert budget(**RECIPE, profile="full").epochs == 10


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_dry_run_rejects_what_is_no_step_count(monkeypatch, value):
    monkeypatch.setenv("CNNLIB_DRY_RUN", value)
    with pytest.raises(ValueError, match=f"CNNLIB_DRY_RUN='{value}'.*positive integer"):
        budget(**RECIPE, profile="full")
