"""Training refinements of "Bag of Tricks for Image Classification with Convolutional
Neural Networks" (He et al., 2018, arXiv 1812.01187), each checked against torch's own
implementation where torch has one (see tests/test_tricks.py).

`training_recipe` turns trick names (`TRICKS`, the command line's `--tricks`) into the
optimizer, scheduler, loss and batch transform that `cnnlib.training.loop.fit` takes.
Mixed precision (sec 3.2, "low-precision training") is not here: `cnnlib.training.loop.fit(amp=...)`
runs the forward pass under autocast.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Convention = Literal["torch", "paper"]

TRICKS = ("cosine", "warmup", "label-smoothing", "mixup", "no-bias-decay", "zero-gamma")
# The two changes of the paper's ablation that are not training options: the model tweak (asked of
# the model builder, sec 4) and knowledge distillation (a trained teacher given to the loss, sec 5.3).
MODEL_TWEAK, DISTILLATION = "resnet-d", "distillation"


# --- Sec 3.1: large-batch training -------------------------------------------------------


def linear_scaled_lr(batch_size: int, base_lr: float = 0.1, base_batch: int = 256) -> float:
    """Linear scaling rule (sec 3.1): lr = base_lr * batch_size / base_batch (0.1 * b / 256)."""
    if batch_size <= 0 or base_batch <= 0:
        raise ValueError(f"batch sizes must be positive, got batch_size={batch_size}, base_batch={base_batch}")
    return base_lr * batch_size / base_batch


def linear_warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier of the linear warmup (sec 3.1) at batch `step` (0-based): batch
    i = step + 1 <= m = warmup_steps gets i / m, so the first batch uses 1/m (close to 0) and
    batch m, and every later one, the full rate."""
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at batch `step` (0-based): linear warmup, then cosine decay.

    Warmup (sec 3.1): `linear_warmup_factor`, i / m for batch i = step + 1 <= m = warmup_steps.
    Cosine (sec 5.1): eta_t = 1/2 (1 + cos(t pi / T)) with t = step - m and T = total_steps - m
    (the paper's T "ignoring warmup"). It equals CosineAnnealingLR(T_max=T, eta_min=0) and is
    held at 0 after the last step instead of rising again.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
    if step < warmup_steps:
        return linear_warmup_factor(step, warmup_steps)
    t = min(step - warmup_steps, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * t / (total_steps - warmup_steps)))


def warmup_steps_within(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """The warmup's steps, round(warmup_epochs * steps_per_epoch), at most total_steps - 1: a run
    shorter than its warmup still ends on a decaying step instead of being refused."""
    return max(0, min(round(warmup_epochs * steps_per_epoch), total_steps - 1))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying `warmup_cosine_factor` to each group's lr; call `.step()` after every batch.

    total_steps = epochs * len(train_loader). With m = warmup_steps and n = total_steps it equals
    SequentialLR(LinearLR(1/m, 1, m - 1), CosineAnnealingLR(n - m), milestones=[m]) for m >= 2,
    and CosineAnnealingLR(n) for m = 0.
    """
    factor = functools.partial(warmup_cosine_factor, warmup_steps=warmup_steps, total_steps=total_steps)
    factor(0)  # validates the arguments now, not at the first batch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def no_bias_decay(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer parameter groups (sec 3.1, "no bias decay").

    Weight decay applies to the weights of convolution and fully-connected layers only;
    biases, BatchNorm gamma/beta and every other parameter get weight_decay = 0.
    Use: torch.optim.SGD(no_bias_decay(model, 5e-4), lr=0.1, momentum=0.9).
    """
    decayed = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # a shared parameter is listed once
                continue
            seen.add(id(p))
            (decay if isinstance(module, decayed) and name == "weight" else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def zero_gamma(model: nn.Module) -> int:
    """Zero the gamma of the last BatchNorm of every residual block (sec 3.1, "zero gamma").

    Each block then starts as the identity: x + 0 * F(x). A block is recognised by convention:
    a module with a `zero_init_last()` method gets it called (timm's blocks); otherwise its
    `bn3` (Bottleneck) or else its `bn2` (BasicBlock) BatchNorm gets weight 0, as in
    torchvision's and cnnlib's ResNet blocks. Returns the number of blocks changed.
    A block without its shortcut (cnnlib's plain twins: `residual = False`) would be switched
    off for good, so it raises ValueError and leaves the model untouched.
    """
    blocks = []
    for name, module in model.named_modules():
        bn = module.bn3 if hasattr(module, "bn3") else getattr(module, "bn2", None)
        if callable(getattr(module, "zero_init_last", None)) or isinstance(bn, nn.modules.batchnorm._BatchNorm):
            if getattr(module, "residual", True) is False:
                raise ValueError(f"block {name!r} has no shortcut: zero gamma would block every signal through it")
            blocks.append((module, bn))
    for module, bn in blocks:
        if callable(getattr(module, "zero_init_last", None)):
            module.zero_init_last()
        else:
            nn.init.zeros_(bn.weight)
    return len(blocks)


# --- Sec 5.2: label smoothing --------------------------------------------------------------


def smooth_targets(
    target: torch.Tensor, num_classes: int, eps: float, convention: Convention = "torch"
) -> torch.Tensor:
    """Smoothed target distribution q, float [B, K], from class indices [B] or probabilities [B, K].

    torch (nn.CrossEntropyLoss(label_smoothing=eps)): q = (1 - eps) t + eps / K on every class,
    so the true class gets 1 - eps + eps/K.
    paper (sec 5.2): q_i = 1 - eps if i = y else eps / (K - 1), i.e. q = (1 - eps) t + eps (1 - t) / (K - 1).
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    t = F.one_hot(target, num_classes).float() if target.ndim == 1 else target.float()
    if convention == "torch":
        return (1.0 - eps) * t + eps / num_classes
    if convention == "paper":
        return (1.0 - eps) * t + eps * (1.0 - t) / (num_classes - 1)
    raise ValueError(f'convention must be "torch" or "paper", got {convention!r}')


def label_smoothing_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    eps: float = 0.1,
    convention: Convention = "torch",
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Cross entropy with smoothed targets: loss = -sum_i q_i log softmax(z)_i (sec 5.2).

    `target`: class indices [B] or probabilities [B, K] (e.g. from Mixup). See `smooth_targets`
    for the two conventions; "torch" equals nn.CrossEntropyLoss(label_smoothing=eps).
    """
    q = smooth_targets(target, logits.shape[1], eps, convention)
    loss = -(q * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    reduced = {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}.get(reduction)
    if reduced is None:
        raise ValueError(f'reduction must be "mean", "sum" or "none", got {reduction!r}')
    return reduced()


class LabelSmoothingCrossEntropy(nn.Module):
    """Module form of `label_smoothing_cross_entropy`, a drop-in for nn.CrossEntropyLoss."""

    def __init__(self, eps: float = 0.1, convention: Convention = "torch") -> None:
        super().__init__()
        self.eps, self.convention = eps, convention

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return label_smoothing_cross_entropy(logits, target, self.eps, self.convention)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, convention={self.convention!r}"


def optimal_logit_gap(eps: float, num_classes: int, convention: Convention = "torch") -> float:
    """Gap z*_y - z*_i between the true and any other logit at the loss minimum (sec 5.2).

    The minimum has softmax(z) = q, so the gap is log(q_y / q_i):
    paper: log((K - 1)(1 - eps) / eps); torch: log(1 + K (1 - eps) / eps).
    """
    if convention == "paper":
        return math.log((num_classes - 1) * (1.0 - eps) / eps)
    if convention == "torch":
        return math.log(1.0 + num_classes * (1.0 - eps) / eps)
    raise ValueError(f'convention must be "torch" or "paper", got {convention!r}')


# --- Sec 5.3: knowledge distillation -------------------------------------------------------


class DistillationLoss(nn.Module):
    """Knowledge distillation (sec 5.3) from a trained `teacher` network.

    Paper: loss = l(p, softmax(z)) + T^2 l(softmax(r/T), softmax(z/T)), with l the cross
    entropy, p the true labels, z / r the student / teacher logits, T = 20 in the paper.
    Here: loss = (1 - alpha) CE(z, y) + alpha T^2 KL(softmax(r/T) || softmax(z/T)).
    KL differs from the paper's cross entropy by the teacher's entropy, a constant, so the
    gradients are the same and the term is 0 when student and teacher agree; alpha = 0.5 is
    half the paper's loss. `targets` may be class indices or probabilities (Mixup);
    `label_smoothing` = eps smooths them in the CE term as nn.CrossEntropyLoss(label_smoothing=eps).

    `uses_inputs = True`: cnnlib.training.loop.fit calls it as loss(logits, targets, inputs). On each
    call the teacher is put in eval mode, moved to the inputs' device and run under no_grad.
    """

    uses_inputs = True

    def __init__(
        self, teacher: nn.Module, temperature: float = 20.0, alpha: float = 0.5, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        if temperature <= 0 or not 0.0 <= alpha <= 1.0 or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"need temperature > 0, 0 <= alpha <= 1 and 0 <= label_smoothing <= 1, "
                             f"got {temperature}, {alpha} and {label_smoothing}")
        self.teacher, self.temperature, self.alpha = teacher, temperature, alpha
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        self.teacher.eval().to(inputs.device)
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        T = self.temperature
        kl = F.kl_div(
            F.log_softmax(logits.float() / T, dim=1),
            F.log_softmax(teacher_logits.float() / T, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        hard = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        return (1.0 - self.alpha) * hard + self.alpha * T * T * kl

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}, label_smoothing={self.label_smoothing}"


# --- Sec 5.4: mixup ------------------------------------------------------------------------


class Mixup:
    """Mixup (sec 5.4) as a `batch_transform(x, y) -> (x_mixed, soft_targets)` for cnnlib.training.loop.fit.

    x_mixed = lam x + (1 - lam) x_j and y_mixed = lam y + (1 - lam) y_j, with lam ~ Beta(alpha, alpha)
    (alpha = 0.2 in the paper) drawn once per batch from this object's own seeded generator,
    and j the batch rolled by one (x.roll(1, 0)), as torchvision.transforms.v2.MixUp pairs it.
    Targets come back as float probabilities [B, num_classes]; `lam` holds the last draw.
    `mix(x, y, lam)` is the same blend for a given lam, without a draw.
    """

    def __init__(self, alpha: float = 0.2, num_classes: int = 10, seed: int = 0) -> None:
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha} (use no batch_transform to switch mixup off)")
        self.alpha, self.num_classes = alpha, num_classes
        self.rng = random.Random(seed)
        self.lam: float | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not x.is_floating_point():
            raise TypeError(f"Mixup needs floating-point images, got {x.dtype}: normalise them first")
        self.lam = self.rng.betavariate(self.alpha, self.alpha)
        return self.mix(x, y, self.lam)

    def mix(self, x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Blend each example with the previous one of the batch: weights lam and 1 - lam."""
        t = F.one_hot(y, self.num_classes).float() if y.ndim == 1 else y.float()
        return lam * x + (1.0 - lam) * x.roll(1, 0), lam * t + (1.0 - lam) * t.roll(1, 0)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha}, num_classes={self.num_classes})"


# --- all of them: what cnnlib.training.loop.fit takes -----------------------------------------------


def training_recipe(
    model: nn.Module,
    tricks: Sequence[str] = (),
    *,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_epochs: float = 1.0,
    label_smoothing: float = 0.1,
    mixup_alpha: float = 0.2,
    num_classes: int = 10,
    seed: int = 0,
    teacher: nn.Module | None = None,
    temperature: float = 20.0,
    distill_alpha: float = 0.5,
) -> dict:
    """The keyword arguments of `cnnlib.training.loop.fit` for `tricks` (names from `TRICKS`) and, when a
    `teacher` is given, knowledge distillation: `fit(model, train, test, epochs, **recipe)`.

    Always SGD(lr, momentum, weight_decay). "zero-gamma" changes `model` now, in place;
    "no-bias-decay" splits the optimizer's parameters; "warmup" ramps the rate up over
    round(warmup_epochs * steps_per_epoch) steps, at most all steps but the last
    (`warmup_steps_within`), then keeps it, or decays it with "cosine";
    "label-smoothing" uses eps = `label_smoothing`, also in the distillation loss's label term;
    "mixup" draws from Beta(mixup_alpha, mixup_alpha) with its own generator seeded by `seed`.
    Returns {"optimizer", "scheduler", "loss_fn", "batch_transform"} (None: fit's default).

    Args:
        model: the network to train ("zero-gamma" changes it in place).
        tricks: names from `TRICKS`.
        lr, momentum, weight_decay: SGD's.
        epochs, steps_per_epoch: the run's length, for the schedules (steps: batches).
        warmup_epochs: the warmup's length in epochs (may be a fraction).
        label_smoothing: eps of "label-smoothing".
        mixup_alpha, num_classes, seed: Mixup's Beta parameter, the number of classes of its soft
            targets and the seed of its draws.
        teacher, temperature, distill_alpha: knowledge distillation (`DistillationLoss`); none
            without a teacher.
    """
    unknown = [name for name in tricks if name not in TRICKS]
    if unknown:
        raise ValueError(f"unknown trick(s) {unknown}: choose from {', '.join(TRICKS)}")
    if "zero-gamma" in tricks:
        zero_gamma(model)
    params = no_bias_decay(model, weight_decay) if "no-bias-decay" in tricks else model.parameters()
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    total = epochs * steps_per_epoch
    warmup = warmup_steps_within(warmup_epochs if "warmup" in tricks else 0.0, steps_per_epoch, total)
    scheduler = None
    if "cosine" in tricks:
        scheduler = warmup_cosine(optimizer, warmup, total)
    elif warmup:  # warmup alone: the linear ramp, then the full rate
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(linear_warmup_factor, warmup_steps=warmup))
    eps = label_smoothing if "label-smoothing" in tricks else 0.0
    if teacher is not None:
        loss_fn = DistillationLoss(teacher, temperature, distill_alpha, label_smoothing=eps)
    else:
        loss_fn = LabelSmoothingCrossEntropy(eps) if eps else None
    batch_transform = Mixup(mixup_alpha, num_classes, seed=seed) if "mixup" in tricks else None
    return dict(optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, batch_transform=batch_transform)
