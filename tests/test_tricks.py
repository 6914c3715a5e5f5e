"""Bag of Tricks refinements: closed forms from the paper and equality with torch's own versions."""

import copy
import math
import random

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.optim import lr_scheduler
from torchvision.transforms import v2

from tolerance import assert_close, rounding

from cnnlib.training.tricks import (
    TRICKS,
    DistillationLoss,
    LabelSmoothingCrossEntropy,
    Mixup,
    label_smoothing_cross_entropy,
    linear_scaled_lr,
    linear_warmup_factor,
    no_bias_decay,
    optimal_logit_gap,
    smooth_targets,
    training_recipe,
    warmup_cosine,
    warmup_cosine_factor,
    warmup_steps_within,
    zero_gamma,
)


def lrs(scheduler, optimizer, steps):
    """The lr used by each of `steps` batches (scheduler stepped after every batch)."""
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def sgd(lr=0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


# --- linear scaling, warmup, cosine --------------------------------------------------------


def test_linear_scaled_lr():
    assert linear_scaled_lr(256) == pytest.approx(0.1)
    assert linear_scaled_lr(1024) == pytest.approx(0.4)
    assert linear_scaled_lr(64, base_lr=0.05, base_batch=128) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="positive"):
        linear_scaled_lr(0)


def test_warmup_cosine_closed_form():
    m, T = 10, 110  # cosine over T - m = 100 steps
    assert warmup_cosine_factor(0, m, T) == pytest.approx(1 / m)  # first batch: close to 0
    assert warmup_cosine_factor(4, m, T) == pytest.approx(5 / m)
    assert warmup_cosine_factor(m - 1, m, T) == 1.0  # warmup reaches the base rate
    assert warmup_cosine_factor(m, m, T) == 1.0  # cosine starts at the base rate
    assert warmup_cosine_factor(m + 50, m, T) == pytest.approx(0.5, abs=1e-12)  # midpoint
    assert warmup_cosine_factor(T - 1, m, T) == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert warmup_cosine_factor(T, m, T) == pytest.approx(0.0, abs=1e-15)
    assert warmup_cosine_factor(T + 7, m, T) == pytest.approx(0.0, abs=1e-15)  # held at 0
    for bad in [(-1, 10), (10, 10), (11, 10)]:
        with pytest.raises(ValueError, match="warmup_steps"):
            warmup_cosine_factor(0, *bad)


def test_warmup_cosine_scheduler_closed_form():
    opt = sgd(0.4)
    got = lrs(warmup_cosine(opt, warmup_steps=4, total_steps=24), opt, 25)
    assert got[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert got[14] == pytest.approx(0.2, abs=1e-12)  # half way through the 20 cosine steps
    assert got[24] == pytest.approx(0.0, abs=1e-15)
    assert all(a >= b for a, b in zip(got[4:], got[5:]))  # decreasing after warmup


@pytest.mark.parametrize("total", [50, 1000])
def test_cosine_equals_torch_cosine_annealing(total):
    opt1, opt2 = sgd(), sgd()
    ours = lrs(warmup_cosine(opt1, 0, total), opt1, total + 1)
    ref = lrs(lr_scheduler.CosineAnnealingLR(opt2, T_max=total), opt2, total + 1)
    assert max(abs(a - b) for a, b in zip(ours, ref)) < 1e-12


def test_warmup_equals_torch_linear_then_cosine():
    m, total = 5, 60
    opt1, opt2 = sgd(), sgd()
    ref = lr_scheduler.SequentialLR(
        opt2,
        [lr_scheduler.LinearLR(opt2, 1 / m, 1.0, total_iters=m - 1), lr_scheduler.CosineAnnealingLR(opt2, total - m)],
        milestones=[m],
    )
    ours = lrs(warmup_cosine(opt1, m, total), opt1, total + 1)
    assert max(abs(a - b) for a, b in zip(ours, lrs(ref, opt2, total + 1))) < 1e-12


def test_linear_warmup_equals_torch_linear_lr():
    """The ramp that warmup alone, warmup with cosine and lesson 06's step schedule share."""
    m, steps = 5, 12
    opt1, opt2 = sgd(), sgd()
    ours = lrs(lr_scheduler.LambdaLR(opt1, lambda step: linear_warmup_factor(step, m)), opt1, steps)
    ref = lrs(lr_scheduler.LinearLR(opt2, 1 / m, 1.0, total_iters=m - 1), opt2, steps)
    assert max(abs(a - b) for a, b in zip(ours, ref)) < 1e-12
    recipe = training_recipe(nn.Linear(2, 2), ["warmup"], lr=0.1, epochs=2, steps_per_epoch=6, warmup_epochs=5 / 6)
    assert lrs(recipe["scheduler"], recipe["optimizer"], steps) == pytest.approx(ref, abs=1e-12)


def test_warmup_cosine_scales_every_param_group():
    opt = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 0.2},
                           {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.02}])
    sched = warmup_cosine(opt, 2, 10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.01])
    with pytest.raises(ValueError):
        warmup_cosine(opt, 10, 10)
    assert sched.state_dict()["last_epoch"] == 0  # a checkpoint can hold it


# --- label smoothing -----------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch(eps):
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 10, generator=g) * 3, torch.randint(0, 10, (16,), generator=g)
    ref = nn.CrossEntropyLoss(label_smoothing=eps)
    terms = 16 * 10  # a mean over 16 examples of sums over 10 classes
    assert_close(LabelSmoothingCrossEntropy(eps)(logits, y), ref(logits, y), terms)
    probs = torch.softmax(torch.randn(16, 10, generator=g), 1)  # soft (e.g. mixup) targets
    assert_close(label_smoothing_cross_entropy(logits, probs, eps), ref(logits, probs), terms)
    none = label_smoothing_cross_entropy(logits, y, eps, reduction="none")
    assert_close(none, nn.CrossEntropyLoss(label_smoothing=eps, reduction="none")(logits, y), 10)
    assert_close(label_smoothing_cross_entropy(logits, y, eps, reduction="sum"), none.sum(), terms)
    with pytest.raises(ValueError, match="reduction"):
        label_smoothing_cross_entropy(logits, y, eps, reduction="avg")


def test_smoothed_targets_of_both_conventions():
    y = torch.tensor([2])
    torch_q = smooth_targets(y, 5, 0.1, "torch")
    paper_q = smooth_targets(y, 5, 0.1, "paper")
    assert torch.allclose(torch_q, torch.tensor([[0.02, 0.02, 0.92, 0.02, 0.02]]))
    assert torch.allclose(paper_q, torch.tensor([[0.025, 0.025, 0.9, 0.025, 0.025]]))
    soft = torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0]])
    assert torch.allclose(smooth_targets(soft, 5, 0.1, "paper").sum(1), torch.ones(1))
    with pytest.raises(ValueError, match="convention"):
        smooth_targets(y, 5, 0.1, "timm")
    with pytest.raises(ValueError, match="eps"):
        smooth_targets(y, 5, 1.5)


@pytest.mark.parametrize("convention", ["torch", "paper"])
def test_label_smoothing_closed_forms(convention):
    K, eps = 10, 0.1
    y = torch.tensor([0, 3, 7])
    uniform = torch.zeros(3, K)
    assert label_smoothing_cross_entropy(uniform, y, eps, convention).item() == pytest.approx(math.log(K))
    # Sec 5.2: the minimum sits at z_y - z_i = log(q_y / q_i); there softmax(z) = q, the gradient
    # vanishes and the loss is the entropy of q.
    gap = optimal_logit_gap(eps, K, convention)
    z = (gap * F.one_hot(y, K).float()).requires_grad_()
    loss = label_smoothing_cross_entropy(z, y, eps, convention)
    loss.backward()
    # the gradient softmax(z) - q (over a batch of 3) vanishes up to a K-term softmax's rounding
    assert z.grad.abs().max().item() <= rounding(torch.float32, K)
    q = smooth_targets(y, K, eps, convention)
    assert loss.item() == pytest.approx(-(q * q.log()).sum(1).mean().item(), rel=rounding(torch.float32, 3 * K))
    for other in (gap - 0.5, gap + 0.5):
        assert label_smoothing_cross_entropy(other * F.one_hot(y, K).float(), y, eps, convention) > loss


def test_optimal_logit_gap_paper_figure():
    # ImageNet, K = 1000, eps = 0.1: the paper's theoretical gap of about 9.1.
    assert optimal_logit_gap(0.1, 1000, "paper") == pytest.approx(math.log(999 * 0.9 / 0.1))
    assert optimal_logit_gap(0.1, 1000, "paper") == pytest.approx(9.104, abs=1e-3)
    assert optimal_logit_gap(0.1, 1000, "torch") == pytest.approx(math.log(9001))


# --- mixup ---------------------------------------------------------------------------------


def test_mixup_equals_torchvision_mixup(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 12, 12, generator=g), torch.randint(0, 10, (8,), generator=g)
    ours = Mixup(alpha=0.2, num_classes=10, seed=1)
    for _ in range(3):
        xm, ym = ours(x, y)
        ref = v2.MixUp(alpha=0.2, num_classes=10)
        monkeypatch.setattr(ref._dist, "sample", lambda shape=(), lam=ours.lam: torch.tensor([lam]))
        xr, yr = ref(x, y)
        assert torch.equal(xm, xr) and torch.equal(ym, yr)


def test_mixup_mix_equals_torchvision_with_the_same_draw():
    # v2.MixUp draws lam once per call, from Beta(alpha, alpha) on torch's global generator
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 12, 12, generator=g), torch.randint(0, 10, (8,), generator=g)
    torch.manual_seed(3)
    lam = float(torch.distributions.Beta(torch.tensor([0.2]), torch.tensor([0.2])).sample(()))
    torch.manual_seed(3)
    xr, yr = v2.MixUp(alpha=0.2, num_classes=10)(x, y)
    xm, ym = Mixup(alpha=0.2, num_classes=10).mix(x, y, lam)
    assert torch.equal(xm, xr) and torch.equal(ym, yr)


def test_mixup_closed_form_and_seeding():
    x = torch.arange(3.0).view(3, 1, 1, 1)
    y = torch.tensor([0, 1, 2])
    mix = Mixup(alpha=0.2, num_classes=4, seed=7)
    xm, ym = mix(x, y)
    lam = random.Random(7).betavariate(0.2, 0.2)  # the generator is the standard library's
    assert mix.lam == lam
    expected = [lam * 0 + (1 - lam) * 2, lam * 1 + (1 - lam) * 0, lam * 2 + (1 - lam) * 1]  # partner: the previous one
    assert torch.allclose(xm.flatten(), torch.tensor(expected))
    assert torch.allclose(ym[0], torch.tensor([lam, 0.0, 1 - lam, 0.0]))
    assert ym.dtype == torch.float32 and torch.allclose(ym.sum(1), torch.ones(3))
    again = Mixup(alpha=0.2, num_classes=4, seed=7)(x, y)  # same seed, same draws
    assert torch.equal(again[0], xm)
    soft = Mixup(alpha=0.2, num_classes=4, seed=7)(x, ym)  # already-soft targets are mixed again
    assert torch.allclose(soft[1].sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0)
    with pytest.raises(TypeError, match="floating"):
        mix(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), y)


def test_mixup_soft_targets_train_with_cross_entropy():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    xm, ym = Mixup(alpha=0.2, num_classes=3)(x, y)
    loss = nn.CrossEntropyLoss()(model(xm), ym)
    loss.backward()
    assert loss.item() > 0 and model[1].weight.grad.abs().sum() > 0
    assert_close(LabelSmoothingCrossEntropy(0.1)(model(xm), ym), nn.CrossEntropyLoss(label_smoothing=0.1)(model(xm), ym),
                 terms=16 * 3)


# --- distillation --------------------------------------------------------------------------


def fixed_teacher(logits):
    """A module whose output is `logits` for every input of shape [B, 1]."""
    teacher = nn.Linear(1, len(logits))
    with torch.no_grad():
        teacher.weight.zero_()
        teacher.bias.copy_(torch.tensor(logits))
    return teacher


def test_distillation_closed_form():
    T, alpha = 2.0, 0.3
    loss_fn = DistillationLoss(fixed_teacher([math.log(9.0), 0.0]), temperature=T, alpha=alpha)
    assert loss_fn.uses_inputs is True
    z, y, inputs = torch.zeros(1, 2), torch.tensor([0]), torch.zeros(1, 1)
    p = torch.tensor([3 / 4, 1 / 4])  # softmax([log 9, 0] / 2) = softmax([log 3, 0])
    kl = (p * (p / 0.5).log()).sum().item()
    expected = (1 - alpha) * math.log(2) + alpha * T * T * kl
    assert loss_fn(z, y, inputs).item() == pytest.approx(expected, rel=rounding(torch.float32, 2 * 2))


def test_distillation_with_label_smoothing_closed_form():
    T, alpha, eps = 2.0, 0.3, 0.2
    loss_fn = DistillationLoss(fixed_teacher([math.log(9.0), 0.0]), temperature=T, alpha=alpha, label_smoothing=eps)
    z, y, inputs = torch.tensor([[1.0, -1.0]]), torch.tensor([0]), torch.zeros(1, 1)
    q = torch.tensor([1 - eps + eps / 2, eps / 2])  # torch's smoothed target
    hard = -(q * torch.log_softmax(z[0], 0)).sum().item()
    p, s = torch.tensor([3 / 4, 1 / 4]), torch.softmax(z[0] / T, 0)
    kl = (p * (p / s).log()).sum().item()
    assert loss_fn(z, y, inputs).item() == pytest.approx((1 - alpha) * hard + alpha * T * T * kl,
                                                         rel=rounding(torch.float32, 2 * 2))
    assert "label_smoothing=0.2" in repr(loss_fn)
    with pytest.raises(ValueError, match="label_smoothing"):
        DistillationLoss(loss_fn.teacher, label_smoothing=1.5)


def test_distillation_gradient_goes_to_student_only():
    T = 4.0
    teacher = fixed_teacher([1.0, -2.0, 0.5])
    loss_fn = DistillationLoss(teacher, temperature=T, alpha=1.0)
    z = torch.tensor([[0.3, 0.1, -1.0], [2.0, 0.0, 0.0]], requires_grad=True)
    loss_fn(z, torch.tensor([0, 1]), torch.zeros(2, 1)).backward()
    # d/dz T^2 KL(p || softmax(z/T)) = T (softmax(z/T) - p), averaged over the batch of 2
    p = torch.softmax(torch.tensor([1.0, -2.0, 0.5]) / T, 0)
    assert_close(z.grad, T * (torch.softmax(z.detach() / T, 1) - p) / 2, terms=3, scale=T)
    assert teacher.weight.grad is None and teacher.bias.grad is None


def test_distillation_term_vanishes_when_student_is_teacher():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    teacher = copy.deepcopy(student).train()
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    student.eval()
    z = student(x)
    # T^2 KL of identical distributions: zero up to the rounding of 6 x 3 terms, times T^2 = 25
    assert DistillationLoss(teacher, temperature=5.0, alpha=1.0)(z, y, x).abs().item() <= 25 * rounding(torch.float32, 18)
    half = DistillationLoss(teacher, alpha=0.5)(z, y, x)
    assert half.item() == pytest.approx(0.5 * F.cross_entropy(z, y).item(), rel=rounding(torch.float32, 18))
    assert not teacher.training  # the teacher ran in eval mode: BatchNorm statistics untouched
    assert torch.equal(teacher[1].running_mean, student[1].running_mean)
    soft = torch.softmax(torch.randn(6, 3), 1)  # soft targets (mixup) work too
    assert DistillationLoss(teacher, alpha=0.0)(z, soft, x).item() == pytest.approx(F.cross_entropy(z, soft).item())
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(teacher, temperature=0.0)


# --- no bias decay, zero gamma -------------------------------------------------------------


class TinyBlock(nn.Module):
    """A basic residual block: conv-bn-relu-conv-bn, plus the input."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class TinyBottleneck(TinyBlock):
    def __init__(self, c):
        super().__init__(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        h = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return torch.relu(x + self.bn3(self.conv3(h)))


class WithZeroInitLast(TinyBlock):
    def zero_init_last(self):
        nn.init.zeros_(self.bn1.weight)  # deliberately not bn2: the method decides


def tiny_resnet():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),  # stem: conv with a bias
        TinyBlock(4), TinyBottleneck(4), WithZeroInitLast(4),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10),
    )


def test_no_bias_decay_groups():
    model = tiny_resnet()
    decay, no_decay = no_bias_decay(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    # weights: stem conv + 2 + 3 + 2 block convs + linear = 9; the rest: 2 biases + 8 BNs x (gamma, beta)
    assert len(decay["params"]) == 9 and len(no_decay["params"]) == 2 + 16
    assert all(p.ndim in (2, 4) for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    opt = torch.optim.SGD(no_bias_decay(model, 5e-4), lr=0.1, momentum=0.9)
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]


def test_no_bias_decay_lists_a_shared_parameter_once():
    shared = nn.Linear(3, 3)
    decay, no_decay = no_bias_decay(nn.Sequential(shared, nn.ReLU(), shared), 1e-4)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 1


def test_zero_gamma_on_tiny_blocks():
    model = tiny_resnet()
    assert zero_gamma(model) == 3
    basic, bottleneck, custom = model[3], model[4], model[5]
    assert basic.bn2.weight.abs().sum() == 0 and basic.bn1.weight.eq(1).all()
    assert bottleneck.bn3.weight.abs().sum() == 0 and bottleneck.bn2.weight.eq(1).all()
    assert custom.bn1.weight.abs().sum() == 0 and custom.bn2.weight.eq(1).all()
    assert model[1].weight.eq(1).all()  # the stem's BatchNorm is untouched
    x = torch.randn(2, 4, 5, 5)
    basic.eval()
    assert torch.equal(basic(x), torch.relu(x))  # each block starts as the identity (then ReLU)


@pytest.mark.parametrize("block", [torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck])
def test_zero_gamma_equals_torchvision_zero_init_residual(block):
    torch.manual_seed(0)
    ours = torchvision.models.ResNet(block, [1, 2, 1, 1], num_classes=10)
    ref = torchvision.models.ResNet(block, [1, 2, 1, 1], num_classes=10, zero_init_residual=True)
    assert zero_gamma(ours) == 5
    bns = {n: m.weight for n, m in ref.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert sum(bool(w.eq(0).all()) for w in bns.values()) == 5
    for name, m in ours.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, bns[name]), name


def test_zero_gamma_equals_cnnlib_zero_init_residual():
    from cnnlib.models import get_model

    ours = get_model("resnet18", num_classes=10)
    ref = get_model("resnet18", num_classes=10, zero_init_residual=True)
    assert zero_gamma(ours) == 8
    ref_bns = dict(ref.named_modules())
    zeroed = 0
    for name, m in ours.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert torch.equal(m.weight, ref_bns[name].weight), name
            zeroed += bool(m.weight.eq(0).all())
    assert zeroed == 8
    assert zero_gamma(get_model("residual_net", depth=8)) == 3


@pytest.mark.parametrize("block", ["BasicBlock", "Bottleneck"])
def test_zero_gamma_block_is_the_identity_in_both_modes(block):
    from cnnlib import models

    torch.manual_seed(0)
    cls = getattr(models, block)
    b = cls(64, 64 // cls.expansion)
    assert zero_gamma(b) == 1
    x = torch.rand(2, 64, 5, 5)  # non-negative, like the output of the ReLU before it
    for mode in (True, False):  # the last BatchNorm's output is beta = 0 with batch or running statistics
        assert torch.equal(b.train(mode)(x), x)


def test_zero_gamma_refuses_plain_networks():
    from cnnlib.models import get_model

    plain = get_model("plain_net", depth=8)
    with pytest.raises(ValueError, match="no shortcut"):
        zero_gamma(plain)
    assert all(m.weight.eq(1).all() for m in plain.modules() if isinstance(m, nn.BatchNorm2d))  # untouched


# --- with cnnlib.training.loop.fit -----------------------------------------------------------------


def test_tricks_plug_into_fit(tmp_path):
    from cnnlib.training.loop import fit

    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 1, 4, 4, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

    def run(epochs, **extra):
        torch.manual_seed(0)
        student = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        optimizer = torch.optim.SGD(no_bias_decay(student, 5e-4), lr=0.2, momentum=0.9)
        scheduler = warmup_cosine(optimizer, warmup_steps=2, total_steps=3 * len(batches))
        history = fit(student, batches, batches, epochs, optimizer=optimizer, scheduler=scheduler,
                      loss_fn=DistillationLoss(teacher, 4.0, 0.5), batch_transform=Mixup(0.2, num_classes=3),
                      device="cpu", amp=None, progress=False, **extra)
        return history, scheduler

    history, scheduler = run(3)
    # lr of each epoch's last batch (steps 3, 7, 11 of 12), then 0 after the last step
    assert history.lr == pytest.approx([0.2 * warmup_cosine_factor(s, 2, 12) for s in (3, 7, 11)])
    assert scheduler.last_epoch == 12 and scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert all(math.isfinite(loss) for loss in history.train_loss)
    run(2, checkpoint=tmp_path / "run.pt")
    resumed, scheduler = run(3, checkpoint=tmp_path / "run.pt", resume=True)  # fresh objects, state from the file
    assert scheduler.last_epoch == 12 and resumed.lr == pytest.approx(history.lr)


# --- the recipe of named tricks ------------------------------------------------------------


def recipe_of(tricks, epochs=3, **extra):
    torch.manual_seed(0)
    model = tiny_resnet()
    recipe = training_recipe(model, tricks, lr=0.4, epochs=epochs, steps_per_epoch=10, weight_decay=1e-4, **extra)
    return model, recipe


def test_recipe_without_tricks_is_plain_sgd():
    model, recipe = recipe_of([])
    assert recipe["scheduler"] is recipe["loss_fn"] is recipe["batch_transform"] is None
    (group,) = recipe["optimizer"].param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.4, 0.9, 1e-4)
    assert len(group["params"]) == len(list(model.parameters()))
    assert model[3].bn2.weight.eq(1).all()


def test_recipe_of_every_trick():
    model, recipe = recipe_of(TRICKS, warmup_epochs=0.5, label_smoothing=0.2, mixup_alpha=0.4, num_classes=10)
    assert model[3].bn2.weight.eq(0).all() and model[4].bn3.weight.eq(0).all()  # zero gamma, done now
    decay, no_decay = recipe["optimizer"].param_groups
    assert (decay["weight_decay"], no_decay["weight_decay"], len(decay["params"])) == (1e-4, 0.0, 9)
    got = lrs(recipe["scheduler"], recipe["optimizer"], 30)  # warmup: 5 steps, then cosine to step 30
    assert got == pytest.approx([0.4 * warmup_cosine_factor(s, 5, 30) for s in range(30)])
    assert isinstance(recipe["loss_fn"], LabelSmoothingCrossEntropy) and recipe["loss_fn"].eps == 0.2
    mix = recipe["batch_transform"]
    assert isinstance(mix, Mixup) and (mix.alpha, mix.num_classes) == (0.4, 10)


def test_recipe_warmup_alone_then_constant():
    _, recipe = recipe_of(["warmup"])  # one epoch of 10 steps
    got = lrs(recipe["scheduler"], recipe["optimizer"], 30)
    assert got[:10] == pytest.approx([0.04 * (s + 1) for s in range(10)]) and got[10:] == pytest.approx([0.4] * 20)


def test_a_run_shorter_than_its_warmup_still_decays():
    """One epoch of 10 steps with a warmup of one epoch: 9 steps of warmup, then the cosine's last step
    (warmup_cosine alone refuses warmup_steps >= total_steps)."""
    _, recipe = recipe_of(["warmup", "cosine"], epochs=1)
    got = lrs(recipe["scheduler"], recipe["optimizer"], 10)
    assert got == pytest.approx([0.4 * warmup_cosine_factor(s, 9, 10) for s in range(10)])
    assert [warmup_steps_within(e, 10, t) for e, t in ((1.0, 10), (0.5, 100), (2.0, 5), (0.0, 1))] == [9, 5, 4, 0]


def test_recipe_distillation_keeps_label_smoothing():
    teacher = fixed_teacher([1.0, 0.0])
    _, recipe = recipe_of(["label-smoothing"], teacher=teacher, temperature=4.0, distill_alpha=0.7)
    loss_fn = recipe["loss_fn"]
    assert isinstance(loss_fn, DistillationLoss) and loss_fn.teacher is teacher
    assert (loss_fn.temperature, loss_fn.alpha, loss_fn.label_smoothing) == (4.0, 0.7, 0.1)
    assert recipe_of([], teacher=teacher)[1]["loss_fn"].label_smoothing == 0.0


def test_recipe_refuses_unknown_tricks():
    with pytest.raises(ValueError, match="dropblock"):
        recipe_of(["cosine", "dropblock"])
