"""Architecture diagrams: the boxes are the module's layers with the shapes of a forward pass,
the edges its data flow (branches, concatenations, shortcuts into additions)."""

import functools

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from torch import nn  # noqa: E402

from cnnlib.lessons.diagrams import Diagram, diagram, draw  # noqa: E402
from cnnlib.models import get_model  # noqa: E402
from cnnlib.models.inception import Inception  # noqa: E402
from cnnlib.models.resnet import BasicBlock, ZeroPadShortcut, downsample_conv  # noqa: E402


def hooked_calls(model: nn.Module, x: torch.Tensor) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, class, output shape) of every leaf layer call in a plain forward pass: the reference."""
    calls = []

    def record(name, module, args, out):
        calls.append((name, type(module).__name__, tuple(out.shape[1:])))

    leaves = [(name, m) for name, m in model.named_modules() if not any(m.children())]
    hooks = [m.register_forward_hook(functools.partial(record, name)) for name, m in leaves]
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    return calls


def boxes(d: Diagram) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(n.name, n.kind, n.shape) for n in d.nodes]


def index(d: Diagram, name: str) -> int:
    """The first node of that name (a block's ReLU is called twice)."""
    return [n.name for n in d.nodes].index(name)


def path(d: Diagram, *names: str) -> bool:
    """Whether the diagram has an edge between each consecutive pair of named nodes."""
    return all((index(d, a), index(d, b)) in d.edges for a, b in zip(names, names[1:]))


@pytest.mark.parametrize("layout", ["paper", "torchvision", "d2l", "small"])
def test_alexnet_is_a_column_of_its_layers_with_their_shapes(layout):
    with torch.device("meta"):
        model = get_model("alexnet", layout=layout)
    d = diagram(model, model.input_size)
    x = torch.zeros(1, model.in_channels, model.input_size, model.input_size, device="meta")
    assert boxes(d) == [("input", "input", tuple(x.shape[1:]))] + hooked_calls(model, x)
    assert d.edges == [(i, i + 1) for i in range(len(d.nodes) - 1)]


def test_shapes_come_from_a_real_forward_pass():
    torch.manual_seed(0)
    model = get_model("alexnet", layout="small")
    assert boxes(diagram(model, 28))[1:] == hooked_calls(model, torch.randn(1, 1, 28, 28))


def test_inception_block_has_four_branches_into_one_concat():
    block = Inception(192, 64, 96, 128, 16, 32, 32)
    d = diagram(block, (192, 28, 28))
    assert [n.name for n in d.nodes] == [
        "input", "branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.0", "branch4.1", "concat",
    ]  # fmt: skip
    concat = index(d, "concat")
    assert d.predecessors(concat) == [index(d, n) for n in ("branch1", "branch2.1", "branch3.1", "branch4.1")]
    assert d.successors(0) == [index(d, n) for n in ("branch1", "branch2.0", "branch3.0", "branch4.0")]
    assert d.nodes[concat].shape == (64 + 128 + 32 + 32, 28, 28)
    assert path(d, "input", "branch4.0", "branch4.1", "concat")
    assert d.nodes[index(d, "branch4.0")].kind == "MaxPool2d"


class ThreeBranches(Inception):
    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


def test_removing_a_branch_removes_its_boxes():
    block = ThreeBranches(192, 64, 96, 128, 16, 32, 32)
    del block.branch4
    d = diagram(block, (192, 28, 28))
    assert not any(n.name.startswith("branch4") for n in d.nodes)
    assert len(d.predecessors(index(d, "concat"))) == 3
    assert d.nodes[index(d, "concat")].shape == (64 + 128 + 32, 28, 28)


def test_googlenet_stages_in_order():
    with torch.device("meta"):
        model = get_model("googlenet")
    d = diagram(model, 224)
    assert [n.name for n in d.nodes[1:]] == [name for name, _ in model.named_children()]
    assert d.nodes[index(d, "inception3a")].shape == (256, 28, 28)
    assert d.nodes[index(d, "inception5b")].shape == (1024, 7, 7)


def test_projection_shortcut_goes_through_conv_and_bn_into_the_add():
    block = BasicBlock(64, 128, stride=2, downsample=downsample_conv(64, 128, 2))
    d = diagram(block, (64, 56, 56))
    assert path(d, "input", "conv1", "bn1", "relu", "conv2", "bn2", "add")
    assert path(d, "input", "downsample.0", "downsample.1", "add")
    assert [d.nodes[index(d, f"downsample.{i}")].kind for i in (0, 1)] == ["Conv2d", "BatchNorm2d"]
    assert d.nodes[-1].kind == "ReLU"
    assert d.predecessors(len(d.nodes) - 1) == [index(d, "add")]  # the ReLU after the sum
    assert d.nodes[index(d, "add")].shape == (128, 28, 28)


def test_identity_shortcut_is_a_direct_edge():
    d = diagram(BasicBlock(64, 64), (64, 56, 56))
    assert (0, index(d, "add")) in d.edges
    assert not any(n.name.startswith("downsample") for n in d.nodes)


def test_zero_pad_shortcut_and_plain_block():
    padded = diagram(BasicBlock(16, 32, 2, ZeroPadShortcut(16, 32, 2)), (16, 8, 8))
    assert path(padded, "input", "downsample", "add")
    assert padded.nodes[index(padded, "downsample")].shape == (32, 4, 4)
    plain = diagram(BasicBlock(16, 16, residual=False), (16, 8, 8))
    kinds = ["input", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU"]
    assert [n.kind for n in plain.nodes] == kinds
    assert plain.edges == [(i, i + 1) for i in range(6)]


def test_resnet_d_downsample_pools_before_the_1x1_conv():
    with torch.device("meta"):
        resnet_b, resnet_d = get_model("resnet50"), get_model("resnet50d")
    b, d = (diagram(m.layer2[0], (256, 56, 56)) for m in (resnet_b, resnet_d))
    assert path(d, "input", "downsample.0", "downsample.1", "downsample.2", "add")
    assert [d.nodes[index(d, f"downsample.{i}")].kind for i in range(3)] == ["AvgPool2d", "Conv2d", "BatchNorm2d"]
    assert d.nodes[index(d, "downsample.0")].shape == (256, 28, 28)  # halved before the 1x1
    projection = b.nodes[index(b, "downsample.0")]  # ResNet-B: the strided 1x1 itself
    assert (projection.kind, projection.shape) == ("Conv2d", (512, 28, 28))
    assert projection.label == "downsample.0 · Conv2d 1x1/2"


def test_stems_until_the_maxpool():
    with torch.device("meta"):
        resnet_b, resnet_d = get_model("resnet50"), get_model("resnet50d")
    stem_b, stem_d = diagram(resnet_b, 224, until="maxpool"), diagram(resnet_d, 224, until="maxpool")
    assert [n.name for n in stem_b.nodes] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert [n.name for n in stem_d.nodes] == ["input", *(f"conv1.{i}" for i in range(7)), "bn1", "relu", "maxpool"]
    assert stem_b.nodes[-1].shape == stem_d.nodes[-1].shape == (64, 56, 56)


def test_depth_opens_blocks_and_sequentials_are_always_opened():
    model = get_model("small_resnet")
    blocks = diagram(model, 28)
    assert [n.name for n in blocks.nodes if n.kind == "BasicBlock"] == [f"layer{i}.0" for i in range(1, 5)]
    opened = diagram(model, 28, depth=2)
    assert "layer2.0.downsample.0" in [n.name for n in opened.nodes]
    assert sum(n.kind == "add" for n in opened.nodes) == 4
    assert "maxpool" not in [n.name for n in blocks.nodes]  # an Identity does nothing and is not drawn


def test_model_is_left_as_it_was():
    model = get_model("small_resnet").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    diagram(model, 28)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="until='stem'.*conv1"):
        diagram(get_model("small_resnet"), 28, until="stem")
    with pytest.raises(ValueError, match="depth"):
        diagram(get_model("small_resnet"), 28, depth=0)
    with pytest.raises(ValueError, match="no layers"):
        diagram(nn.ReLU(), (1, 4, 4))


def test_draw_gives_one_box_per_node_deterministically():
    single, inception = diagram(BasicBlock(8, 8), (8, 6, 6)), diagram(Inception(8, 2, 2, 2, 2, 2, 2), (8, 6, 6))
    fig = draw(single)
    assert isinstance(fig, Figure)
    assert sum(isinstance(p, FancyBboxPatch) for ax in fig.axes for p in ax.patches) == len(single.nodes)
    both = draw({"block": single, "inception": inception})
    assert len(both.axes) == 2
    # input, conv1, bn1, relu, conv2, bn2, +, relu | input, 7 layers in four branches, concat
    assert [sum(isinstance(p, FancyBboxPatch) for p in ax.patches) for ax in both.axes] == [8, 9]
    assert draw(inception).to_png() == draw(inception).to_png()
    with pytest.raises(ValueError, match="no diagrams"):
        draw({})
