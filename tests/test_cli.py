"""The command-line trainer, in one process and as two Gloo processes under torchrun on loopback.

The two-process test uses AlexNet's small layout with dropout off: it has no BatchNorm, so one
process with batch 64 and two processes with 32 each compute the same gradients (BatchNorm would
normalise each half-batch with its own statistics, dropout would draw other masks).
"""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from torchvision import datasets

from cnnlib.cli import TRICKS, main, parse_args
from cnnlib.training.loop import History

REPO = Path(__file__).resolve().parents[1]
TRAIN_EXAMPLES, TEST_EXAMPLES = 512, 256  # --subset, --test-subset
ARGS = ["--model", "alexnet", "--variant", "layout=small", "--variant", "dropout=0.0", "--dataset", "fashion-mnist",
        "--epochs", "1", "--batch-size", "64", "--lr", "0.05", "--subset", str(TRAIN_EXAMPLES),
        "--test-subset", str(TEST_EXAMPLES), "--amp", "off", "--quiet"]
# Two ranks sum the same 64 per-example gradients in another order than one process: fp32 sums
# of 64 terms that differ in the last bits. Measured: weights differ by at most 1.5e-7 and the loss
# by 2.4e-7 after an epoch. So an example whose two largest logits are that close may change its
# prediction: the accuracies may differ by an example or two.
TOLERANCE = 1e-5


def run(command: list[str], cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_arguments():
    args = parse_args(["--model", "resnet18", "--tricks", "cosine,mixup", "--variant", "stem_type=deep",
                       "--variant", "depth=20", "--amp", "bf16"])
    assert args.tricks == ["cosine", "mixup"] and args.variant == [("stem_type", "deep"), ("depth", 20)]
    assert parse_args(["--model", "resnet18", "--warmup-epochs", "0.5"]).warmup_epochs == 0.5
    with pytest.raises(SystemExit):
        parse_args(["--model", "resnet18", "--tricks", "cosine,dropblock"])


def test_two_processes_match_one(tmp_path):
    run([sys.executable, "-m", "cnnlib.cli", *ARGS, "--out", "single.json", "--save-weights", "single.pt"], tmp_path)
    # --standalone: torchrun starts its own rendezvous on a port it picks itself
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run([*torchrun, "-m", "cnnlib.cli", *ARGS, "--out", "ddp.json", "--save-weights", "ddp.pt"], tmp_path)

    single, ranks = torch.load(tmp_path / "single.pt"), [torch.load(tmp_path / f"ddp.rank{r}.pt") for r in (0, 1)]
    for name, weight in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name])
        torch.testing.assert_close(ranks[0][name], weight, rtol=0, atol=TOLERANCE)
    one, two = History.load(tmp_path / "single.json"), History.load(tmp_path / "ddp.json")
    assert two.train_loss == pytest.approx(one.train_loss, abs=TOLERANCE)
    assert two.train_acc == pytest.approx(one.train_acc, abs=2 / TRAIN_EXAMPLES)
    assert two.test_acc == pytest.approx(one.test_acc, abs=2 / TEST_EXAMPLES)
    assert two.lr == one.lr  # the schedule depends on the step count only
    assert [row["epoch"] for row in two.epochs] == [1] and not two.interrupted


def test_all_tricks_on_a_registry_model(tmp_path, capsys):
    history = main(["--model", "small_resnet", "--epochs", "2", "--batch-size", "32", "--subset", "64",
                    "--test-subset", "32", "--tricks", ",".join(TRICKS), "--weight-decay", "5e-4", "--amp", "off",
                    "--out", str(tmp_path / "h.json")])
    assert History.load(tmp_path / "h.json") == history and len(history.epochs) == 2
    assert history.lr[0] == pytest.approx(0.05) and history.lr[1] < 0.05  # warmup to the full rate, then cosine
    out = capsys.readouterr().out
    assert out.startswith("small_resnet: 308,538 parameters") and "epoch 2/2  loss" in out


def test_console_script_and_module_run_the_same_entry():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["cnnlib-train"].partition(":")
    assert (module, name) == ("cnnlib.cli", "run")
    importing = "import sys, cnnlib.training.loop; print(sorted(m for m in sys.modules if m.startswith('cnnlib')))"
    done = subprocess.run([sys.executable, "-c", importing], env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert "cnnlib.cli" not in done.stdout and "cnnlib.training.loop" in done.stdout  # train does not import cli


def error_line(capsys, argv: list[str]) -> str:
    """The one line that main prints for bad input, after exiting with argparse's status 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("cnnlib-train: error: ")
    return captured.err


def test_an_unknown_model_or_variant_is_one_line(capsys):
    err = error_line(capsys, ["--model", "resnet05"])
    assert err.count("\n") == 1 and "unknown model 'resnet05'" in err and "'resnet50'" in err
    err = error_line(capsys, ["--model", "resnet18", "--variant", "lrn=True"])
    assert err.count("\n") == 1 and "unexpected keyword argument 'lrn'" in err


def test_an_input_size_the_model_cannot_take_is_one_line(capsys):
    err = error_line(capsys, ["--model", "alexnet", "--variant", "layout=paper"])  # 28x28 images
    assert err.count("\n") == 1 and "--resize 28: input of 28x28 is too small for AlexNet" in err
    assert "227x227" in err


def test_missing_data_says_what_to_put_where(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLIB_DATA", str(tmp_path))
    for cls in (datasets.MNIST, datasets.FashionMNIST):
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])  # any download fails at once
    err = error_line(capsys, ["--model", "small_resnet", "--dataset", "mnist"])
    assert f"--dataset mnist: MNIST is not in {tmp_path}" in err and "train-images-idx3-ubyte.gz (missing)" in err
    assert err.count("\n") == 1


def test_resume_from_a_checkpoint_of_another_model_or_recipe(capsys, tmp_path):
    checkpoint = ["--checkpoint", str(tmp_path / "run.pt"), "--resume"]
    tiny = ["--epochs", "1", "--batch-size", "32", "--subset", "64", "--test-subset", "32", "--amp", "off", "--quiet"]
    main(["--model", "small_resnet", *tiny, *checkpoint])
    err = error_line(capsys, ["--model", "small_inception", *tiny, *checkpoint])
    assert err.count("\n") == 1 and "holds the weights of another model" in err
    err = error_line(capsys, ["--model", "small_resnet", "--tricks", "no-bias-decay,cosine", *tiny, *checkpoint])
    assert err.count("\n") == 1 and "another recipe: --tricks [] (this run: ['no-bias-decay', 'cosine'])" in err
    err = error_line(capsys, ["--model", "small_resnet", "--lr", "0.1", "--seed", "3", *tiny, *checkpoint])
    assert "--lr 0.05 (this run: 0.1), --seed 0 (this run: 3)" in err  # same weights and groups, another recipe
    main(["--model", "small_resnet", *tiny, *checkpoint])  # the same options resume
    err = error_line(capsys, ["--model", "small_resnet", "--resume"])
    assert "--resume needs --checkpoint" in err


def test_bad_input_from_the_command_line_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cnnlib.cli", "--model", "nonexistent"], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("cnnlib-train: error: --model nonexistent: unknown model 'nonexistent'")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
