import json
import subprocess
import sys

import pytest

from lthkit.cli import build_parser, main
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


def test_help_documents_every_option():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    for name, sp in sub.items():
        text = sp.format_help()
        for action in sp._actions:
            for flag in action.option_strings:
                assert flag in text
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    for flag in ("--dataset", "--model", "--rounds", "--epochs", "--seed", "--controls", "--out", "--prune-rate",
                 "--global", "--rewind-iteration", "--batch-size", "--lr", "--optimizer", "--subset", "--device",
                 "--resume", "--overwrite"):
        assert flag in sub["imp"].format_help()


def test_prune_rate_forms():
    assert parse_prune_rates("0.2") == {"conv": 0.2, "fc": 0.2, "output": 0.2}
    assert parse_prune_rates("conv=0.15, fc=0.2,output=0.1") == {"conv": 0.15, "fc": 0.2, "output": 0.1}
    config = make_config(model="conv6", prune_rates=parse_prune_rates("fc=0.3"))
    assert config.prune_rates == {"conv": 0.15, "fc": 0.3, "output": 0.1}


def test_defaults_are_the_papers_and_departures_are_listed():
    config = make_config(model="lenet300", device="cpu")
    assert (config.optimizer, config.lr, config.batch_size, config.iterations) == ("adam", 1.2e-3, 60, 50000)
    assert config.prune_rates == {"fc": 0.2, "output": 0.1}
    assert config.departures_from_paper() == {}
    short = make_config(model="conv2", epochs=3, subset=5000, device="cpu")
    assert short.dataset == "cifar10" and short.iterations == 3 * 84
    assert set(short.departures_from_paper()) == {"iterations", "subset"}
    assert make_config(model="conv2", dataset="mnist").departures_from_paper()["dataset"] == ("mnist", "cifar10")
    assert make_config(model="conv4").lr == 3e-4 and make_config(model="conv6").prune_rates["conv"] == 0.15


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
    dense = subprocess.run(cli + ["train", "--out", str(tmp_path / "dense"), *argv], capture_output=True, text=True)
    assert dense.returncode == 0, dense.stderr
    saved = json.loads((tmp_path / "dense" / "results.json").read_text())
    assert len(saved["rounds"]) == 1 and saved["rounds"][0]["weights_remaining"] == 1.0
