import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms.v2 import functional as TF

from cnnlib.training.data import DeviceLoader, fashion_mnist
from cnnlib.training.loop import evaluate, fit
from cnnlib.training.speed import (EMA, ProgressiveResizing, flip_tta_logits, patch_covariance, progressive_sizes,
                                   scaled_lr, speed_param_groups, whitening_init_)
from cnnlib.training.tricks import no_bias_decay


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3))


@pytest.fixture(scope="module")
def images():
    data = fashion_mnist(train=False).data[:500]
    return data.unsqueeze(1).float().div(255)


def train_steps(model, steps):
    """``steps`` SGD steps on random batches (BatchNorm's running statistics move too)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(step))
        F.cross_entropy(model(x), torch.arange(8) % 3).backward()
        optimizer.step()
        optimizer.zero_grad()
        yield


def test_ema_equals_torchs_averaged_model_with_buffers():
    model = small_net()
    ours = EMA(model, decay=0.9, warmup=False)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    reference.update_parameters(model)  # its first update copies: ours starts as the copy
    for _ in train_steps(model, 5):
        ours.update(model)
        reference.update_parameters(model)
    for a, b in zip(ours.module.parameters(), reference.module.parameters()):
        torch.testing.assert_close(a, b)
    for name in ("running_mean", "running_var"):  # averaged like the weights
        torch.testing.assert_close(getattr(ours.module[1], name), getattr(reference.module[1], name))
        assert not torch.allclose(getattr(ours.module[1], name), getattr(model[1], name))
    # integer buffers: torch's truncates d * ema + (1 - d) * n back to an integer; ours copies the count
    assert ours.module[1].num_batches_tracked.item() == model[1].num_batches_tracked.item() == 5
    assert not torch.allclose(ours.module[5].weight, model[5].weight)  # an average, not a copy
    assert not ours.module.training and not any(p.requires_grad for p in ours.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_the_ema_of_an_unchanging_model_is_the_model_buffers_included():
    model = small_net()
    for _ in train_steps(model, 3):
        pass
    ema = EMA(model, decay=0.9)
    for _ in range(20):
        ema.update(model)
    for (name, a), b in zip(ema.module.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    before = ema.module[1].running_mean.clone()
    next(train_steps(model, 1))  # one forward pass in training mode moves the running mean
    d = ema.current_decay()  # (1 + 20) / (10 + 20) with the warmup
    ema.update(model)
    torch.testing.assert_close(ema.module[1].running_mean, d * before + (1 - d) * model[1].running_mean)


def test_ema_and_progressive_resizing_as_fit_callbacks():
    split = fashion_mnist(train=False)
    train = DeviceLoader(split, 32, shuffle=True, subset=128, device="cpu")
    test = DeviceLoader(split, 64, shuffle=False, subset=64, device="cpu")
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 10))
    ema, sizes = EMA(model, decay=0.9), []
    original_forward = model.forward
    model.forward = lambda x: sizes.append(x.shape[-1]) or original_forward(x)
    history = fit(model, train, test, 2, amp=None, channels_last=False, eval_model=ema.module,
                  callbacks=[ProgressiveResizing(train, [16, 28]), ema])
    assert sizes == [16] * 4 + [28] * 4 and ema.updates == 8  # 4 steps per epoch
    assert history.test_acc[-1] == evaluate(ema.module, test, amp=None)


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


def test_flip_tta_evaluation_through_predict():
    split = fashion_mnist(train=False)
    loader = DeviceLoader(split, 64, shuffle=False, subset=200, device="cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(28 * 28, 10)).train()  # dropout: eval mode matters
    accuracy = evaluate(model, loader, amp=None, logits_fn=flip_tta_logits)
    x, y = next(iter(DeviceLoader(split, 200, shuffle=False, subset=200, device="cpu")))  # all 200 as one batch
    with torch.no_grad():
        linear = model[2]
        logits = linear(x.flatten(1)) + linear(TF.horizontal_flip(x).flatten(1))
    assert accuracy == (logits.argmax(1) == y).sum().item() / 200 and model.training
    assert accuracy != evaluate(model, loader, amp=None)  # the mirror images change some predictions
    dtypes = []
    evaluate(model, loader, amp="bf16", logits_fn=lambda m, x: dtypes.append(flip_tta_logits(m, x).dtype) or m(x))
    assert set(dtypes) == {torch.bfloat16}  # in the dtype the run trains in


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
    assert [g["params"] for g in groups] == [g["params"] for g in no_bias_decay(model, 5e-4)]  # lesson 06's split
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
