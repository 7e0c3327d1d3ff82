"""The ``lthkit`` command: ``lthkit imp`` finds tickets, ``lthkit train`` trains one dense net,
``lthkit data download|verify`` prepares the datasets, ``lthkit doctor`` checks a machine.

Every option maps onto one field of ``ExperimentConfig``; options left out take the
paper's value for the chosen model, and the run prints each setting that differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lthkit.catalogue import DATASETS
from lthkit.config import CONTROLS, ConfigError, ExperimentConfig, make_config, parse_prune_rates
from lthkit.data import DataMissingError
from lthkit.determinism import use_deterministic
from lthkit.doctor import run_doctor
from lthkit.fetch import FetchError, check, fetch
from lthkit.imp import run_imp
from lthkit.models import MODELS
from lthkit.results import print_arm


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read milestones {text!r}: give iterations such as 32000,48000")


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=list(DATASETS),
                   help="dataset (default: the paper's for the model: mnist for lenet300, cifar10 for conv2/4/6)")
    p.add_argument("--model", default="lenet300", choices=list(MODELS), help="network (default: lenet300)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="passes over the training set per training run")
    length.add_argument("--iterations", type=int,
                        help="training iterations per run (default: the paper's, 50000 for lenet300)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the paper's, 60)")
    p.add_argument("--lr", type=float, help="learning rate (default: the paper's for the model)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], help="optimiser (default: the paper's, adam)")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay (default: the paper's, 0 for the Adam nets)")
    p.add_argument("--warmup", type=int, help="iterations of linear learning-rate warm-up (default: the paper's, 0)")
    p.add_argument("--milestones", type=_milestones,
                   help="iterations at which the learning rate drops 10x, such as 32000,48000 (default: the "
                        "paper's, scaled to --iterations)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random crops and flips of training images (default: the paper's, on for resnet20)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and controls (default: 0)")
    p.add_argument("--subset", type=int,
                   help="train on a seeded class-balanced sample of this many images (default: all)")
    p.add_argument("--eval-every", type=int, default=100,
                   help="iterations between evaluations on validation and test sets (default: 100)")
    p.add_argument("--eval-images", type=int,
                   help="measure on the first N validation and N test images (default: all; fewer is faster, noisier)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    p.add_argument("--deterministic", action="store_true",
                   help="the same numbers bit for bit on a CUDA GPU too: deterministic algorithms only and "
                        "cuBLAS's deterministic workspace (CUBLAS_WORKSPACE_CONFIG=:4096:8); slower on a GPU, "
                        "no effect on the CPU's results, which are reproducible anyway")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json and checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run already in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lthkit", description="Find lottery tickets (Frankle & Carbin, 2019).")
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("imp", help="iterative magnitude pruning with rewinding and controls",
                         description="Iterative magnitude pruning: train, prune, rewind, repeat. Writes "
                                     "OUT/results.json and a checkpoint per round.")
    _add_training_options(imp)
    imp.add_argument("--rounds", type=int, default=15, help="pruning rounds after the dense round 0 (default: 15)")
    imp.add_argument("--controls", default=",".join(CONTROLS),
                     help="comma-separated controls to train each round: reinit, random, or '' (default: reinit,random)")
    imp.add_argument("--prune-rate",
                     help="fraction of surviving weights removed per round: one rate (0.2) or per kind "
                          "(conv=0.15,fc=0.2,output=0.1); default: the paper's for the model")
    imp.add_argument("--global", dest="global_pruning", action=argparse.BooleanOptionalAction,
                     help="prune by magnitude across all layers at once instead of layer by layer "
                          "(default: the paper's, layer by layer except for resnet20)")
    imp.add_argument("--rewind-iteration", type=int, default=0,
                     help="rewind survivors to their weights after this many iterations (default: 0, initialisation)")
    imp.add_argument("--dense-from", type=Path,
                     help="folder of an earlier run whose dense round 0 was trained with the same settings: take it "
                          "from there instead of training it again (bit for bit the same)")
    imp.add_argument("--retrain", default="rewind", choices=["rewind", "lr-rewind", "finetune"],
                     help="what each round retrains from: rewind (weights and schedule to --rewind-iteration, the "
                          "lottery ticket), lr-rewind (trained weights, schedule from --rewind-iteration) or "
                          "finetune (trained weights at the final learning rate); default: rewind")

    train = sub.add_parser("train", help="train one dense network",
                           description="Train one dense network exactly as IMP's round 0 does (the same as "
                                       "'lthkit imp --rounds 0 --controls \'\''). Writes OUT/results.json.")
    _add_training_options(train)

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
    return parser


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
    settings = dict(
        dataset=args.dataset, model=args.model, epochs=args.epochs, iterations=args.iterations,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, seed=args.seed, subset=args.subset,
        eval_every=args.eval_every, eval_images=args.eval_images, device=args.device, weight_decay=args.weight_decay, warmup=args.warmup,
        milestones=args.milestones, augment=args.augment,
    )
    if args.command == "imp":
        settings.update(
            rounds=args.rounds, controls=args.controls, rewind_iteration=args.rewind_iteration,
            global_pruning=args.global_pruning, retrain=args.retrain,
            prune_rates=parse_prune_rates(args.prune_rate) if args.prune_rate else None,
        )
    else:
        settings.update(rounds=0, controls=())
    return make_config(**settings)


def _print_departures(config: ExperimentConfig) -> None:
    departures = config.departures_from_paper()
    if departures:
        print("Differs from the paper's setup for this model:")
        for name, (ours, theirs) in departures.items():
            print(f"  {name}: {ours} (paper: {theirs})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "data":
        try:
            return _data(args)
        except FetchError as err:
            parser.exit(2, f"lthkit: error: {err}\n")
    if args.command == "doctor":
        return 0 if run_doctor(args.root, args.out, device=args.device, iterations=args.iterations,
                                 cifar_iterations=args.cifar_iterations) else 1
    if args.deterministic:
        use_deterministic()  # before anything touches the GPU: cuBLAS reads its workspace setting once
    try:
        config = config_from_args(args)
        if args.resume and args.overwrite:
            raise ConfigError("--resume and --overwrite contradict each other: choose one")
        _print_departures(config)
        results = run_imp(config, args.out, resume=args.resume, overwrite=args.overwrite,
                          progress=not args.quiet, on_arm=print_arm, dense_from=getattr(args, "dense_from", None))
        if args.command == "imp":
            print(results.table())
    except (ConfigError, DataMissingError) as err:
        parser.exit(2, f"lthkit: error: {err}\n")
    print(f"results in {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
