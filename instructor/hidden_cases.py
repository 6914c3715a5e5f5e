"""Hidden cases: checks the grader runs after each exercise's own check, which the learner
versions do not contain, so that an answer fitted to the visible cases does not pass.

``HIDDEN_CASES[lesson stem][exercise label]`` is code run right after the lesson's check
cell, in the lesson's namespace, with the ``cnnlib.grading.checks`` checks (recording, see
:mod:`cnnlib.grading.recorder`). The grader seeds torch, numpy and ``random`` before each check, so
random inputs are the same in the solution's run and the learner's. Names meant to stay
local start with ``_hidden``. A lesson or exercise without an entry is graded on its
visible checks alone; the grader refuses a lesson whose solution fails its hidden cases.
"""

HIDDEN_CASES = {
    "00_start_here": {
        "Exercise 1": (
            "check_function(conv_params, [(2, 3, 5), (7, 1, 1, False), (3, 8, 7, False), (128, 256, 3)],\n"
            "               reference=torch_conv_params, name='Exercise 1')"
        ),
        "Exercise 2": (
            "_hidden_images = fashion.data[-5:]\n"
            "check_close('Exercise 2', normalise(_hidden_images, 0.5, 0.25),\n"
            "            ((_hidden_images.float() / 255 - 0.5) / 0.25).unsqueeze(1))"
        ),
        "Exercise 3": (
            "check_function(batches_per_epoch, [(1, 1), (7, 8), (7, 8, True), (100, 10, True), (101, 10, True),\n"
            "                                   (999, 1000, True), (1001, 1000)],\n"
            "               reference=loader_batches, name='Exercise 3')"
        ),
        "Exercise 4": (
            "check_close('Exercise 4', recall_per_class(torch.tensor([[3, 1, 0], [0, 4, 0], [2, 2, 1]])),\n"
            "            torch.tensor([0.75, 1.0, 0.2]))"
        ),
    },
    "01_convolution_arithmetic": {
        "Exercise 1": (
            "check_function(out_size, [(227, 11, 4), (224, 11, 4, 2), (100, 7, 3, 3, 2), (5, 7), (31, 3, 2, 0, 4),\n"
            "                          (64, 3, 2, 1, 3), (10, 4, 1, 0, 3)],\n"
            "               reference=conv_out_size, name='Exercise 1')"
        ),
        "Exercise 2": (
            "_hidden_gen = torch.Generator().manual_seed(1)\n"
            "check_function(conv2d_loops, [(torch.randn(2, 6, 7, generator=_hidden_gen),\n"
            "                               torch.randn(3, 2, 2, 2, generator=_hidden_gen),\n"
            "                               torch.randn(3, generator=_hidden_gen), 2, 1)],\n"
            "               reference=torch_conv2d, atol=1e-5, name='Exercise 2')"
        ),
        "Exercise 3": (
            "check_function(receptive_field_of, [[], [(5, 1)], [(5, 2), (5, 2)], [(7, 2), (3, 2), (3, 2), (3, 2), (3, 2)],\n"
            "                                    [(1, 1), (3, 3), (2, 1)]],\n"
            "               reference=receptive_field, name='Exercise 3')"
        ),
        "Exercise 4": (
            "check_function(unread_positions, [(7, 3, 2, 1), (9, 3, 3), (100, 7, 3, 3), (6, 2, 5), (31, 4, 2, 2)],\n"
            "               reference=lambda *args: widgets.conv_explanation(*args).uncovered, name='Exercise 4')"
        ),
    },
    "02_alexnet": {
        "Exercise 1": (
            "_hidden_x = torch.randn(1, 4, 2, 5, generator=torch.Generator().manual_seed(7))\n"
            "check_close('Exercise 1', torch.cat([lrn(_hidden_x, size=1, alpha=0.5, beta=1.0, k=0.5), lrn(_hidden_x, size=7)]),\n"
            "            torch.cat([nn.LocalResponseNorm(1, alpha=0.5, beta=1.0, k=0.5)(_hidden_x),\n"
            "                       nn.LocalResponseNorm(7, alpha=7e-4, beta=0.75, k=2.0)(_hidden_x)]))"
        ),
        "Exercise 2": (
            "check_function(count_parameters, [([('conv', 4, 8, 3, 2), ('linear', 10, 2)],\n"
            "                                   count(nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Linear(10, 2)))),\n"
            "                                  ([('conv', 6, 6, 5, 6)], count(nn.Conv2d(6, 6, 5, groups=6))), ([], 0)],\n"
            "               name='Exercise 2')"
        ),
        "Exercise 3": (
            "check_function(feature_side, [500, 63, 68, 1000], name='Exercise 3',\n"
            "               reference=lambda n: sequential_out_size(layouts['paper'].features, n))"
        ),
        "Exercise 4": (
            "_hidden_models = [nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)),\n"
            "                  nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5, bias=False)),\n"
            "                  get_model('alexnet', layout='small')]\n"
            "_hidden_tables = [layer_table(m, (1, 8, 8)) for m in _hidden_models[:2]] + [layer_table(_hidden_models[2], 28)]\n"
            "check_function(linear_shares, [(t, shares_from_the_model(m, t)) for m, t in zip(_hidden_models, _hidden_tables)],\n"
            "               atol=1e-9, name='Exercise 4')"
        ),
    },
    "02b_alexnet_evidence": {
        "Exercise 1": (
            "check_function(t_interval, [[1.0, 2.0, 4.0], [-5.0, 0.0, 5.0], [0.1, 0.1, 0.4]], reference=reference_interval,\n"
            "               atol=1e-3, rtol=1e-3, name='Exercise 1')"
        ),
        "Exercise 2": (
            "_hidden_runs = ([dict(config=alexnet_tricks.ALL_THREE, seed=s, test_acc=0.9, train_acc_eval=0.9 + 0.01 * s)\n"
            "                 for s in (0, 1)]\n"
            "                + [dict(config={**alexnet_tricks.ALL_THREE, 'dropout': 0.0}, seed=s, test_acc=0.8, train_acc_eval=0.85)\n"
            "                   for s in (1, 0)])\n"
            "check_value('Exercise 2', dropout_gap_differences(_hidden_runs), [5.0, 4.0], atol=1e-9)"
        ),
    },
    "03_inception": {
        "Exercise 1": (
            "_hidden_gen = torch.Generator().manual_seed(3)\n"
            "_hidden_x, _hidden_w, _hidden_b = (torch.randn(1, 3, 2, 5, generator=_hidden_gen),\n"
            "                                   torch.randn(4, 3, 1, 1, generator=_hidden_gen), torch.randn(4, generator=_hidden_gen))\n"
            "check_close('Exercise 1', conv1x1(_hidden_x, _hidden_w, _hidden_b), F.conv2d(_hidden_x, _hidden_w, _hidden_b))"
        ),
        "Exercise 2": (
            "check_function(bottleneck_macs, [(1, 1, 1, 1, 1, 1), (5, 3, 10, 4, 6, 3), (56, 56, 64, 64, 256, 1)],\n"
            "               reference=counted_macs, name='Exercise 2')"
        ),
        "Exercise 3": (
            "check_module(MyInception(), name='Exercise 3', reference=Inception(64, 16, 16, 24, 8, 16, 8),\n"
            "             input_shape=(1, 64, 7, 5), output_shape=(1, 64, 7, 5), seed=1)"
        ),
        "Exercise 4": (
            "check_function(inception_params, [(3, 1, 1, 1, 1, 1, 1), (64, 8, 4, 8, 2, 4, 4, 7)],\n"
            "               reference=lambda *channels: count(Inception(*channels)), name='Exercise 4')"
        ),
        "Exercise 5": (
            "check_function(running_var_after, [(2, 9.0), (7, 0.5, 0.2), (100, 0.02)],\n"
            "               reference=measured_running_var, rtol=1e-4, atol=1e-6, name='Exercise 5')"
        ),
    },
    "04_residual_blocks": {
        "Exercise 1": (
            "seed_everything(1)\n"
            "_hidden_reference = BasicBlock(16, 16)\n"
            "with torch.no_grad():\n"
            "    for _hidden_m in _hidden_reference.modules():\n"
            "        if isinstance(_hidden_m, nn.BatchNorm2d):\n"
            "            _hidden_m.running_mean.uniform_(-0.5, 0.5), _hidden_m.running_var.uniform_(0.5, 2)\n"
            "            _hidden_m.weight.uniform_(0.5, 1.5), _hidden_m.bias.uniform_(-0.5, 0.5)\n"
            "check_module(MyBasicBlock(16, 16), reference=_hidden_reference, input_shape=(2, 16, 5, 5), name='Exercise 1')"
        ),
        "Exercise 2": (
            "check_function(bottleneck_params, [(64, 16, False), (32, 8, True), (3, 1, True)],\n"
            "               reference=measured_bottleneck_params, name='Exercise 2')"
        ),
        "Exercise 3": (
            "check_function(shortcut_kind, [((32, 32, 1, 'A'), 'identity'), ((32, 32, 2, 'B'), 'projection'),\n"
            "                               ((32, 64, 1, 'A'), 'zero_pad'), ((8, 8, 1, 'C'), 'projection'),\n"
            "                               ((16, 32, 2, 'C'), 'projection')], name='Exercise 3')"
        ),
        "Exercise 4": (
            "_hidden_runs = [{'config': {'kind': k, 'depth': d}, 'seed': s, 'train_acc_eval': a} for k, d, s, a in\n"
            "                [('plain', 56, 5, 0.8), ('plain', 20, 5, 0.9), ('plain', 20, 2, 0.95), ('plain', 56, 2, 0.85),\n"
            "                 ('residual', 20, 2, 0.9), ('residual', 56, 2, 0.92)]]\n"
            "check_function(depth_difference, [(_hidden_runs, 'plain'), (_hidden_runs, 'residual')],\n"
            "               reference=lambda runs, kind: degradation.depth_penalty(runs)[kind], atol=1e-12, name='Exercise 4')"
        ),
    },
    "05_resnets": {
        "Exercise 1": (
            "check_function(depth_of, [(((1, 1, 1, 1), True), 14), (((2, 3, 4, 5), False), 30), (((0, 0, 0, 0), True), 2)],\n"
            "               name='Exercise 1')"
        ),
        "Exercise 2": (
            "check_function(stage_shapes, [(18, 64), (50, 96), (34, 33), (152, 17)],\n"
            "               reference=measured_stage_shapes, name='Exercise 2')"
        ),
        "Exercise 4": (
            "def _hidden_reference(runs, published):\n"
            "    _hidden_i = interval([run['test_acc'] for run in runs])\n"
            "    return _hidden_i['low'], _hidden_i['high'], published < _hidden_i['low']\n"
            "_hidden_runs = [{'test_acc': 0.90}, {'test_acc': 0.91}, {'test_acc': 0.93}]\n"
            "check_function(against_single_run, [(_hidden_runs, 0.5), (_hidden_runs, 0.9), (_hidden_runs[:2], 0.9),\n"
            "                                    (results['runs'][:2], 0.0)],\n"
            "               reference=_hidden_reference, atol=1e-9, name='Exercise 4')"
        ),
    },
    "06_bag_of_tricks": {
        "Exercise 1": (
            "check_function(smoothed, [(torch.tensor([0, 1, 2, 3]), 4, 0.5), (torch.tensor([6]), 7, 1.0)],\n"
            "               reference=lambda y, k, eps: tricks.smooth_targets(y, k, eps), atol=1e-6, name='Exercise 1')"
        ),
        "Exercise 2": (
            "check_function(lr_at, [(0, 1.0, 1, 10), (1, 1.0, 1, 10), (9, 0.5, 3, 10), (2, 0.3, 3, 10)],\n"
            "               reference=lambda step, lr, m, n: lr * tricks.warmup_cosine_factor(step, m, n), atol=1e-12,\n"
            "               name='Exercise 2')"
        ),
        "Exercise 3": (
            "check_function(large_batch_recipe, [((128, 1000), (0.05, 40)), ((512, 50_000, 3), (0.2, 294)),\n"
            "                                    ((100, 100, 0), (0.0390625, 0))], atol=1e-12, name='Exercise 3')"
        ),
        "Exercise 4": (
            "check_function(no_decay_names, [nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4), nn.Linear(4, 1)),\n"
            "                                nn.Conv2d(2, 2, 1)],\n"
            "               reference=reference_names, name='Exercise 4')"
        ),
        "Exercise 5": (
            "check_function(smoothed_loss_floor, [(3, 0.3), (1000, 0.05), (7, 0.5), (2, 1.0)],\n"
            "               reference=torch_loss_at_the_target, atol=1e-9, name='Exercise 5')"
        ),
    },
    "06b_bag_of_tricks_evidence": {
        "Exercise 1": (
            "check_function(verdicts, [({'x': [0.001, 0.002, 0.0015]},),\n"
            "                          ({'y': [-0.2, 0.1, 0.05], 'z': [-0.01, -0.011, -0.012]},)],\n"
            "               reference=reference_verdicts, name='Exercise 1')"
        ),
    },
    "07_speedrun": {
        "Exercise 1": (
            "_hidden_gen = torch.Generator().manual_seed(7)\n"
            "check_function(ema_step, [([torch.randn(3, 2, generator=_hidden_gen)], [torch.randn(3, 2, generator=_hidden_gen)], 0.5),\n"
            "                          ([torch.full((4,), 2.0), torch.zeros(1)], [torch.zeros(4), torch.ones(1)], 0.25)],\n"
            "               reference=library_ema_step, atol=1e-6, name='Exercise 1')"
        ),
        "Exercise 2": (
            "with torch.no_grad():\n"
            "    check_function(tta_classes, [(lopsided, torch.randn(5, 1, 6, 6, generator=torch.Generator().manual_seed(s)))\n"
            "                                 for s in (11, 12)],\n"
            "                   reference=lambda m, x: speed.flip_tta_logits(m, x).argmax(1), name='Exercise 2')"
        ),
        "Exercise 3": (
            "_hidden_patches = x[100:180].double()\n"
            "check_function(gram_of_whitening_matrix, [(speed.patch_covariance(_hidden_patches, 3), 1.0, _hidden_patches)],\n"
            "               reference=library_gram, atol=1e-6, rtol=1e-6, name='Exercise 3')"
        ),
        "Exercise 4": (
            "_hidden_runs = [{'config': {'variant': v}, 'seed': s, 'val_acc': [0.5, a]} for v, s, a in\n"
            "                [('full recipe', 4, 0.91), ('no EMA', 4, 0.92), ('full recipe', 1, 0.90), ('no EMA', 1, 0.88)]]\n"
            "check_function(ema_minus_raw, [(_hidden_runs,)], reference=lambda runs: speedrun.contribution(runs)['no EMA'],\n"
            "               atol=1e-12, name='Exercise 4')"
        ),
    },
}
