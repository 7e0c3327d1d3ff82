import argparse
import json
import re
import subprocess
import sys

import pytest
import torch

import lthkit.cli
from lthkit.cli import build_parser, config_from_args, main
from lthkit.config import ConfigError, make_config, parse_prune_rates


def refuse(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--prune-rate", "1.5"], r"outside \[0, 1\)"),
    (["--prune-rate", "fc=-0.2"], r"pruning rate for fc layers -0.2 is outside \[0, 1\)"),
    (["--prune-rate", "dense=0.2"], "unknown layer kinds"),
    (["--prune-rate", "lots"], "give one number such as 0.2"),
    (["--model", "resnet1000"], "invalid choice: 'resnet1000'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--controls", "reinit,shuffle"], "unknown controls"),
    (["--epochs", "0"], "epochs must be a positive number"),
    (["--iterations", "-5"], "iterations must be a positive whole number"),
    (["--rounds", "-1"], "rounds must be a whole number"),
    (["--batch-size", "0"], "batch_size must be a positive whole number"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--iterations", "0"], "iterations must be a positive whole number"),
    (["--iterations", "100", "--rewind-iteration", "100"], "past the end of training"),
    (["--subset", "3"], "subset 3 is out of range"),
    (["--device", "tpu"], "device 'tpu' cannot be used"),
    (["--resume", "--overwrite"], "contradict"),
    (["--global", "--prune-rate", "fc=0.1,output=0.2"], "one rate for every layer"),
    (["--prune-rate", "conv=0.1"], "lenet300 has no conv layers"),
])
def test_bad_input_is_refused_with_a_message_that_says_what_to_do(argv, message, capsys, tmp_path):
    err = refuse(["imp", "--out", str(tmp_path / "run"), *argv], capsys)
    assert message in err or __import__("re").search(message, err), err
    assert not (tmp_path / "run").exists()


def test_missing_data_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LTHKIT_DATA", str(tmp_path / "empty"))
    import torchvision

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download",
                        lambda self: (_ for _ in ()).throw(RuntimeError("Error downloading: offline")))
    err = refuse(["imp", "--dataset", "fashion-mnist", "--iterations", "10", "--out", str(tmp_path / "run")], capsys)
    assert "FashionMNIST is not in" in err and "train-images-idx3-ubyte.gz" in err


def test_a_folder_with_a_different_run_is_refused(mnist_small, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"config": {"seed": 9}, "rounds": []}))
    err = refuse(["imp", "--iterations", "10", "--out", str(out), "--resume"], capsys)
    assert "different configuration" in err and "seed: 0 now, 9 there" in err


def documented(sp) -> list[str]:
    """Options of ``sp`` whose help is missing, or not printed beside their flags.

    A flag's name alone proves nothing: argparse prints every flag in the usage line, and other
    options' help mentions some (--out), so each option's own entry is looked for (spaces aside,
    since argparse wraps lines at hyphens too)."""
    text = "".join(sp.format_help().split())
    formatter = sp._get_formatter()
    missing = []
    for action in sp._actions:
        if not action.option_strings or action.dest == "help":
            continue
        entry = "".join(f"{formatter._format_action_invocation(action)} {formatter._expand_help(action)}".split())
        if not action.help or action.help == argparse.SUPPRESS or entry not in text:
            missing.append(action.option_strings[0])
    return missing


def test_help_documents_every_option():
    sub = build_parser()._subparsers._group_actions[0].choices
    for name, sp in sub.items():
        assert documented(sp) == [], name
    imp_options = set(sub["imp"]._option_string_actions)
    assert imp_options >= {"--dataset", "--model", "--rounds", "--epochs", "--seed", "--controls", "--out",
                           "--prune-rate", "--global", "--no-global", "--rewind-iteration", "--batch-size", "--lr",
                           "--optimizer", "--subset", "--device", "--resume", "--overwrite", "--deterministic"}
    assert {"--deterministic", "--device"} <= set(sub["train"]._option_string_actions)
    help_text = "".join(sub["imp"].format_help().split())
    assert "cuBLAS'sdeterministicworkspace(CUBLAS_WORKSPACE_CONFIG=:4096:8)" in help_text


@pytest.mark.parametrize("flag", [True, False])
def test_deterministic_flag_sets_deterministic_mode_before_the_run(flag, tmp_path, monkeypatch, capsys,
                                                                   determinism_restored):
    import os

    from lthkit.determinism import is_deterministic

    seen = []
    monkeypatch.setattr(lthkit.cli, "run_imp", lambda config, out, **kwargs: seen.append(
        (is_deterministic(), torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
         torch.backends.cudnn.deterministic)))
    argv = ["train", "--out", str(tmp_path), "--device", "cpu", "--iterations", "10"]
    assert main(argv + (["--deterministic"] if flag else [])) == 0
    assert seen == ([(True, True, ":4096:8", True)] if flag else [(False, False, None, False)])
    if flag:
        assert not torch.backends.cudnn.benchmark


def test_deterministic_mode_keeps_a_deterministic_cublas_setting_and_turns_off(monkeypatch, determinism_restored):
    from lthkit.determinism import is_deterministic, use_deterministic

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    use_deterministic()
    assert is_deterministic() and __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    use_deterministic(False)
    assert not is_deterministic() and not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_deterministic_runs_on_a_gpu_are_bit_for_bit_the_same(mnist_small, tmp_path):
    """Two processes, each with --deterministic, train Conv-2 (cuDNN convolutions, cuBLAS products)."""
    cli = [sys.executable, "-m", "lthkit.cli", "train", "--deterministic", "--device", "cuda", "--model", "conv2",
           "--dataset", "mnist", "--subset", "600", "--iterations", "30", "--eval-every", "10", "--quiet"]
    for run in ("a", "b"):
        done = subprocess.run(cli + ["--out", str(tmp_path / run)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    a, b = (json.loads((tmp_path / run / "results.json").read_text())["rounds"] for run in ("a", "b"))
    assert a == b
    trained = [torch.load(tmp_path / run / "round_00.pt", weights_only=True)["trained"] for run in ("a", "b")]
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[1])


def test_options_are_made_from_the_settings_and_set_them():
    """Each setting with an option has it in ``imp`` (``train`` too unless only later rounds use
    it), with the setting's own choices; each option but the run's own sets one setting."""
    from dataclasses import fields

    from lthkit.config import CONTROLS, RETRAIN, setting_fields
    from lthkit.models import MODELS, PaperSetup
    from lthkit.train import OPTIMIZERS

    sub = build_parser()._subparsers._group_actions[0].choices
    run_options = {"help", "deterministic", "out", "resume", "overwrite", "quiet", "dense_from", "ticket_from",
                   "engine", "seeds", "threads", "other_threads"}
    from lthkit.sparse_training import SparseConfig

    sparse = {f"sparse_{f.name}" for f in fields(SparseConfig)}  # lthkit train --sparse: one per SparseConfig field
    for command in ("imp", "train"):
        dests = {a.dest: a for a in sub[command]._actions}
        wanted = {f.name for f in setting_fields() if "option" in f.metadata
                  and (command == "imp" or not f.metadata["option"].imp_only)}
        assert set(dests) - run_options - (sparse if command == "train" else set()) == wanted, command
    assert sparse <= {a.dest for a in sub["train"]._actions}
    imp = {a.dest: a for a in sub["imp"]._actions}
    assert imp["model"].choices == list(MODELS) and imp["optimizer"].choices == list(OPTIMIZERS)
    assert imp["retrain"].choices == list(RETRAIN) and "prune_rates" in imp and "gamma" in imp
    assert {"rounds", "controls", "prune_rates", "global_pruning", "retrain", "rewind_iteration"}.isdisjoint(
        a.dest for a in sub["train"]._actions)
    argv = ["imp", "--out", "x", "--device", "cpu", "--model", "resnet20", "--iterations", "600", "--lr", "0.05",
            "--momentum", "0.8", "--gamma", "0.2", "--controls", "", "--retrain", "lr-rewind", "--seed", "4"]
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.training.lr, config.training.momentum, config.training.gamma, config.training.data_seed) == (
        0.05, 0.8, 0.2, 4)
    assert (config.controls, config.retrain, config.seed) == ((), "lr-rewind", 4) and CONTROLS == ("reinit", "random")
    assert {f.name for f in fields(PaperSetup)} <= {f.name for f in setting_fields()}  # the paper's values are settings


def test_prune_rate_forms():
    assert parse_prune_rates("0.2") == {k: 0.2 for k in ("conv", "fc", "embedding", "attention", "mlp", "output")}
    assert parse_prune_rates("conv=0.15, fc=0.2,output=0.1") == {"conv": 0.15, "fc": 0.2, "output": 0.1}
    config = make_config(model="conv6", prune_rates=parse_prune_rates("fc=0.3"))
    assert config.prune_rates == {"conv": 0.15, "fc": 0.3, "output": 0.1}
    assert make_config(model="vit", prune_rates=parse_prune_rates("0.3")).prune_rates == {
        "embedding": 0.3, "attention": 0.3, "mlp": 0.3, "output": 0.3}
    vit = make_config(model="vit", prune_rates=parse_prune_rates("attention=0.4,mlp=0.5"))
    assert vit.prune_rates == {"embedding": 0.2, "attention": 0.4, "mlp": 0.5, "output": 0.1}
    with pytest.raises(ConfigError, match="vit has no fc layers"):
        make_config(model="vit", prune_rates=parse_prune_rates("fc=0.3"))


def test_defaults_are_the_papers_and_departures_are_listed():
    config = make_config(model="lenet300", device="cpu")
    assert (config.training.optimizer, config.training.lr, config.training.batch_size, config.training.iterations) == ("adam", 1.2e-3, 60, 50000)
    assert config.prune_rates == {"fc": 0.2, "output": 0.1}
    assert config.departures_from_paper() == {}
    short = make_config(model="conv2", epochs=3, subset=5000, device="cpu")
    assert short.dataset == "cifar10" and short.training.iterations == 3 * 84
    assert set(short.departures_from_paper()) == {"iterations", "subset"}
    assert make_config(model="conv2", dataset="mnist").departures_from_paper()["dataset"] == ("mnist", "cifar10")
    assert make_config(model="conv4").training.lr == 3e-4 and make_config(model="conv6").prune_rates["conv"] == 0.15


def test_wrong_types_are_refused():
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        make_config(seed="3")
    with pytest.raises(ConfigError, match="rounds must be"):
        make_config(rounds=2.5)
    with pytest.raises(ConfigError, match="unknown settings"):
        make_config(epoch=3)
    with pytest.raises(ConfigError, match="epochs must be a positive number"):
        make_config(epochs=float("inf"))
    with pytest.raises(ConfigError, match="global_pruning must be True or False"):
        make_config(global_pruning="false")
    with pytest.raises(ConfigError, match="lenet300 has no conv layers"):
        make_config(prune_rates={"conv": 0.5})


def test_a_configuration_is_checked_however_it_is_made():
    """The checks live in the dataclasses, so a configuration changed with ``dataclasses.replace``
    or built by hand is refused as ``make_config`` would refuse it."""
    from dataclasses import replace

    from lthkit.config import ExperimentConfig
    from lthkit.train import TrainConfig

    config = make_config(iterations=100, device="cpu")
    with pytest.raises(ConfigError, match="past the end of training"):
        replace(config, rewind_iteration=100)
    with pytest.raises(ConfigError, match="warmup must be a whole number of iterations in \\[0, 100\\)"):
        replace(config.training, warmup=100)
    with pytest.raises(ConfigError, match="must be the run's seed"):
        replace(config, seed=5)
    with pytest.raises(ConfigError, match="prune_rates must give a rate for each kind"):
        ExperimentConfig(training=TrainConfig(iterations=10), prune_rates={"fc": 0.2})
    with pytest.raises(ConfigError, match="need retrain 'rewind'"):
        replace(config, retrain="finetune")
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert list(config.to_dict())[:3] == ["dataset", "model", "rounds"] and "data_seed" not in config.to_dict()
    old_record = {k: v for k, v in config.to_dict().items() if k != "gamma"}  # from before gamma was a setting
    assert ExperimentConfig.from_dict(old_record) == config


def test_imp_and_train_commands_write_results(mnist_small, tmp_path):
    argv = ["--subset", "600", "--iterations", "20", "--eval-every", "10", "--device", "cpu", "--quiet"]
    cli = [sys.executable, "-m", "lthkit.cli"]
    imp = subprocess.run(cli + ["imp", "--rounds", "1", "--out", str(tmp_path / "imp"), *argv],
                         capture_output=True, text=True)
    assert imp.returncode == 0, imp.stderr
    assert "iterations: 20 (paper: 50000)" in imp.stdout and "round" in imp.stdout
    saved = json.loads((tmp_path / "imp" / "results.json").read_text())
    assert [r["round"] for r in saved["rounds"]] == [0, 1]
    assert set(saved["rounds"][1]["arms"]) == {"ticket", "reinit", "random"}
    assert main(["imp", "--rounds", "1", "--controls", "", "--dense-from", str(tmp_path / "imp"),
                 "--out", str(tmp_path / "shared"), *argv]) == 0
    shared = json.loads((tmp_path / "shared" / "results.json").read_text())
    assert shared["rounds"][0] == saved["rounds"][0] and set(shared["rounds"][1]["arms"]) == {"ticket"}
    dense = subprocess.run(cli + ["train", "--out", str(tmp_path / "dense"), *argv], capture_output=True, text=True)
    assert dense.returncode == 0, dense.stderr
    saved = json.loads((tmp_path / "dense" / "results.json").read_text())
    assert len(saved["rounds"]) == 1 and saved["rounds"][0]["weights_remaining"] == 1.0


def test_imp_with_several_seeds_writes_a_run_per_seed_and_says_how_it_trains(mnist_small, tmp_path, capsys):
    argv = ["--subset", "600", "--iterations", "20", "--eval-every", "10", "--device", "cpu", "--quiet",
            "--rounds", "1", "--controls", "reinit"]
    assert main(["imp", "--seeds", "0,2", "--out", str(tmp_path / "seeds"), *argv]) == 0
    out = capsys.readouterr().out
    assert "round  0: training in the plain loop, one network after another in each step (stacking is slower " \
           "on a CPU" in out and "round  1: training" not in out
    assert "seed 2 round  1 reinit" in out and f"results in {tmp_path / 'seeds' / 'seed2' / 'results.json'}" in out
    assert main(["imp", "--seed", "2", "--out", str(tmp_path / "alone"), *argv]) == 0
    assert (tmp_path / "seeds" / "seed2" / "results.json").read_bytes() == \
        (tmp_path / "alone" / "results.json").read_bytes()
    for bad, message in ((["--seed", "1", "--seeds", "0-1"], "give --seed \\(one run\\) or --seeds"),
                         (["--seeds", "0,0"], "seeds must name each seed once"),
                         (["--seeds", "0-1", "--engine", "stacked", "--model", "resnet20", "--dataset", "cifar10"],
                          "cannot be trained stacked: batch norm")):
        with pytest.raises(SystemExit) as stop:
            main(["imp", "--out", str(tmp_path / "bad"), *argv, *bad])
        assert stop.value.code == 2
        assert re.search(message, capsys.readouterr().err), bad


@pytest.fixture
def mnist_mirror():
    from conftest import SHARED
    from test_fetch import serve

    if not (SHARED / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the real MNIST archives are not in {SHARED}")
    with serve(SHARED) as server:
        yield server


def test_data_download_then_verify(mnist_mirror, tmp_path, capsys):
    root = str(tmp_path / "stick")
    assert main(["data", "verify", "--root", root, "--datasets", "mnist"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'stick' / 'MNIST' / 'raw' / 'train-images-idx3-ubyte.gz'}: missing" in out
    assert f"fix with: lthkit data download --root {root}" in out
    assert main(["data", "download", "--root", root, "--datasets", "mnist", "--mirror", mnist_mirror.url,
                 "--quiet"]) == 0
    assert len(mnist_mirror.requests) == 4
    assert main(["data", "download", "--root", root, "--datasets", "mnist", "--mirror", mnist_mirror.url]) == 0
    assert len(mnist_mirror.requests) == 4 and capsys.readouterr().out.endswith("mnist: verified in " + root + "\n")
    assert main(["data", "verify", "--root", root, "--datasets", "mnist"]) == 0


def test_data_download_uses_lthkit_data(mnist_mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LTHKIT_DATA", str(tmp_path / "shared"))
    assert main(["data", "download", "--datasets", "mnist", "--mirror", mnist_mirror.url, "--quiet"]) == 0
    assert (tmp_path / "shared" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_data_download_offline_exits_with_the_way_out(tmp_path, capsys):
    from test_fetch import closed_port_url

    err = refuse(["data", "download", "--root", str(tmp_path), "--datasets", "mnist", "--mirror", closed_port_url(),
                  "--quiet"], capsys)
    assert "train-images-idx3-ubyte.gz is missing or damaged" in err and "LTHKIT_DATA" in err


@pytest.mark.parametrize("argv,message", [
    (["data", "download", "--datasets", "imagenet"], "unknown datasets 'imagenet'"),
    (["data", "verify", "--datasets", ""], "unknown datasets ''"),
    (["doctor", "--iterations", "0"], "'0' is not a positive whole number"),
    (["data"], "required"),
])
def test_bad_data_and_doctor_input_is_refused(argv, message, capsys):
    assert message in refuse(argv, capsys)


def test_doctor_command_reports_and_exits_nonzero_on_a_problem(tmp_path, monkeypatch, capsys):
    from lthkit import course

    speed = {"per_iteration": 0.002, "per_round_iteration": 0.005, "per_evaluation": 0.05, "per_mask_iteration": 0.01,
         "per_vit_iteration": 0.008, "per_vit_evaluation": 0.3}
    cifar = {"per_iteration": 0.1, "per_extra_arm": 0.05, "per_image": 0.001}
    monkeypatch.setattr(course, "measure_speed", lambda data, iterations: speed)
    monkeypatch.setattr(course, "measure_cifar_speed",
                        lambda device, iterations: dict.fromkeys(("conv2", "conv4", "conv6", "resnet20"), cifar))
    assert main(["doctor", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: mnist: missing" in out and "classroom" in out
    assert re.search(r"^  05 .* min .* h$", out, re.M) and re.search(r"^  06 .* min .* h$", out, re.M)


def test_data_and_doctor_help_documents_every_option():
    sub = build_parser()._subparsers._group_actions[0].choices
    parsers = [sub["doctor"], *sub["data"]._subparsers._group_actions[0].choices.values()]
    assert [documented(sp) for sp in parsers] == [[], [], []]
    assert "--mirror" in parsers[1]._option_string_actions and "--root" in parsers[2]._option_string_actions


def test_a_setting_reads_from_text_as_its_option_does():
    from lthkit.config import make_config, settings_from_text

    read = settings_from_text({"model": "conv2", "rewind-iteration": "500", "global": "false",
                               "prune-rate": "conv=0.15,fc=0.2,output=0.1", "controls": "reinit", "eval-images": "1000"})
    assert read == {"model": "conv2", "rewind_iteration": 500, "global_pruning": False,
                    "prune_rates": {"conv": 0.15, "fc": 0.2, "output": 0.1}, "controls": ("reinit",),
                    "eval_images": 1000}
    assert make_config(**read) == config_from_args(build_parser().parse_args(
        ["imp", "--model", "conv2", "--rewind-iteration", "500", "--no-global", "--prune-rate",
         "conv=0.15,fc=0.2,output=0.1", "--controls", "reinit", "--eval-images", "1000", "--out", "x"]))
    assert settings_from_text({"global": "yes", "prune-rate": "0.2"})["global_pruning"] is True
    with pytest.raises(ConfigError, match="rewind-iteration: invalid literal"):
        settings_from_text({"rewind-iteration": "five"})
