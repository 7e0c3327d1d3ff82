"""The ``lthkit`` command: ``lthkit imp`` finds tickets, ``lthkit train`` trains one dense net,
``lthkit data download|verify`` prepares the datasets, ``lthkit doctor`` checks a machine,
``lthkit export`` writes a ticket as a plain, compactly stored network, ``lthkit progress`` shows a
learner's exercises, ``lthkit grade`` runs a class's notebooks and tables their verdicts.

Every option of ``imp`` and ``train`` but the run's own (``--out``, ``--resume``...) is made from
one field of ``ExperimentConfig`` or its ``TrainConfig`` (``lthkit.settings``); options left out
take the paper's value for the chosen model, and the run prints each setting that differs.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import re
import shlex
import sys
from pathlib import Path

import torch

from lthkit import files
from lthkit.catalogue import DATASETS
from lthkit.config import TEXT_TYPES, ConfigError, ExperimentConfig, make_config, setting_fields, setting_names
from lthkit.data import DataMissingError
from lthkit.determinism import use_deterministic
from lthkit.export import FORMATS, export_run
from lthkit.course import BUDGET_NAMES
from lthkit.course.doctor import run_doctor
from lthkit.course.grade import DEFAULT_TIMEOUT_S, GradeError
from lthkit.fetch import FetchError, check, fetch
from lthkit.imp import run_imp, run_imp_seeds, ticket_costs
from lthkit.results import print_arm
from lthkit.sparse_training import SparseConfig, run_sparse
from lthkit.stacked import ENGINES
from lthkit.sweep import CELL_TIMEOUT_S, SweepError, parse_seeds


def _typed(parse):
    """An option's parser whose errors argparse prints as they are (it hides a ValueError's)."""
    def read(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    read.__name__ = parse.__name__
    return read


def _add_setting_options(p: argparse.ArgumentParser, command: str) -> None:
    """One option per field of ``ExperimentConfig`` and ``TrainConfig`` that carries one
    (``lthkit.settings.Option``); ``lthkit train`` leaves out what only IMP's later rounds use."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in setting_fields():
        opt = f.metadata.get("option")
        if opt is None or (opt.imp_only and command != "imp"):
            continue
        if opt.group and opt.group not in groups:
            groups[opt.group] = p.add_mutually_exclusive_group()
        target = groups[opt.group] if opt.group else p
        details: dict = {"help": _naming_choices(opt.help, opt.choices), "dest": f.name}
        if f.type in ("bool", "bool | None"):
            details["action"] = argparse.BooleanOptionalAction
        else:
            details["type"] = _typed(opt.parse) if opt.parse else TEXT_TYPES[f.type]
            details["metavar"] = (opt.flag or f.name).lstrip("-").replace("-", "_").upper()
            if opt.choices:
                details["choices"] = list(opt.choices)
        target.add_argument(opt.flag or "--" + f.name.replace("_", "-"), **details)


def _naming_choices(help: str, choices) -> str:
    """An option's help that names every value it takes (argparse's {a,b} gives way to the metavar)."""
    missing = [c for c in choices or () if not re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", help)]
    return f"{help}; one of {', '.join(choices)}" if missing else help


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """How a run is carried out, not what it is: not settings, not recorded."""
    p.add_argument("--deterministic", action="store_true",
                   help="the same numbers bit for bit on a CUDA GPU too: deterministic algorithms only and "
                        "cuBLAS's deterministic workspace (CUBLAS_WORKSPACE_CONFIG=:4096:8); slower on a GPU, "
                        "no effect on the CPU's results, which are reproducible anyway")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json and checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run already in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars (they show only on a terminal anyway)")
    p.add_argument("--threads", type=_positive, metavar="N",
                   help=f"CPU threads to compute on (default: PyTorch's, {torch.get_num_threads()} here, or "
                        f"OMP_NUM_THREADS). Recorded with the run: the thread count changes the last bits of "
                        f"the results, so a resume on another is refused")
    p.add_argument("--other-threads", action="store_true",
                   help="resume even on another thread count than the run's rounds so far (said; later rounds "
                        "then differ in their last bits from an uninterrupted run)")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="how the networks of a round train together: stacked into one computation (on CUDA captured "
                        "as a CUDA graph), loop (one after another in each step: each bit for bit as alone), or auto, "
                        "what has been measured faster (for now the loop everywhere: stacked has not yet run on a "
                        "GPU; the run says which). "
                        "Default: auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lthkit", description="Find lottery tickets (Frankle & Carbin, 2019).")
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("imp", help="iterative magnitude pruning with rewinding and controls",
                         description="Iterative magnitude pruning: train, prune, rewind, repeat. Writes "
                                     "OUT/results.json and a checkpoint per round.")
    _add_setting_options(imp, "imp")
    _add_run_options(imp)
    imp.add_argument("--seeds", help="several runs, one per seed (0-4 or 0,2,5) in OUT/seedN, going through their "
                                      "rounds in step with every seed's networks of a round trained together "
                                      "(instead of --seed)")
    imp.add_argument("--dense-from", type=Path,
                     help="folder of an earlier run whose dense round 0 was trained with the same settings: take it "
                          "from there instead of training it again (bit for bit the same); with --seeds, the --out "
                          "of an earlier run with --seeds (its seedN folders)")
    imp.add_argument("--ticket-from", metavar="RUN[:ROUND]",
                     help="train the tickets of another run (each round's, or ROUND's alone: its mask on its rewound "
                          "weights) with these settings (another --dataset or --optimizer), beside the target's own "
                          "ticket of each round from the IMP run in --dense-from (made with these settings) and the "
                          "controls random and reinit (lthkit.transfer)")

    train = sub.add_parser("train", help="train one dense network",
                           description="Train one dense network exactly as IMP's round 0 does (the same as "
                                       "'lthkit imp --rounds 0 --controls \'\''). Writes OUT/results.json.")
    _add_setting_options(train, "train")
    _add_run_options(train)
    _add_sparse_options(train)

    data = sub.add_parser("data", help="download or verify the course's datasets",
                          description="Fetch every dataset the course uses, each file checked against its "
                                      "published MD5, or only check what is there.")
    data_sub = data.add_subparsers(dest="action", required=True)
    download = data_sub.add_parser("download", help="fetch what is missing or damaged; nothing when all is verified",
                                   description="Fetch what is missing or damaged into the data folder and verify "
                                               "every file; files already verified are not downloaded again.")
    verify = data_sub.add_parser("verify", help="check every file's MD5, downloading nothing",
                                 description="Check every file's MD5, downloading nothing; exits 1 if any is "
                                             "missing or damaged.")
    for p in (download, verify):
        p.add_argument("--root", type=Path,
                       help="data folder (default: $LTHKIT_DATA if set, else the repository's data/)")
        p.add_argument("--datasets", type=_datasets, default=tuple(DATASETS),
                       help=f"comma-separated datasets (default: {','.join(DATASETS)})")
    download.add_argument("--mirror",
                          help="base URL to fetch from instead of the official addresses, with files laid out as "
                               "in a data folder (such as a prepared folder served by 'python -m http.server')")
    download.add_argument("--quiet", action="store_true", help="no progress bars")

    doctor = sub.add_parser("doctor", help="check this machine and predict each notebook's time",
                            description="Check versions, device, data and output folder, then time a short "
                                        "training burst and predict each notebook's training time at each budget.")
    doctor.add_argument("--root", type=Path,
                        help="data folder (default: $LTHKIT_DATA if set, else the repository's data/)")
    doctor.add_argument("--out", type=Path, help="folder the notebooks write to (default: notebooks/outputs)")
    doctor.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    doctor.add_argument("--iterations", type=_positive, default=300,
                        help="length of the LeNet-300-100 burst that times notebooks 00-04 (default: 300)")
    doctor.add_argument("--cifar-iterations", type=_positive, default=5,
                        help="length of each CIFAR-10 network's burst that times notebooks 05-06 (default: 5)")

    export = sub.add_parser("export", help="write a round's ticket as a plain network, compactly stored",
                            description="Write round R of a saved run as a plain network with no masks or hooks: "
                                        "pt stores each pruned layer compactly (a bitmask and the kept values, or "
                                        "CSR, whichever is smaller; lthkit.export.load_compact reads it back), "
                                        "onnx writes a dense ONNX graph. Prints what was written, with the test "
                                        "accuracy re-measured from the file.")
    export.add_argument("run", type=Path, help="folder of an lthkit imp run")
    export.add_argument("--round", type=int, required=True, help="the round whose ticket to write")
    export.add_argument("--format", choices=FORMATS, default="pt", help="pt (compact, default) or onnx")
    export.add_argument("--out", type=Path, required=True, help="file to write")
    export.add_argument("--rewound", action="store_true",
                        help="write the ticket as its round started training (the rewound weights), not as trained")
    export.add_argument("--no-accuracy", action="store_true", help="do not load the test set to re-measure accuracy")

    sweep = sub.add_parser(
        "sweep", help="many runs on Dask: seeds x settings, of lthkit imp or of a notebook",
        description="Run a grid of lthkit imp runs (or of a notebook, through papermill) on Dask's distributed "
                    "scheduler, one folder per job named by a hash of its settings: submitting the same sweep "
                    "again skips finished jobs and resumes the others. 'lthkit sweep collect DIR' merges the "
                    "results into DIR/sweep.csv, DIR/summary.csv (mean and 95% interval over seeds) and "
                    "DIR/sweep.png. Needs the sweep extra: pip install -e '.[sweep]'.")
    sweep.add_argument("action", nargs="?", choices=["collect"], help="collect: merge the results of the sweep in DIR")
    sweep.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="with collect: the sweep's folder")
    sweep.add_argument("--out", type=Path, help="the sweep's folder, one subfolder per job")
    sweep.add_argument("--seeds", default="0", help="seeds of every setting: 0-4 or 0,2,5 (default: 0)")
    sweep.add_argument("--set", action="append", default=[], metavar="NAME=VALUE[,VALUE...]", dest="sets",
                       help="a setting of lthkit imp (model=conv2,conv4; rewind-iteration=0,500) or a parameter of "
                            "the notebook (budget=classroom), with its values; repeat for more settings. Values "
                            "that hold commas themselves (controls, prune-rate) separate alternatives by ';'")
    sweep.add_argument("--notebook", type=Path, help="run this notebook with each job's parameters (papermill) "
                                                     "instead of lthkit imp")
    sweep.add_argument("--scheduler", help="address of a running Dask scheduler, such as tcp://HOST:8786 (default: "
                                           "a LocalCluster on this machine)")
    sweep.add_argument("--workers", type=_positive, help="workers of the LocalCluster (default: one per core)")
    sweep.add_argument("--threads-per-job", type=_positive, default=1, help="CPU threads each job computes on, "
                                                                            "part of its key: they change the last "
                                                                            "bits of its results (default: 1)")
    sweep.add_argument("--cell-timeout", type=_non_negative, default=CELL_TIMEOUT_S, metavar="SECONDS",
                       help="with --notebook: a cell running longer fails its job (default: 3600; 0: no limit, for "
                            "paper budgets): papermill can block on a widget's cell for good")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--reference", metavar="NAME",
                       help="with collect: also copy each lthkit imp job's results.json to "
                            "notebooks/reference/NAME-seedN.json, NAME formatted with the job's settings "
                            "(mnist-at-init-{method})")
    sweep.add_argument("--reference-dir", type=Path, help="with --reference: the folder to copy to (default: "
                                                          "the course's notebooks/reference)")
    _add_classroom_parsers(sub)
    return parser


def _add_classroom_parsers(sub) -> None:
    """``lthkit progress`` for a learner, ``lthkit grade`` for a teacher (``lthkit.course.progress``, ``.grade``)."""
    progress = sub.add_parser("progress", help="which exercises of your notebooks pass, are wrong or are not done yet",
                              description="Per notebook in FOLDER, each exercise (its check(...) call) with the "
                                          "verdict its checker last recorded: pass, wrong, or not done.")
    progress.add_argument("folder", nargs="?", type=Path, default=Path("student"), metavar="FOLDER",
                          help="the folder of your notebooks (default: student, what make lab opens)")
    grade = sub.add_parser("grade", help="run each learner's notebooks and table every exercise's verdict",
                           description="DIR holds one folder per learner. Each notebook is copied into OUT and run "
                                       "there with papermill, in a process of its own; OUT/grades.csv and "
                                       "OUT/grades.html then hold every exercise's verdict per learner. Nothing in "
                                       "DIR is changed; a notebook that fails or runs too long is reported so.")
    grade.add_argument("folder", type=Path, metavar="DIR", help="the collected copies, one folder per learner")
    grade.add_argument("--out", type=Path, help="where the runs, grades.csv and grades.html go (default: DIR-grades, "
                                                "beside DIR)")
    grade.add_argument("--timeout", type=_positive, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help=f"a cell running longer stops its notebook, reported as timed out "
                            f"(default: {DEFAULT_TIMEOUT_S})")
    grade.add_argument("--budget", choices=BUDGET_NAMES, default="test",
                       help=f"the budget each notebook runs at: {', '.join(BUDGET_NAMES)} (default: test, "
                            f"seconds per notebook)")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"give 0 or more seconds, not {value}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _datasets(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown datasets {text!r}: choose from {','.join(DATASETS)}")
    return names


def _data(args: argparse.Namespace) -> int:
    if args.action == "download":
        fetch(args.datasets, args.root, mirror=args.mirror, progress=not args.quiet)
        return 0
    broken = 0
    for name in args.datasets:
        state = check(name, args.root)
        for path in state.missing:
            print(f"{path}: missing")
        for path in state.corrupted:
            print(f"{path}: checksum mismatch (truncated or damaged)")
        for path in state.stale:
            print(f"{path}: differs from its archive")
        print(f"{name}: verified in {state.root}" if state.ok else f"{name}: not verified")
        broken += not state.ok
    if broken:
        print("fix with: lthkit data download" + (f" --root {args.root}" if args.root else ""))
    return 1 if broken else 0


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The options given (None: left out, the paper's value) as one checked configuration;
    ``lthkit train`` is IMP's round 0 alone."""
    settings = {name: getattr(args, name) for name in setting_names() if hasattr(args, name)}
    if args.command != "imp":
        settings.update(rounds=0, controls=())
    return make_config(**settings)


def _sweep(args: argparse.Namespace) -> int:
    from lthkit.sweep import expand, parse_set, run_sweep

    if args.out is None or args.folder is not None:
        raise SweepError("give the sweep's folder with --out DIR (or collect one: lthkit sweep collect DIR)")
    if args.reference or args.reference_dir:
        raise SweepError("--reference and --reference-dir copy a finished sweep's runs: give them to collect "
                         "(lthkit sweep collect DIR --reference NAME)")
    sets = dict(parse_set(text) for text in args.sets)
    if len(sets) != len(args.sets):
        raise SweepError("each setting takes one --set, with all its values")
    jobs = expand(parse_seeds(args.seeds), sets, notebook=args.notebook)
    print(f"{len(jobs)} jobs into {args.out}")
    report = run_sweep(jobs, args.out, scheduler=args.scheduler, workers=args.workers,
                       threads_per_job=args.threads_per_job, cell_timeout=args.cell_timeout, progress=not args.quiet)
    print(report.summary())
    return 0 if report.ok else 1


def _collect(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from lthkit.course import REFERENCE_DIR
    from lthkit.course.plots import plot_sweep, use_style
    from lthkit.sweep_results import (collect, finished_runs, format_summary, runs_by_setting, summarize,
                                      write_csv)

    if args.folder is None:
        raise SweepError("give the sweep's folder: lthkit sweep collect DIR")
    if args.reference_dir and not args.reference:
        raise SweepError("--reference-dir is where --reference copies to: give --reference NAME too")
    rows = collect(args.folder)
    if not rows:
        raise SweepError(f"{args.folder} holds no finished job: run the sweep first (lthkit sweep --out DIR ...)")
    summary = summarize(rows)
    write_csv(args.folder / "sweep.csv", rows)
    write_csv(args.folder / "summary.csv", summary)
    print(format_summary(summary))
    use_style()
    files.save_figure(plot_sweep(runs_by_setting(args.folder)), args.folder / "sweep.png")
    print(f"written: {args.folder / 'sweep.csv'}, {args.folder / 'summary.csv'}, {args.folder / 'sweep.png'}")
    if args.reference:

        copies: dict[Path, tuple[str, str, int, str]] = {}  # every name first: nothing is copied if one clashes
        for setting, seed, key, run, _ in finished_runs(args.folder):
            if run != "run":  # a notebook job's runs: not a reference run
                continue
            settings = files.read_json(args.folder / key / "job.json")["settings"]
            try:
                name = args.reference.format(**{k.replace("-", "_"): v for k, v in settings.items()})
            except (KeyError, IndexError) as err:
                raise SweepError(f"--reference {args.reference!r} names {err}, which job {key} does not set; "
                                 f"its settings are {', '.join(settings)}") from None
            target = (args.reference_dir or REFERENCE_DIR) / f"{name}-seed{seed}.json"
            if target in copies:
                raise SweepError(f"jobs {copies[target][0]} and {key} would both be {target.name}: put the setting "
                                 f"that tells them apart into --reference, such as {{method}}")
            copies[target] = (key, run, seed, setting)
        for target, (key, run, seed, setting) in copies.items():
            files.write_bytes(target, (args.folder / key / run / "results.json").read_bytes())
            print(f"  {setting or 'the sweep'}, seed {seed} -> {target}")
    return 0


def _print_departures(config: ExperimentConfig) -> None:
    departures = config.departures_from_paper()
    if departures:
        print("Differs from the paper's setup for this model:")
        for name, (ours, theirs) in departures.items():
            print(f"  {name}: {ours} (paper: {theirs})")


def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        report = export_run(args.run, args.round, args.out, fmt=args.format, rewound=args.rewound,
                            measure=not args.no_accuracy)
    except (FileNotFoundError, ValueError, DataMissingError) as err:
        if isinstance(err, OSError) and err.filename:
            raise  # the system's words: main names the file
        parser.exit(2, f"lthkit: error: {err}\n")
    except ImportError as err:
        parser.exit(2, f"lthkit: error: {err.name or err} is missing: ONNX needs onnx, onnxscript and onnxruntime, "
                       f"which the course extra installs (pip install -e '.[course]')\n")
    print(f"round {report['round']} of {report['run']} ({report['weights']} weights), {report['model']}: "
          f"{report['kept_weights']:,} of {report['prunable_weights']:,} prunable weights kept "
          f"({report['weights_remaining']:.1%})")
    print(f"wrote {args.out} ({args.format}): {report['bytes']:,} bytes, against {report['dense_bytes']:,} for the "
          f"dense state dict" + (f"; layers as {report['layers']}" if "layers" in report else ""))
    if "test_accuracy" in report:
        print(f"test accuracy re-measured from the file: {report['test_accuracy']:.2%}")
    return 0


def _progress(args: argparse.Namespace) -> int:
    from lthkit.course.progress import format_progress

    print(format_progress(args.folder))
    return 0


def _grade(args: argparse.Namespace) -> int:
    from lthkit.course.grade import grade, summary

    out = args.out or args.folder.resolve().with_name(args.folder.resolve().name + "-grades")
    runs = grade(args.folder, out, budget=args.budget, timeout=args.timeout,
                 on_run=lambda run: print(f"{run.learner}/{run.notebook}: {run.outcome}", flush=True))
    print(summary(runs))
    print(f"written: {out / 'grades.csv'}, {out / 'grades.html'}")
    return 0


# --- dynamic sparse training: lthkit train --sparse rigl|set|static (lthkit.sparse_training) ---------------


def _add_sparse_options(p: argparse.ArgumentParser) -> None:
    """One option per field of ``SparseConfig``; without ``--sparse``, ``lthkit train`` trains dense."""
    from dataclasses import fields

    for f in fields(SparseConfig):
        opt = f.metadata["option"]
        p.add_argument(opt.flag or "--" + f.name.replace("_", "-"), dest=f"sparse_{f.name}", help=opt.help,
                       type={"float": float, "int": int}.get(f.type, str), choices=opt.choices,
                       metavar=None if opt.choices else f.name.upper())


def _sparse(args: argparse.Namespace, config: ExperimentConfig) -> int:
    from dataclasses import fields

    sparse = SparseConfig(**{f.name: getattr(args, f"sparse_{f.name}") for f in fields(SparseConfig)
                             if getattr(args, f"sparse_{f.name}") is not None})
    run = run_sparse(config, sparse, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    print(f"{sparse.method} at {run.mask.weights_remaining():.2%} of the weights: "
          f"{run.result.early_stop_test_accuracy:.2%} at early stop (iteration {run.result.early_stop_iteration}), "
          f"{run.result.test_accuracy:.2%} at the end; {len(run.updates)} mask updates moved "
          f"{sum(sum(u.moved.values()) for u in run.updates):,} connections")
    print(f"results in {args.out / 'results.json'}")
    return 0


def _transfer(args: argparse.Namespace, config: ExperimentConfig) -> int:
    """``lthkit imp --ticket-from RUN[:ROUND] --dense-from TARGET``: a ticket trained in this configuration."""
    from lthkit.transfer import parse_ticket_from, run_transfer

    if args.dense_from is None or args.seeds is not None:
        raise ConfigError("--ticket-from needs --dense-from (the IMP run on the target, made with these settings, "
                          "whose tickets it is compared with) and one --seed, not --seeds")
    source, r = parse_ticket_from(args.ticket_from)
    results = run_transfer(config, source, args.dense_from, args.out, rounds=[r] if r is not None else None,
                           resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, on_arm=print_arm,
                           engine=args.engine)
    print(results.table())
    print(f"results in {args.out / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _at_the_edge(parser, args, sys.argv[1:] if argv is None else list(argv)):
        return _command(args, parser)


USER_ERRORS = (ConfigError, DataMissingError, SweepError, FetchError, GradeError)
"""What a user can cause and the message mends: each says what to change."""


@contextlib.contextmanager
def _at_the_edge(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]):
    """The one place where an error a user can cause becomes one line that names the file or setting
    and says what to do, and Ctrl-C says how to go on; anything else is a bug and keeps its traceback."""
    prefix = f"lthkit {args.command}: error: " if args.command in ("sweep", "grade") else "lthkit: error: "
    try:
        yield
    except KeyboardInterrupt:
        parser.exit(130, f"\nlthkit {args.command}: stopped. {_how_to_go_on(args, argv)}\n")
    except USER_ERRORS as err:
        parser.exit(2, f"{prefix}{err}\n")
    except OSError as err:
        parser.exit(2, f"{prefix}{_os_message(err)}\n")


def _how_to_go_on(args: argparse.Namespace, argv: list[str]) -> str:
    """After Ctrl-C: every file is whole (written atomically); what the command does to go on."""
    if args.command in ("imp", "train"):
        again = [a for a in argv if a != "--overwrite"] + ([] if "--resume" in argv else ["--resume"])
        return (f"Finished rounds and the last checkpoint are kept in {args.out}: resume with --resume "
                f"(lthkit {shlex.join(again)})")
    return {"sweep": "Finished jobs are kept: submit the same sweep again to go on with the others",
            "data": "Verified files are kept: run the same command again to fetch the rest"}.get(
        args.command, "Nothing was left half-written: run it again")


def _os_message(err: OSError) -> str:
    """An operating system's refusal, with the file it concerns and what to do about it."""
    if err.filename is None:
        return str(err)
    advice = {errno.EACCES: "choose a place you may write to", errno.EPERM: "choose a place you may write to",
              errno.EROFS: "the file system is read-only: choose a place on another",
              errno.EISDIR: "it is a folder: give a file's name",
              errno.ENOTDIR: "a part of the path is a file, not a folder",
              errno.ENOSPC: "the disk is full: free some space or choose another place",
              errno.ENOENT: "check the path"}.get(err.errno, "check the path and its permissions")
    return f"{err.filename}: {err.strerror or err}: {advice}"


def _command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the command ``args`` names (``main`` turns what a user can cause into messages)."""
    if args.command == "progress":
        return _progress(args)
    if args.command == "grade":
        try:
            return _grade(args)
        except GradeError as err:
            parser.exit(2, f"lthkit grade: error: {err}\n")
    if args.command == "data":
        try:
            return _data(args)
        except FetchError as err:
            parser.exit(2, f"lthkit: error: {err}\n")
    if args.command == "doctor":
        return 0 if run_doctor(args.root, args.out, device=args.device, iterations=args.iterations,
                                 cifar_iterations=args.cifar_iterations) else 1
    if args.command == "export":
        return _export(args, parser)
    if args.command == "sweep":
        try:
            return _collect(args) if args.action == "collect" else _sweep(args)
        except SweepError as err:
            parser.exit(2, f"lthkit sweep: error: {err}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deterministic:
        use_deterministic()  # before anything touches the GPU: cuBLAS reads its workspace setting once
    try:
        config = config_from_args(args)
        if args.resume and args.overwrite:
            raise ConfigError("--resume and --overwrite contradict each other: choose one")
        _print_departures(config)
        if getattr(args, "sparse_method", None):
            return _sparse(args, config)
        if getattr(args, "ticket_from", None):
            return _transfer(args, config)
        seeds = getattr(args, "seeds", None)
        if seeds is not None and args.seed is not None:
            raise ConfigError("give --seed (one run) or --seeds (several), not both")
        dense_from = getattr(args, "dense_from", None)
        if seeds is None:
            runs = {config.seed: (args.out, run_imp(config, args.out, resume=args.resume, overwrite=args.overwrite,
                                                    progress=not args.quiet, on_arm=print_arm, dense_from=dense_from,
                                                    engine=args.engine, other_threads=args.other_threads))}
        else:
            chosen = parse_seeds(seeds)
            found = run_imp_seeds(config, chosen, args.out, resume=args.resume, overwrite=args.overwrite,
                                  progress=not args.quiet, dense_from=dense_from, engine=args.engine,
                                  other_threads=args.other_threads,
                                  on_arm=lambda seed, *arm: print_arm(*arm, seed=seed))
            runs = {seed: (args.out / f"seed{seed}", results) for seed, results in zip(chosen, found)}
        for seed, (out, results) in runs.items():
            if args.command == "imp":
                print(("" if seeds is None else f"seed {seed}\n") + results.table())
                costs = ticket_costs(out)
                print("cost of each ticket: " + ", ".join(
                    f"round {r} {c['trainings']} training{'s' if c['trainings'] > 1 else ''} {c['seconds']:.0f} s"
                    for r, c in costs.items()))
            print(f"results in {out / 'results.json'}")
    except (ConfigError, DataMissingError, SweepError) as err:
        parser.exit(2, f"lthkit: error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
