import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms.v2 import functional as TF

from cnnlib.training.data import DeviceLoader, fashion_mnist
from cnnlib.training.speed import (EMA, evaluate_flip_tta, flip_tta_logits, patch_covariance, progressive_sizes,
                          scaled_lr, speed_param_groups, whitening_init_)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3))


@pytest.fixture(scope="module")
def images():
    data = fashion_mnist(train=False).data[:500]
    return data.unsqueeze(1).float().div(255)


def test_ema_equals_torchs_averaged_model_and_copies_the_buffers():
    model = small_net()
    ours = EMA(model, decay=0.9, warmup=False)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=False)
    reference.update_parameters(model)  # its first update copies: ours starts as the copy
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(5):
        x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(step))
        F.cross_entropy(model(x), torch.arange(8) % 3).backward()
        optimizer.step()
        optimizer.zero_grad()
        ours.update(model)
        reference.update_parameters(model)
    for a, b in zip(ours.module.parameters(), reference.module.parameters()):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(ours.module[5].weight, model[5].weight)  # an average, not a copy
    assert torch.equal(ours.module[1].running_mean, model[1].running_mean)
    assert not ours.module.training and not any(p.requires_grad for p in ours.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_ema_warmup_follows_tensorflows_num_updates_rule():
    model = nn.Linear(1, 1, bias=False)
    nn.init.ones_(model.weight)
    ema = EMA(nn.Linear(1, 1, bias=False), decay=0.99)
    nn.init.zeros_(ema.module.weight)
    decays = []
    for n in range(1000):
        decays.append(ema.current_decay())
        ema.update(model)
        if n == 0:
            assert ema.module.weight.item() == pytest.approx(0.9)  # 0 + (1 - 1/10) (1 - 0)
    assert decays[:2] == [1 / 10, 2 / 11] and decays[889] < 0.99
    assert decays[890:] == [0.99] * 110  # (1 + n) / (10 + n) >= 0.99 from n = 890 on


def test_flip_tta_averages_the_two_views():
    model = small_net().eval()
    x = torch.randn(4, 1, 6, 6)
    expected = (model(x) + model(TF.horizontal_flip(x))) / 2
    torch.testing.assert_close(flip_tta_logits(model, x), expected)
    symmetric = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 3)).eval()  # mirror-blind
    torch.testing.assert_close(flip_tta_logits(symmetric, x), symmetric(x))


def test_evaluate_flip_tta_counts_correct_predictions():
    split = fashion_mnist(train=False)
    loader = DeviceLoader(split, 64, shuffle=False, subset=200, device="cpu")
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    model.train()
    accuracy = evaluate_flip_tta(model, loader)
    correct = sum((flip_tta_logits(model, x).argmax(1) == y).sum().item() for x, y in loader)
    assert accuracy == correct / 200 and model.training


def test_patch_covariance_matches_a_direct_computation(images):
    cov = patch_covariance(images[:20], 2)
    patches = torch.stack([images[n, 0, i:i + 2, j:j + 2].reshape(-1)
                           for n in range(20) for i in range(27) for j in range(27)]).double()
    centred = patches - patches.mean(0)
    torch.testing.assert_close(cov, centred.T @ centred / (len(patches) - 1))


@pytest.mark.parametrize("kernel_size, out_channels", [(2, 8), (3, 16)])
def test_whitened_patches_have_identity_covariance(images, kernel_size, out_channels):
    conv = nn.Conv2d(1, out_channels, kernel_size, bias=True)
    eigenvalues = whitening_init_(conv, images, eps=0.0)
    assert eigenvalues[0] > eigenvalues[-1] > 0 and conv.bias.abs().max() == 0
    out = conv(images.double().to(torch.float32)).detach().double()
    first_half = out[:, 0::2].permute(1, 0, 2, 3).reshape(out_channels // 2, -1)  # the + filters
    torch.testing.assert_close(torch.cov(first_half), torch.eye(out_channels // 2, dtype=torch.float64),
                               atol=2e-3, rtol=0)
    torch.testing.assert_close(conv.weight[1::2], -conv.weight[0::2])


def test_whitening_rejects_layers_it_cannot_fill(images):
    with pytest.raises(ValueError, match="even out_channels"):
        whitening_init_(nn.Conv2d(1, 10, 2), images)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        whitening_init_(nn.Conv2d(3, 8, 2), images)


def test_param_groups_split_decay_and_scale_the_norm_rate():
    model = small_net()
    groups = scaled_lr(speed_param_groups(model, 5e-4, norm_lr_scale=8.0), lr=0.1)
    assert [p.shape for p in groups[0]["params"]] == [model[0].weight.shape, model[5].weight.shape]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.4]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [5e-4, 0.0]
    assert scheduler.base_lrs == [0.1, 0.8]
    with pytest.raises(ValueError, match="norm_lr_scale"):
        speed_param_groups(model, 5e-4, norm_lr_scale=0)


def test_nesterov_groups_step_like_one_sgd_per_group():
    model = small_net()
    twin = copy.deepcopy(model)
    groups = scaled_lr(speed_param_groups(model, 5e-4, norm_lr_scale=4.0), lr=0.1)
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)
    twin_groups = speed_param_groups(twin, 5e-4)
    per_group = [torch.optim.SGD(twin_groups[0]["params"], lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
                 torch.optim.SGD(twin_groups[1]["params"], lr=0.4, momentum=0.9, nesterov=True)]
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 3
    for _ in range(3):
        for net, opts in ((model, [optimizer]), (twin, per_group)):
            F.cross_entropy(net(x), y).backward()
            for opt in opts:
                opt.step()
                opt.zero_grad()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)


def test_progressive_sizes():
    assert progressive_sizes(6, 16, 28, full_epochs=2) == [16, 20, 24, 24, 28, 28]
    assert progressive_sizes(3, 28, 28) == [28, 28, 28]
    assert progressive_sizes(1, 12, 28) == [28]
    with pytest.raises(ValueError, match="full_epochs"):
        progressive_sizes(2, 16, 28, full_epochs=3)
