"""The cumulative ablation: which changes each row carries, and that every row is the run it claims."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlib.lessons.ablation import STACK, cumulative, run_ablation
from cnnlib.models import BasicBlock, ResNet
from cnnlib.training.tricks import DistillationLoss, training_recipe


def batches(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def tiny(resnet_d):
    stem = dict(stem_type="deep", stem_width=2, avg_down=True) if resnet_d else dict(stem_width=4)
    return ResNet(BasicBlock, (1, 1), 3, 1, widths=(4, 8), small_input=True, **stem)


def test_cumulative_rows_of_the_paper_stack():
    rows = cumulative()
    assert [label for label, _ in rows] == [label for label, _ in STACK]
    assert rows[0] == ("baseline", []) and rows[1] == ("+ ResNet-D", ["resnet-d"])
    assert rows[-1][1] == ["resnet-d", "warmup", "cosine", "zero-gamma", "no-bias-decay", "label-smoothing",
                           "mixup", "distillation"]
    assert all(len(b) == len(a) + len(STACK[i + 1][1]) for i, ((_, a), (_, b)) in enumerate(zip(rows, rows[1:])))
    assert cumulative([("a", ("mixup",)), ("b", ("mixup", "cosine"))])[1][1] == ["mixup", "cosine"]  # no repeats
    with pytest.raises(ValueError, match="dropblock"):
        cumulative([("baseline", ()), ("+ dropblock", ("dropblock",))])


def test_each_row_is_the_run_it_claims():
    """At learning rate 0 every row keeps the weights it starts from, so its figures are those of
    the initial network, computed here with torch's own losses: every row starts from the same
    seeded weights, "resnet-d" reaches the model builder and "label-smoothing" the loss."""
    train, test = batches(), batches(2, seed=1)
    built = []

    def make_model(resnet_d):
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        built.append((resnet_d, {k: v.clone() for k, v in model.state_dict().items()}))
        return model

    stack = [("baseline", ()), ("+ D", ("resnet-d",)), ("+ smoothing", ("label-smoothing",))]
    rows = run_ablation(make_model, train, test, 1, stack=stack, amp=None, lr=0.0, label_smoothing=0.1)
    assert [r["row"] for r in rows] == ["baseline", "+ D", "+ smoothing"]
    assert [resnet_d for resnet_d, _ in built] == [False, True, True]
    first = built[0][1]
    assert all(torch.equal(state[k], first[k]) for _, state in built for k in first)  # reseeded every row

    initial = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    initial.load_state_dict(first)
    with torch.no_grad():
        plain = torch.stack([F.cross_entropy(initial(x), y) for x, y in train]).mean().item()
        smoothed = torch.stack([F.cross_entropy(initial(x), y, label_smoothing=0.1) for x, y in train]).mean().item()
        test_acc = torch.cat([initial(x).argmax(1) == y for x, y in test]).float().mean().item()
    assert [r["train_loss"] for r in rows] == pytest.approx([plain, plain, smoothed], rel=1e-6)  # fp32 sums of 4
    assert [r["test_acc"] for r in rows] == pytest.approx([test_acc] * 3, abs=1e-12)
    assert all(set(r) == {"row", "test_acc", "train_loss", "seconds"} and r["seconds"] > 0 for r in rows)


def test_distillation_row_needs_and_uses_the_teacher():
    train, test = batches(), batches(2, seed=1)
    stack = [("baseline", ()), ("+ distillation", ("distillation",))]
    with pytest.raises(ValueError, match="teacher"):
        run_ablation(tiny, train, test, 1, stack=stack, lr=0.1)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    rows = run_ablation(tiny, train, test, 1, stack=stack, teacher=teacher, amp=None, lr=0.1)
    assert len(calls) == len(train)  # the teacher ran once per training batch of the distillation row only
    assert rows[0]["train_loss"] != rows[1]["train_loss"]
    assert isinstance(training_recipe(tiny(False), [], lr=0.1, epochs=1, steps_per_epoch=1,
                                      teacher=teacher)["loss_fn"], DistillationLoss)
