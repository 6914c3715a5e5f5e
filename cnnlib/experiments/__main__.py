"""``python -m cnnlib.experiments NAME [--seeds N] [--out results/NAME.json] [--smoke]`` and ``--list``."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from cnnlib.experiments import EXPERIMENTS, get_experiment, results_folder, run_experiment
from cnnlib.experiments.protocol import Scale
from cnnlib.files import CourseFolderMissing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.experiments",
                                     description="Run a lesson's experiment; finished runs are kept, so a "
                                                 "second call continues where the first stopped.")
    parser.add_argument("name", nargs="?", help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="name and describe the experiments, then exit")
    parser.add_argument("--seeds", type=int, help="seeds per configuration (default: the experiment's, 3 for a "
                                                  "claim, 1 for a search)")
    parser.add_argument("--out", help="results file (default NAME.json in the course's results/, where lessons read it; with --smoke, a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny data, widths and epochs: checks that it runs")
    args = parser.parse_args(argv)
    if not args.list and not args.name:
        parser.error("name an experiment, or pass --list")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        for experiment in EXPERIMENTS.values():
            configs = experiment.configs(Scale.of(False))
            n = len(configs)
            print(f"{experiment.name:<16} lesson {experiment.lesson}  {n:>2} configuration{'s' * (n != 1):<1}  "
                  f"{experiment.claim}")
        return
    try:
        experiment = get_experiment(args.name)
    except ValueError as error:
        sys.exit(str(error))
    if args.smoke:
        default = Path(tempfile.gettempdir()) / "cnnlib-smoke"
    else:
        try:
            default = results_folder()  # where load_results reads: $CNNLIB_RESULTS, or results/ here or one up
        except CourseFolderMissing:
            default = Path("results")
    out = Path(args.out) if args.out else default / f"{experiment.name}.json"
    command = shlex.join(["python", "-m", "cnnlib.experiments", *(sys.argv[1:] if argv is None else argv)])
    results = run_experiment(experiment, out, seeds=experiment.seeds if args.seeds is None else args.seeds,
                              smoke=args.smoke, command=command)
    print(f"{len(results.runs)} runs in {out}")


if __name__ == "__main__":
    main()
