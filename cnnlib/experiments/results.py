"""The results file of an experiment: one JSON document, rewritten atomically after every run.

Schema (``results/NAME.json``)::

    {"experiment": NAME, "command": "python -m cnnlib.experiments NAME ...", "commit": "<40 hex>",
     "machine": {"cpu", "isa", "cpu_capability", "threads", "torch", "device", "python", "platform"},
     "created": "<ISO 8601 UTC>", "smoke": false, "protocol": {"epochs": 10, ...},
     "runs": [{"config": {...}, "seed": 0, "train_examples": 55000, "train_loss": [...],
               "train_error": [...], "val_acc": [...], "test_acc": 0.91, "seconds": 812.3,
               "commit": "<40 hex>", ...}, ...]}

A run is identified by its ``(config, seed)``: ``ResultsFile.has`` lets the runner skip what an
earlier, interrupted command already finished. The file is written to a temporary file in the
same folder, flushed to disk and renamed over the old one (``os.replace`` is atomic), so an
interruption leaves the previous complete file, never half of one.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from cnnlib.experiments.stats import config_text
from cnnlib.files import write_json_atomic

RUN_KEYS = ("config", "seed", "train_examples", "train_loss", "train_error", "val_acc", "test_acc", "seconds")
TOP_KEYS = ("experiment", "command", "commit", "machine", "created", "runs")
MACHINE_KEYS = ("cpu", "isa", "cpu_capability", "threads", "torch", "device")
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve")
PACKAGE = Path(__file__).resolve().parents[1]  # cnnlib/: git finds the checkout holding it, if any


class ResultsMismatch(RuntimeError):
    """An existing results file belongs to another experiment, profile or machine."""


def _cpu_info() -> tuple[str, list[str]]:
    """The CPU's model name and its flags, from /proc/cpuinfo where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("model name") or fields.get("Hardware") or platform.processor() or platform.machine()
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return name, flags


def machine() -> dict:
    """What produced the numbers: CPU model, its SIMD extensions that change float kernels,
    torch's CPU capability and thread count, torch version, the device trained on."""
    name, flags = _cpu_info()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {
        "cpu": name,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _same_machine(a: dict, b: dict) -> bool:
    """Whether two machine records would compute the same kernels (the device and CPU fields)."""
    return all(a.get(key) == b.get(key) for key in MACHINE_KEYS)


def git_commit() -> str:
    """The checked-out commit of the repository holding cnnlib, with ``-dirty`` when cnnlib/ has
    uncommitted changes (a result then comes from code that no commit holds); ``unknown`` without
    git or for an installed wheel."""
    try:
        head = subprocess.run(["git", "-C", str(PACKAGE), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(PACKAGE), "status", "--porcelain", "--", "."],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if changes else "")


def config_key(config: dict, seed: int) -> str:
    """A canonical text for a (configuration, seed) pair: key order does not matter."""
    return f"{config_text(config)} seed={seed}"


class ResultsFile:
    """An experiment's results on disk: opened (or started) once, then ``add`` after each run."""

    def __init__(self, path: str | os.PathLike, experiment: str, command: str, smoke: bool, protocol: dict) -> None:
        self.path = Path(path)
        self.commit = git_commit()  # of the code this process imported
        here = machine()
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except json.JSONDecodeError as error:
                raise ResultsMismatch(f"{self.path} is not valid JSON ({error}): move it away or pass another --out")
            if data.get("experiment") != experiment:
                raise ResultsMismatch(f"{self.path} holds experiment {data.get('experiment')!r}, not {experiment!r}: "
                                      "pass another --out")
            if bool(data.get("smoke")) != smoke:
                raise ResultsMismatch(f"{self.path} holds {'smoke' if data.get('smoke') else 'full'} runs and this is "
                                      f"a {'smoke' if smoke else 'full'} run: pass another --out")
            if data.get("protocol") != protocol:
                raise ResultsMismatch(f"{self.path} was run with the protocol {data.get('protocol')}; the experiment's "
                                      f"is now {protocol}. Its runs cannot be continued: pass another --out")
            if not _same_machine(data["machine"], here):
                theirs = {k: data["machine"].get(k) for k in MACHINE_KEYS}
                ours = {k: here.get(k) for k in MACHINE_KEYS}
                raise ResultsMismatch(f"{self.path} was produced on {theirs}; this machine is {ours}. Runs of "
                                      "different machines do not belong in one file: pass another --out")
            self.data = data
        else:
            self.data = {"experiment": experiment, "command": command, "commit": self.commit, "machine": here,
                         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         "smoke": smoke, "protocol": protocol, "runs": []}
        self._done = {config_key(run["config"], run["seed"]) for run in self.data["runs"]}

    @property
    def runs(self) -> list[dict]:
        return self.data["runs"]

    def has(self, config: dict, seed: int) -> bool:
        return config_key(config, seed) in self._done

    def add(self, run: dict) -> None:
        """Append one finished run and write the whole file atomically."""
        missing = [key for key in RUN_KEYS if key not in run]
        if missing:
            raise ValueError(f"a run record needs {missing} too (it has {sorted(run)})")
        if self.has(run["config"], run["seed"]):
            raise ValueError(f"the run {config_key(run['config'], run['seed'])} is already in {self.path}")
        self.data["runs"].append({**run, "commit": self.commit})
        self._done.add(config_key(run["config"], run["seed"]))
        write_json_atomic(self.path, self.data)


def load(path: str | os.PathLike) -> dict:
    """A results file as a dict (see the module docstring for its keys)."""
    return json.loads(Path(path).read_text())


def provenance(data: dict) -> str:
    """Where a results document's figures come from, in one line: runs, seeds, training images,
    the machine and the commit, or every commit its runs were made at when a resumed command ran
    at several (the file's own first)."""
    runs = data["runs"]
    configs = {config_text(run["config"]) for run in runs}
    seeds = sorted({run["seed"] for run in runs})
    examples = sorted({run["train_examples"] for run in runs})
    m = data["machine"]
    threads = f"{m['threads']} thread{'s' * (m['threads'] != 1)}"
    hours = sum(run["seconds"] for run in runs) / 3600
    commits = list(dict.fromkeys([data["commit"][:7]] + [run["commit"][:7] for run in runs if run.get("commit")]))
    made_at = f"commit {commits[0]}" if len(commits) == 1 else f"commits {', '.join(commits)}"
    return (f"{data['experiment']}: {len(runs)} runs ({len(configs)} configurations x seeds {seeds}), "
            f"{' / '.join(f'{n:,}' for n in examples)} training images each; {m['cpu']} "
            f"({m['cpu_capability']}), {threads}, torch {m['torch']}, {m['device']}; "
            f"{hours:.1f} hours; {made_at}, {data['created'][:10]}")


def problems(data: dict, min_seeds: int = 3, min_train_examples: int = 50_000) -> list[str]:
    """What is wrong with a results document, as sentences (empty: it holds to the schema).

    Beyond the keys: a clean 40-hex commit, a machine record, an ISO ``created``, runs that are
    not smoke runs, no (config, seed) twice, per-epoch lists as long as the run's epochs (a
    diverged run has none and ``test_acc`` None), accuracies in [0, 1], at least
    ``min_seeds`` seeds per configuration and ``min_train_examples`` training examples per run.
    """
    found = [f"missing top-level key {key!r}" for key in TOP_KEYS if key not in data]
    if found:
        return found
    if not re.fullmatch(r"[0-9a-f]{40}", str(data["commit"])):
        found.append(f"commit {data['commit']!r} is not a clean 40-hex commit")
    found += [f"machine lacks {key!r}" for key in MACHINE_KEYS if key not in data["machine"]]
    try:
        datetime.datetime.fromisoformat(data["created"])
    except (TypeError, ValueError):
        found.append(f"created {data['created']!r} is not an ISO 8601 time")
    if data.get("smoke"):
        found.append("these are smoke runs, not results")
    seeds: dict[str, set] = {}
    for i, run in enumerate(data["runs"]):
        missing = [key for key in RUN_KEYS if key not in run]
        if missing:
            found.append(f"run {i} lacks {missing}")
            continue
        key = config_text(run["config"])
        if run["seed"] in seeds.setdefault(key, set()):
            found.append(f"run {i}: config {key} with seed {run['seed']} appears twice")
        seeds[key].add(run["seed"])
        if run["train_examples"] < min_train_examples:
            found.append(f"run {i} trained on {run['train_examples']} examples, fewer than {min_train_examples}")
        lengths = {len(run[k]) for k in ("train_loss", "train_error", "val_acc")}
        if run.get("diverged"):
            if run["test_acc"] is not None or lengths != {0}:
                found.append(f"run {i} diverged but holds figures")
            continue
        if lengths != {run.get("epochs", len(run["train_loss"]))} or not lengths - {0}:
            found.append(f"run {i}: per-epoch lists of lengths {sorted(lengths)} for {run.get('epochs')} epochs")
        accuracies = [run["test_acc"], *run["val_acc"], *run["train_error"]]
        if not all(isinstance(a, (int, float)) and 0 <= a <= 1 for a in accuracies):
            found.append(f"run {i}: an accuracy or error outside [0, 1]")
        if not run["seconds"] > 0:
            found.append(f"run {i}: seconds {run['seconds']} is not positive")
    found += [f"config {key} has {len(s)} seeds, fewer than {min_seeds}" for key, s in seeds.items()
              if len(s) < min_seeds]
    if not data["runs"]:
        found.append("no runs")
    return found
