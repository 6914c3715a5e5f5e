"""AlexNet: the paper's parameter count layer by layer, torchvision's weights, d2l's layout,
the ablation switches, the 28x28 version, and the input errors."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from cnnlib.models.input_checks import smallest_input_size
from cnnlib.models.layers import LocalResponseNorm
from cnnlib.models import compare_with_reference
from cnnlib.models.alexnet import AlexNet, he_normal_init_


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def weighted(model: AlexNet) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_paper_parameters_layer_by_layer():
    with torch.device("meta"):
        model = AlexNet("paper")
    expected = [
        96 * 3 * 11 * 11 + 96,  # conv1: 34,944
        256 * 48 * 5 * 5 + 256,  # conv2, two groups of 48 input maps: 307,456
        384 * 256 * 3 * 3 + 384,  # conv3 sees both halves: 885,120
        384 * 192 * 3 * 3 + 384,  # conv4, grouped: 663,936
        256 * 192 * 3 * 3 + 256,  # conv5, grouped: 442,624
        256 * 6 * 6 * 4096 + 4096,  # fc6: 37,752,832
        4096 * 4096 + 4096,  # fc7: 16,781,312
        4096 * 1000 + 1000,  # fc8: 4,097,000
    ]
    with torch.device("meta"):  # the paper's layers (sec. 3.5, figure 2) built by torch itself
        reference = [
            nn.Conv2d(3, 96, 11, stride=4), nn.Conv2d(96, 256, 5, padding=2, groups=2),
            nn.Conv2d(256, 384, 3, padding=1), nn.Conv2d(384, 384, 3, padding=1, groups=2),
            nn.Conv2d(384, 256, 3, padding=1, groups=2),
            nn.Linear(256 * 6 * 6, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000),
        ]  # fmt: skip
    assert [count(m) for m in weighted(model)] == expected == [count(m) for m in reference]
    assert count(model) == sum(expected)
    assert [m.groups for m in weighted(model)[:5]] == [1, 2, 1, 2, 2]


def test_paper_layout_shapes_and_tricks():
    model = AlexNet("paper").eval()
    shapes, x = [], torch.zeros(1, 3, 227, 227)
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [
        (96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13),
        (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6),
    ]  # fmt: skip
    types = [type(m) for m in model.features]
    assert types[:4] == [nn.Conv2d, nn.ReLU, LocalResponseNorm, nn.MaxPool2d]  # LRN after the ReLU
    assert sum(t is LocalResponseNorm for t in types) == 2
    assert all(m.kernel_size == 3 and m.stride == 2 for m in model.features if isinstance(m, nn.MaxPool2d))
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert model(torch.zeros(2, 3, 227, 227)).shape == (2, 1000)


def test_torchvision_weights_load_and_give_identical_outputs():
    torch.manual_seed(0)
    reference = torchvision.models.alexnet()
    with torch.device("meta"):
        model = AlexNet("torchvision")
    assert count(model) == count(reference) == 61_100_840
    x = torch.randn(2, 3, 224, 224)
    assert compare_with_reference(model, reference, x) == 0.0


def test_d2l_layout():
    with torch.device("meta"):
        model = AlexNet("d2l")
    assert count(model) == 46_764_746
    assert model.in_channels == 1 and model.classifier[-1].out_features == 10
    assert model.classifier[0].in_features == 6400  # 256 x 5 x 5 for a 224 x 224 input
    assert [type(m) for m in model.classifier[:3]] == [nn.Linear, nn.ReLU, nn.Dropout]
    assert AlexNet("d2l")(torch.zeros(1, 1, 224, 224)).shape == (1, 10)


def test_switches_for_the_ablations():
    plain = AlexNet("paper", lrn=False, overlap=False, dropout=0.0, groups=1)
    assert not any(isinstance(m, LocalResponseNorm) for m in plain.modules())
    pools = [m for m in plain.features if isinstance(m, nn.MaxPool2d)]
    assert all(p.kernel_size == 2 and p.stride == 2 for p in pools)
    assert all(m.p == 0.0 for m in plain.modules() if isinstance(m, nn.Dropout))
    # 2/2 pooling still ends at 6x6 on 227 (55 -> 27 -> 13 -> 6), as the paper says
    assert plain.classifier[0].in_features == 256 * 6 * 6
    # for d2l's 224 input it ends at 6x6 instead of 5x5: the classifier follows the arithmetic
    assert AlexNet("d2l", overlap=False).classifier[0].in_features == 256 * 6 * 6
    assert AlexNet("small", dropout=False).classifier[2].p == 0.0
    assert AlexNet("small", input_size=32).classifier[0].in_features == 64 * 3 * 3
    with pytest.raises(ValueError, match="input_size=8 is too small for this AlexNet"):
        AlexNet("small", input_size=8)
    with pytest.raises(ValueError, match="unknown AlexNet layout 'alex'"):
        AlexNet("alex")


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model, x = AlexNet("small"), torch.randn(4, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_small_layout_learns_a_batch():
    torch.manual_seed(0)
    model = AlexNet("small", dropout=0.0)
    assert count(model) == 645_258
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_smallest_inputs():
    assert smallest_input_size(AlexNet("torchvision")) == 63  # torchvision's meta "min_size"
    assert smallest_input_size(AlexNet("small")) == 23


def test_input_too_small_names_the_layer_and_the_smallest_size():
    with pytest.raises(ValueError) as info:
        AlexNet("torchvision")(torch.zeros(1, 3, 40, 40))
    message = str(info.value)
    assert "too small" in message and "'features.12'" in message and "63x63" in message


def test_input_of_the_wrong_size_for_a_fixed_classifier():
    with pytest.raises(ValueError) as info:
        AlexNet("paper")(torch.zeros(1, 3, 224, 224))
    message = str(info.value)
    assert "'classifier.0'" in message and "expects 9216 features" in message and "6400" in message
    assert "from 227x227 to 258x258 work" in message


def test_wrong_channel_count_says_expected_versus_got():
    with pytest.raises(ValueError, match="expected 1 input channel, got 3 .* in_channels=3"):
        AlexNet("small")(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        AlexNet("small")(torch.zeros(1, 28, 28))


def test_tanh_replaces_every_relu():
    relu, tanh = AlexNet("small"), AlexNet("small", activation="tanh")
    kinds = [type(m) for m in tanh.modules() if isinstance(m, (nn.ReLU, nn.Tanh))]
    assert kinds == [nn.Tanh] * 7 == [nn.Tanh] * sum(isinstance(m, nn.ReLU) for m in relu.modules())
    assert count(tanh) == count(relu)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        AlexNet("small", activation="gelu")


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_he_normal_init_is_torchs_kaiming_normal_with_zero_biases(nonlinearity):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    reference = copy.deepcopy(net)
    torch.manual_seed(0)
    assert he_normal_init_(net, nonlinearity) is net
    torch.manual_seed(0)
    for layer in (reference[0], reference[2]):
        nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
    for ours, theirs in zip((net[0], net[2]), (reference[0], reference[2])):
        assert torch.equal(ours.weight, theirs.weight) and not ours.bias.any()


def test_channels_and_hidden_resize_the_layout():
    model = AlexNet("small", channels=(16, 32, 48, 48, 32), hidden=256)
    convs, linears = [m for m in weighted(model) if isinstance(m, nn.Conv2d)], weighted(model)[5:]
    assert [c.out_channels for c in convs] == [16, 32, 48, 48, 32]
    assert [(m.in_features, m.out_features) for m in linears] == [(32 * 2 * 2, 256), (256, 256), (256, 10)]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
