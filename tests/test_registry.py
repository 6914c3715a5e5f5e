"""get_model / list_models."""

import pytest
import torch
from torch import nn

from cnnlib.models import AlexNet, ResNet, get_model, list_models

EXPECTED = {
    "alexnet", "googlenet", "small_inception", "small_resnet", "residual_net", "plain_net",
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152)), *(f"resnet{d}d" for d in (18, 34, 50, 101, 152)),
}  # fmt: skip


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_list_models():
    assert set(list_models()) == EXPECTED and list_models() == sorted(list_models())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_model_builds_with_ten_classes_and_one_channel(name):
    with torch.device("meta"):
        model = get_model(name, num_classes=10, in_channels=1)
    size = 28 if name.startswith(("small", "residual", "plain")) else 227 if name == "alexnet" else 224
    assert model.in_channels == 1
    assert model(torch.empty(2, 1, size, size, device="meta")).shape == (2, 10)


def test_defaults_and_variants_are_forwarded():
    with torch.device("meta"):
        assert count(get_model("resnet50")) == 25_557_032
        assert count(get_model("resnet50d")) == count(get_model("resnet50", stem_type="deep", avg_down=True))
        assert count(get_model("resnet50d", avg_down=False)) == count(get_model("resnet50", stem_type="deep"))
        small = get_model("alexnet", layout="small", lrn=False)
        assert isinstance(small, AlexNet) and small.layout == "small" and small.in_channels == 1
        assert get_model("small_resnet").in_channels == 1 and get_model("googlenet").in_channels == 3
        plain, residual = get_model("plain_net", depth=56), get_model("residual_net", depth=56)
        assert isinstance(plain, ResNet) and count(plain) == count(residual)
        assert plain.shortcut == "none" and residual.shortcut == "zero_pad"
        assert count(get_model("plain_net", depth=20, width=8)) == 67_906  # the degradation experiment's
        assert count(get_model("small_resnet", blocks=(2,) * 4, widths=(8, 16, 32, 64))) == 176_258  # a teacher


def test_unknown_names_and_arguments():
    with pytest.raises(ValueError, match="unknown model 'resnet05'.*'resnet50'"):
        get_model("resnet05")
    with pytest.raises(TypeError, match="lrn"):
        get_model("resnet18", lrn=True)


def test_lookup_hints_only_close_names_and_appends_advice():
    from cnnlib.models.registry import lookup

    table = {"mnist": 1, "fashion-mnist": 2}
    assert lookup(table, "mnist", "dataset") == 1
    with pytest.raises(ValueError) as error:
        lookup(table, "fashion_mnist", "dataset", advice="See --help.")
    assert str(error.value) == ("unknown dataset 'fashion_mnist'. Did you mean 'fashion-mnist'? "
                                "Known datasets: fashion-mnist, mnist. See --help.")
    with pytest.raises(ValueError, match=r"^unknown dataset 'cifar'\. Known datasets: fashion-mnist, mnist\.$"):
        lookup(table, "cifar", "dataset")
