"""The layer table: shapes, parameters, MACs against torch's flop counter, the arithmetic text."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlib.lessons.tables import layer_table
from cnnlib.models import get_model


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_alexnet_rows_show_the_arithmetic():
    with torch.device("meta"):
        model = get_model("alexnet")
    table = layer_table(model, (3, 227, 227))
    first = table.row("features.0")
    assert first.output_shape == (1, 96, 55, 55) and first.params == 34_944
    assert first.arithmetic == "(227 - 11 + 2*0) / 4 + 1 = 55"
    assert first.macs == 55 * 55 * 96 * 3 * 11 * 11
    assert table.row("features.3").arithmetic == "(55 - 3 + 2*0) / 2 + 1 = 27"
    assert table.row("classifier.6").macs == 4096 * 1000
    assert table.row("features.1").arithmetic == "" and table.row("features.1").macs == 0
    assert table.total_params == 60_965_224
    with torch.device("meta"):
        d2l = layer_table(get_model("alexnet", layout="d2l"), 224)  # an int: square, model's channels
    assert d2l.row("features.0").arithmetic == "floor((224 - 11 + 2*1) / 4) + 1 = 54"


@pytest.mark.parametrize(
    "name, variant, size",
    [
        ("alexnet", {"layout": "torchvision"}, 224),
        ("googlenet", {}, 96),
        ("resnet18", {}, 64),
        ("resnet50d", {}, 64),
        ("small_inception", {}, 28),
        ("small_resnet", {}, 28),
        ("alexnet", {"layout": "small"}, 28),
    ],
)
def test_totals_agree_with_the_model_and_torch_flop_counter(name, variant, size):
    with torch.device("meta"):  # shapes and counts only: nothing to compute
        model = get_model(name, **variant).eval()
    table = layer_table(model, size)
    assert table.total_params == count(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, model.in_channels, size, size, device="meta"))
    assert table.total_flops == 2 * table.total_macs == counter.get_total_flops()


def test_grouped_rows_by_depth():
    model = get_model("resnet18")
    leaves, stages, blocks = (layer_table(model, (3, 64, 64), depth=d) for d in (None, 1, 2))
    assert [row.name for row in stages] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc",
    ]  # fmt: skip
    assert stages.row("layer3").output_shape == (1, 256, 4, 4) and stages.row("layer3").type == "Sequential"
    assert stages.row("conv1").arithmetic == "floor((64 - 7 + 2*3) / 2) + 1 = 32"
    assert blocks.row("layer2.0").type == "BasicBlock"
    for table in (stages, blocks):
        assert table.total_params == leaves.total_params == 11_689_512
        assert table.total_macs == leaves.total_macs
    inception = layer_table(get_model("googlenet"), 224, depth=1)
    assert inception.row("inception3a").output_shape == (1, 256, 28, 28)  # the concatenation, not a branch


def test_a_layer_called_twice_counts_its_parameters_once_and_uncalled_layers_are_listed():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            return self.conv(self.conv(x))

    table = layer_table(Twice(), (2, 8, 8))
    assert [(row.name, row.params) for row in table] == [("conv", 38), ("conv", 0), ("unused", 20)]
    assert table.rows[-1].output_shape is None and "(not called)" in str(table)
    assert table.total_params == 58 and table.total_macs == 2 * 8 * 8 * 2 * 2 * 9


def test_rendering_as_text_html_and_dataframe():
    table = layer_table(get_model("small_inception"), 28)
    text = str(table)
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params", "MACs", "Arithmetic"]
    assert lines[-2].startswith("Total") and "73,952" in lines[-2]
    assert lines[-1].startswith("input [1, 1, 28, 28]: 73,952 parameters")
    assert "(28 - 5 + 2*0) / 1 + 1 = 24" in text
    html = table._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == len(table) + 2 and "73,952" in html
    frame = table.to_dataframe()
    assert list(frame.columns) == ["name", "type", "output_shape", "params", "macs", "arithmetic"]
    assert frame["params"].sum() == 73_952


def test_meta_models_and_errors():
    with torch.device("meta"):
        model = get_model("resnet152")
    table = layer_table(model, 224)  # nothing is computed
    assert table.total_params == 60_192_808
    assert table.total_macs == 11_513_626_624
    with pytest.raises(ValueError, match="input_size must be"):
        layer_table(model, (224, 224))
    with torch.device("meta"), pytest.raises(ValueError, match="too small for AlexNet.*63x63"):
        layer_table(get_model("alexnet", layout="torchvision"), 32)
