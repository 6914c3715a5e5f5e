"""ResNets from one class: torchvision's five, the Bag of Tricks variants, the plain twins, and
the small networks of one builder (``small_resnet``, ``cifar_resnet``)."""

import hashlib
from functools import partial

import pytest
import torch
import torchvision
from torch import nn

from cnnlib.models.input_checks import smallest_input_size
from cnnlib.models import compare_with_reference
from cnnlib.models.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    ZeroPadShortcut,
    cifar_resnet,
    resnet,
    small_resnet,
)

RESNET_D_ARGS = dict(stem_type="deep", avg_down=True)
TORCHVISION = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
RESNET_D = {18: 11_708_744, 34: 21_816_904, 50: 25_576_264, 101: 44_568_392, 152: 60_212_040}


small_resnet_d = partial(small_resnet, **RESNET_D_ARGS)  # the deep stem and the average-pool shortcut

# Measured from the five previous builders of small ResNets (models.resnet.small_resnet and
# cifar_resnet, degradation.cifar_network, bag_of_tricks.network, speedrun_recipe.build_model)
# before they became calls of ``small_resnet``: parameters, state_dict entries and ``layout``.
# Equal layouts keep the saved weights and the committed results loadable.
SMALL_NETWORKS = {
    # degradation: the paper's width (16), the experiment's (8) and its smoke profile's (4)
    "cifar 20 w16": (partial(cifar_resnet, 20, width=16), 269_434, 116, "6c8cac142172ad38"),
    "cifar 56 w16": (partial(cifar_resnet, 56, width=16), 852_730, 332, "9db38088a06803d3"),
    "cifar 20 w8": (partial(cifar_resnet, 20, width=8), 67_906, 116, "c791c5358ed50698"),
    "cifar 56 w8": (partial(cifar_resnet, 56, width=8), 214_402, 332, "3f0fb32230975efd"),
    "cifar 8 w4": (partial(cifar_resnet, 8, width=4), 4_934, 44, "ec4f24955dd9d998"),
    "cifar 14 w4": (partial(cifar_resnet, 14, width=4), 11_094, 80, "9d6d0a3eaa9070a1"),
    # the registry's residual_net / plain_net with their defaults (width 16), and on RGB images
    "cifar 8": (partial(cifar_resnet, 8), 75_002, 44, "36095255352a664d"),
    "cifar 20 rgb": (partial(cifar_resnet, 20, in_channels=3), 269_722, 116, "28a0d5e26aad4d86"),
    "cifar 56 rgb": (partial(cifar_resnet, 56, in_channels=3), 853_018, 332, "58531dd8472cd8f1"),
    "cifar 110 rgb": (partial(cifar_resnet, 110, in_channels=3), 1_727_962, 656, "d12c35714c8d1fac"),
    # bag_of_tricks: student (1 block per stage) and teacher (2), without and with ResNet-D, w = 8 and 4
    "tricks student w8": (partial(small_resnet, (1,) * 4, (8, 16, 32, 64)), 77_858, 74, "bd38bd00a8ecbfb3"),
    "tricks student-D w8": (partial(small_resnet_d, (1,) * 4, (8, 16, 32, 64)), 78_270, 86, "f07ceba58101434e"),
    "tricks teacher w8": (partial(small_resnet, (2,) * 4, (8, 16, 32, 64)), 176_258, 122, "a8c8700fdbe50dd2"),
    "tricks teacher-D w8": (partial(small_resnet_d, (2,) * 4, (8, 16, 32, 64)), 176_670, 134, "e27ec0a2771a1da6"),
    "tricks student w4": (partial(small_resnet, (1,) * 4, (4, 8, 16, 32)), 19_830, 74, "ea62dff1a91eea24"),
    "tricks student-D w4": (partial(small_resnet_d, (1,) * 4, (4, 8, 16, 32)), 19_928, 86, "3db6f82ef57e46cc"),
    "tricks teacher w4": (partial(small_resnet, (2,) * 4, (4, 8, 16, 32)), 44_550, 122, "b1ad153f50ccf543"),
    "tricks teacher-D w4": (partial(small_resnet_d, (2,) * 4, (4, 8, 16, 32)), 44_648, 134, "ee8849ad37033ff9"),
    # the registry's small_resnet and the speedrun's CONFIG (blocks 1, 1, 1, 1, widths 16 to 128)
    "small": (small_resnet, 308_538, 74, "46ad4996b773cd8f"),
}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layout(model: nn.Module) -> str:
    """The first 16 hex digits of the SHA-256 of the state_dict's "name shape" lines, in order."""
    lines = "\n".join(f"{name} {tuple(tensor.shape)}" for name, tensor in model.state_dict().items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(SMALL_NETWORKS))
def test_small_networks_keep_their_parameters_and_state_dict(name):
    build, parameters, entries, expected_layout = SMALL_NETWORKS[name]
    with torch.device("meta"):
        model = build()
    assert (count(model), len(model.state_dict()), layout(model)) == (parameters, entries, expected_layout)
    if name.startswith("cifar"):
        with torch.device("meta"):
            plain = build(shortcut="none")
        assert (count(plain), layout(plain)) == (parameters, expected_layout)  # the degradation twins


def test_small_resnet_is_resnet18_layout_at_small_widths():
    """Against torchvision: ``small_resnet`` at ResNet-18's blocks and widths is torchvision's
    resnet18 with a 3x3 stride-1 stem and no max-pool."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10)
    reference.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    reference.maxpool = nn.Identity()
    model = small_resnet((2, 2, 2, 2), (64, 128, 256, 512), 10, 3)
    assert compare_with_reference(model, reference, torch.randn(2, 3, 32, 32)) <= 1e-5


def test_resnet_d_small_stem_halves_the_first_width():
    model = small_resnet_d(widths=(8, 16, 32, 64))
    convs = [m for m in model.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [(1, 4, (1, 1)), (4, 4, (1, 1)), (4, 8, (1, 1))]
    assert model.bn1.num_features == 8 and model.layer1[0].downsample is None
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    with pytest.raises(ValueError, match="widths\\[0\\] must be even"):
        small_resnet(widths=(5, 10, 20, 40), stem_type="deep")


def test_norm_layer_replaces_every_batchnorm():
    """Against torchvision's own ``norm_layer``: the same network with GroupNorm, including the
    projection shortcuts."""
    group_norm = partial(nn.GroupNorm, 4)
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(norm_layer=group_norm)
    model = resnet(18, norm_layer=group_norm)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert compare_with_reference(model, reference, torch.randn(2, 3, 64, 64)) <= 1e-5
    small = small_resnet_d(norm_layer=group_norm)
    norms = [m for m in small.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == sum(isinstance(m, nn.BatchNorm2d) for m in small_resnet_d().modules())
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("depth", sorted(TORCHVISION))
def test_equals_torchvision(depth):
    torch.manual_seed(depth)
    reference = getattr(torchvision.models, f"resnet{depth}")()
    with torch.device("meta"):
        model = resnet(depth)
    assert count(model) == count(reference) == TORCHVISION[depth]
    x = torch.randn(1, 3, 64, 64)
    assert compare_with_reference(model, reference, x) <= 1e-5
    assert model(x).abs().max() > 1e-2


@pytest.mark.parametrize("depth", sorted(RESNET_D))
def test_resnet_d_parameter_counts(depth):
    with torch.device("meta"):
        model = resnet(depth, stem_type="deep", avg_down=True)
    assert count(model) == RESNET_D[depth]


def test_resnet_c_stem_is_three_3x3_convolutions_32_32_64():
    with torch.device("meta"):
        model = resnet(50, stem_type="deep")
    convs = [m for m in model.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1)),
    ]  # fmt: skip
    assert model.bn1.num_features == 64


def test_resnet_d_projection_pools_before_the_1x1():
    with torch.device("meta"):
        model = resnet(50, stem_type="deep", avg_down=True)
    assert isinstance(model.layer1[0].downsample[0], nn.Identity)  # stride 1: nothing to pool
    for stage in (model.layer2, model.layer3, model.layer4):
        pool, conv, bn = stage[0].downsample
        assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2
        assert pool.ceil_mode and not pool.count_include_pad
        assert conv.kernel_size == (1, 1) and conv.stride == (1, 1) and isinstance(bn, nn.BatchNorm2d)
    odd = torch.empty(1, 3, 65, 65, device="meta")
    assert model(odd).shape == (1, 1000)  # odd sizes: ceil_mode keeps both paths the same size


def test_stride_placement_b_versus_the_papers():
    torch.manual_seed(0)
    b, a = resnet(50).eval(), resnet(50, stride_on="1x1").eval()
    assert b.layer2[0].conv2.stride == (2, 2) and b.layer2[0].conv1.stride == (1, 1)
    assert a.layer2[0].conv1.stride == (2, 2) and a.layer2[0].conv2.stride == (1, 1)
    assert count(a) == count(b)
    a.load_state_dict(b.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (a(x) - b(x)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="applies to Bottleneck"):
        resnet(18, stride_on="1x1")


def test_projection_only_where_needed():
    with torch.device("meta"):
        r18, r50 = resnet(18), resnet(50)

    def shortcuts(model):
        return [name for name, m in model.named_modules() if name.endswith("downsample")]

    assert shortcuts(r18) == ["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"]
    assert shortcuts(r50) == [f"layer{i}.0.downsample" for i in range(1, 5)]  # 64 -> 256 in layer1


def test_zero_init_residual_makes_blocks_start_as_identity():
    model = resnet(50, zero_init_residual=True)
    assert all(m.bn3.weight.abs().sum() == 0 for m in model.modules() if isinstance(m, Bottleneck))
    model18 = resnet(18, zero_init_residual=True)
    assert all(m.bn2.weight.abs().sum() == 0 for m in model18.modules() if isinstance(m, BasicBlock))
    block = model18.layer1[1].eval()
    x = torch.rand(2, 64, 8, 8)  # non-negative, as the output of a ReLU
    assert torch.equal(block(x), x)
    with pytest.raises(ValueError, match="plain network"):
        cifar_resnet(20, shortcut="none", zero_init_residual=True)


def test_basic_block_relu_after_the_addition():
    torch.manual_seed(0)
    block = BasicBlock(8, 8).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        assert torch.equal(block(x), torch.relu(branch + x))


def test_plain_twin_for_the_degradation_experiment():
    for depth in (20, 56):
        residual, plain = cifar_resnet(depth), cifar_resnet(depth, shortcut="none")
        assert count(residual) == count(plain)  # option A shortcuts have no parameters
        weighted = [m for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(weighted) == depth
        assert not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())
        assert all(not m.residual for m in plain.modules() if isinstance(m, BasicBlock))
    assert count(cifar_resnet(20)) == 269_434  # the paper's 0.27M
    assert count(cifar_resnet(56)) == 852_730  # 0.85M
    torch.manual_seed(0)
    residual, plain = cifar_resnet(20).eval(), cifar_resnet(20, shortcut="none").eval()
    plain.load_state_dict(residual.state_dict(), strict=True)
    x = torch.randn(2, 1, 28, 28)
    assert residual(x).shape == plain(x).shape == (2, 10)
    assert not torch.allclose(residual(x), plain(x))
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_resnet(21)


def test_zero_pad_shortcut_is_the_papers_option_a():
    shortcut = ZeroPadShortcut(16, 32, 2)
    x = torch.randn(2, 16, 7, 7)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and out[:, 16:].abs().sum() == 0


def test_small_inputs():
    model = resnet(18, num_classes=10, in_channels=1, small_input=True).eval()
    assert isinstance(model.maxpool, nn.Identity) and model.conv1.kernel_size == (3, 3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    deep = resnet(50, num_classes=10, in_channels=1, small_input=True, stem_type="deep", avg_down=True).eval()
    assert deep(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    small = small_resnet()
    assert count(small) == 308_538
    assert small(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    assert smallest_input_size(resnet(50)) == 1  # torchvision's meta "min_size" is (1, 1)


def test_argument_errors():
    with pytest.raises(ValueError, match="one width per stage"):
        ResNet(BasicBlock, (2, 2), widths=(16, 32, 64))
    with pytest.raises(ValueError, match="one width per stage"):
        small_resnet((), ())
    with pytest.raises(ValueError, match="stem_type must be one of"):
        resnet(18, stem_type="wide")
    with pytest.raises(ValueError, match="shortcut must be one of"):
        small_resnet(shortcut="identity")
    with pytest.raises(ValueError, match="stride_on must be one of"):
        resnet(50, stride_on="7x7")
    with pytest.raises(ValueError, match="avg_down"):
        cifar_resnet(20, avg_down=True)
    with pytest.raises(ValueError, match="depth must be one of"):
        resnet(42)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        resnet(18)(torch.zeros(1, 1, 32, 32))


def test_option_c_projects_every_shortcut_and_needs_projection():
    from cnnlib.models.resnet import needs_projection

    assert needs_projection(64, 64, 2) and needs_projection(64, 256, 1) and not needs_projection(64, 64, 1)
    with torch.device("meta"):
        b, c = resnet(18), resnet(18, shortcut="projection_all")
    blocks = [m for m in c.modules() if isinstance(m, BasicBlock)]
    assert all(m.downsample is not None for m in blocks)
    identity_blocks = [m for m in b.modules() if isinstance(m, BasicBlock) and m.downsample is None]
    extra = sum(m.conv2.out_channels * (m.conv2.out_channels + 2) for m in identity_blocks)
    assert count(c) - count(b) == extra  # a 1x1 conv and a BatchNorm per identity block
    model = resnet(18, shortcut="projection_all").eval()
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
