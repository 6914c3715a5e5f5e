"""The cumulative ablation: which changes each row carries, and that every row is the run it claims."""

import pytest
import torch
from torch import nn

from cnnlib.lessons.ablation import STACK, cumulative, run_ablation
from cnnlib.models import BasicBlock, ResNet
from cnnlib.training.loop import fit, seed_everything
from cnnlib.training.tricks import DistillationLoss, Mixup, training_recipe


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
    train, test = batches(), batches(2, seed=1)
    built = []

    def make_model(resnet_d):
        built.append(resnet_d)
        return tiny(resnet_d)

    stack = [("baseline", ()), ("+ D", ("resnet-d",)), ("+ cosine, mixup", ("cosine", "mixup"))]
    rows = run_ablation(make_model, train, test, 2, stack=stack, amp=None, lr=0.1, weight_decay=1e-4, num_classes=3)
    assert built == [False, True, True] and [r["row"] for r in rows] == ["baseline", "+ D", "+ cosine, mixup"]
    assert all(set(r) == {"row", "test_acc", "train_loss", "seconds"} and r["seconds"] > 0 for r in rows)

    # the last row, by hand: same seed, same model, same recipe
    seed_everything(0)
    model = tiny(True)
    setup = training_recipe(model, ["cosine", "mixup"], lr=0.1, weight_decay=1e-4, num_classes=3, epochs=2,
                            steps_per_epoch=len(train))
    assert isinstance(setup["batch_transform"], Mixup)
    history = fit(model, train, test, 2, amp=None, progress=False, **setup)
    assert (rows[-1]["test_acc"], rows[-1]["train_loss"]) == (history.test_acc[-1], history.train_loss[-1])


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
