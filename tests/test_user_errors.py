"""What a user does never ends in a traceback or a torn file (issue 28): each case through the CLI,
one line that names the file or setting and says what to do; every file written whole or not at all."""

import argparse
import functools
import io
import json
import subprocess
import sys
import textwrap

import pytest
import torch

import lthkit.imp_runs
from lthkit import files
from lthkit.cli import build_parser, main
from lthkit.imp import Rules
from lthkit.results import write_json
from lthkit.run_folder import RunFolder
from lthkit.sweep_results import write_csv

TINY = ["--subset", "600", "--eval-images", "500", "--iterations", "40", "--eval-every", "20", "--device", "cpu",
        "--quiet", "--controls", "", "--threads", "1"]


def refused(argv, capsys, code=2) -> str:
    """The one message ``argv`` ends with (exit ``code``), never a traceback."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == code and "Traceback" not in err, err
    return err.strip()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist_small):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["imp", "--rounds", "1", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    import shutil

    return shutil.copytree(finished_run, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))


# --- one line, naming the file, saying what to do ---------------------------------------------------

def test_export_to_a_folder_or_an_unwritable_place_says_so(finished_run, tmp_path, capsys):
    err = refused(["export", str(finished_run), "--round", "1", "--out", str(tmp_path), "--no-accuracy"], capsys)
    assert f"--out {tmp_path} is a folder: give a file to write" in err
    err = refused(["export", str(finished_run), "--round", "1", "--out", "/proc/x.pt", "--no-accuracy"], capsys)
    assert err.startswith("lthkit: error: /proc/x.pt: ") and err.count("\n") == 0


def test_a_run_into_an_unwritable_place_says_so(capsys):
    err = refused(["imp", "--out", "/proc/lthkit-run", *TINY], capsys)
    assert err.startswith("lthkit: error: /proc/lthkit-run") and "check the path" in err


def test_a_damaged_round_given_to_export_is_named(run_copy, tmp_path, capsys):
    (run_copy / "round_01.pt").write_bytes(b"not a zip at all")
    err = refused(["export", str(run_copy), "--round", "1", "--out", str(tmp_path / "t.pt"), "--no-accuracy"], capsys)
    assert f"{run_copy / 'round_01.pt'} is damaged" in err and "Restore it" in err


def test_a_truncated_results_file_is_named_on_resume_and_in_collect(run_copy, tmp_path, capsys):
    text = (run_copy / "results.json").read_text()
    (run_copy / "results.json").write_text(text[:len(text) // 2])
    err = refused(["imp", "--rounds", "1", "--out", str(run_copy), "--resume", *TINY], capsys)
    assert f"{run_copy / 'results.json'} is damaged (Unterminated string" in err or \
        f"{run_copy / 'results.json'} is damaged (" in err
    sweep = tmp_path / "sweep"
    (sweep / "abc").mkdir(parents=True)
    (sweep / "abc" / "job.json").write_text('{"key": "abc", "kind": "imp", "settings": {"se')
    (sweep / "abc" / "done.json").write_text("{}\n")
    err = refused(["sweep", "collect", str(sweep)], capsys)
    assert f"lthkit sweep: error: {sweep / 'abc' / 'job.json'} is damaged" in err


def test_a_damaged_checkpoint_of_a_finished_run_is_set_aside_and_the_resume_ends(run_copy, capsys):
    before = (run_copy / "results.json").read_bytes()
    (run_copy / "checkpoint.pt").write_bytes(b"\x00" * 100)
    assert main(["imp", "--rounds", "1", "--out", str(run_copy), "--resume", *TINY]) == 0
    out = capsys.readouterr().out
    (said,) = [line for line in out.splitlines() if "checkpoint.pt" in line]
    assert said.startswith(f"{run_copy / 'checkpoint.pt'} cannot be read (") and said.endswith(
        "): set aside as checkpoint.damaged.pt; its round is trained again from its start")
    assert (run_copy / "checkpoint.damaged.pt").exists() and not (run_copy / "checkpoint.pt").exists()
    assert (run_copy / "results.json").read_bytes() == before


def test_a_damaged_checkpoint_is_trained_again_from_its_rounds_start(finished_run, tmp_path, capsys):
    out = tmp_path / "killed"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    assert main(["imp", "--rounds", "1", "--out", str(out), "--resume", *TINY]) == 0
    assert "set aside as checkpoint.damaged.pt" in capsys.readouterr().out
    assert (out / "results.json").read_bytes() == (finished_run / "results.json").read_bytes()


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch, mnist_small):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lthkit.imp_runs, "train_together", interrupted)
    err = refused(["imp", "--rounds", "1", "--out", str(tmp_path / "run"), "--overwrite", *TINY], capsys, code=130)
    assert "lthkit imp: stopped." in err and "resume with --resume" in err
    assert "--overwrite" not in err.split("(lthkit ")[1] and err.endswith("--resume)")


# --- how a run computes: recorded, compared on resume ----------------------------------------------------

def test_the_thread_count_is_recorded_and_a_resume_on_another_is_refused(run_copy, capsys):
    assert json.loads((run_copy / "arithmetic.json").read_text()) == {"device": "cpu", "engine": "loop", "threads": 1}
    threads = torch.get_num_threads()
    try:
        argv = ["imp", "--rounds", "1", "--out", str(run_copy), "--resume", *TINY[:-1], "3"]
        err = refused(argv, capsys)
        assert "threads 3 now, 1 there" in err and "--threads 1" in err and "--other-threads" in err
        assert main(argv + ["--other-threads"]) == 0
        assert "going on with threads 3 now, 1 there" in capsys.readouterr().out
        assert json.loads((run_copy / "arithmetic.json").read_text())["threads"] == 3
    finally:
        torch.set_num_threads(threads)


# --- help and progress ---------------------------------------------------------------------------------

def test_help_names_every_value_an_option_takes():
    sub = build_parser()._subparsers._group_actions[0].choices
    for name, parser in sub.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            for choice in action.choices or ():
                if isinstance(choice, str):
                    assert choice in action.help, (name, action.dest, choice)
    help_text = " ".join(sub["imp"].format_help().split())
    for value in ("lenet300", "conv2", "conv4", "conv6", "resnet20", "vit", "fashion-mnist", "cifar10", "snip",
                  "grasp", "synflow", "reinit", "random", "signs", "inverted", "lr-rewind", "finetune", "sgd"):
        assert value in help_text, value


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bars_show_on_a_terminal_only(terminal, tmp_path, monkeypatch, capsys, mnist_small):
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    argv = [a for a in TINY if a != "--quiet"]
    assert main(["imp", "--rounds", "0", "--out", str(tmp_path / "run"), *argv]) == 0
    assert ("\r" in stream.getvalue()) == terminal
    assert "round  0 dense" in capsys.readouterr().out


# --- every file whole or not at all ----------------------------------------------------------------

class _Torn(io.BytesIO):
    """A file whose disk fills half-way through: what it holds so far goes to ``path``, then it fails."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def write(self, data) -> int:
        half = bytes(data)[:max(1, len(data) // 2)]
        self.path.write_bytes(self.path.read_bytes() + half if self.path.exists() else half)
        raise OSError(28, "No space left on device", str(self.path))


def _writers(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lthkit.masks import Mask
    from lthkit.rewind import Snapshot

    figure = plt.figure()
    return {
        "results.json": lambda p: write_json(p, {"rounds": [1, 2, 3]}),
        "round_01.pt": lambda p: RunFolder(tmp_path).save(p, {"w": torch.ones(3)}),
        "rewind_point.pt": lambda p: Snapshot(0, {"w": torch.ones(3)}).save(p),
        "mask.pt": lambda p: Mask({"w": torch.ones(3)}).save(p),
        "sweep.csv": lambda p: write_csv(p, [{"a": 1, "b": 2}]),
        "sweep.png": lambda p: files.save_figure(figure, p),
        "done.json": lambda p: files.write_text(p, '{"seconds": 1}\n'),
    }


@pytest.mark.parametrize("name", ["results.json", "round_01.pt", "rewind_point.pt", "mask.pt", "sweep.csv",
                                  "sweep.png", "done.json"])
def test_a_write_failing_half_way_leaves_the_previous_file_whole(name, tmp_path, monkeypatch):
    path = tmp_path / name
    path.write_bytes(b"the previous file, whole")
    monkeypatch.setattr(files, "_open_new", _Torn)
    with pytest.raises(OSError, match="No space left") as failed:
        _writers(tmp_path)[name](path)
    assert failed.value.filename == str(path)
    assert path.read_bytes() == b"the previous file, whole"
    assert [p.name for p in tmp_path.iterdir()] == [name], "no temporary file is left behind"


def test_an_export_failing_half_way_leaves_the_previous_export_whole(finished_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ticket.pt"
    assert main(["export", str(finished_run), "--round", "1", "--out", str(out), "--no-accuracy"]) == 0
    good = out.read_bytes()
    monkeypatch.setattr(files, "_open_new", _Torn)
    err = refused(["export", str(finished_run), "--round", "1", "--out", str(out), "--no-accuracy"], capsys)
    assert err == f"lthkit: error: {out}: No space left on device: the disk is full: free some space or choose " \
                  f"another place"
    assert out.read_bytes() == good and len(good) > 1000


# --- a learner's rule's fingerprint, in any process ----------------------------------------------------

RULES = textwrap.dedent("""
    import functools
    from lthkit.masks import prune_layer

    def helper(weights):
        return weights.abs()  # EDIT

    def with_helper(weights, mask, rate):
        helper(weights)
        return prune_layer(weights, mask, rate)

    class Pruner:
        def __init__(self, scale):
            self.scale = scale

        def __call__(self, weights, mask, rate):
            return prune_layer(weights, mask, rate * self.scale)

    RULES = {"partial": functools.partial(prune_layer, rate=0.2), "lambda": lambda w, m, r: prune_layer(w, m, r),
             "helper": with_helper, "object": Pruner(1.0), "partial of helper": functools.partial(with_helper)}
""")


def _fingerprints(folder) -> dict:
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from rules_module import RULES; "
            "from lthkit.imp import Rules; "
            "print(json.dumps({k: Rules(prune_layer=v).describe()['prune_layer'] for k, v in RULES.items()}))")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_rules_fingerprint_is_the_same_in_every_process_and_follows_its_helpers(tmp_path):
    (tmp_path / "rules_module.py").write_text(RULES)
    first, second = _fingerprints(tmp_path), _fingerprints(tmp_path)
    assert first == second and len(set(first.values())) == len(first)
    assert first["partial"].startswith("partial(prune_layer) ")
    (tmp_path / "rules_module.py").write_text(RULES.replace("weights.abs()  # EDIT", "weights.abs() * 2"))
    edited = _fingerprints(tmp_path)
    assert edited["helper"] != first["helper"] and edited["partial of helper"] != first["partial of helper"]
    assert edited["partial"] == first["partial"] and edited["lambda"] == first["lambda"]


def test_a_plain_functions_fingerprint_is_what_it_was():
    """Runs recorded before helpers counted resume still: a function calling none hashes its source."""
    import hashlib
    import inspect

    from lthkit.masks import prune_layer

    def mine(weights, mask, rate):
        return prune_layer(weights, mask, rate)

    digest = hashlib.sha256(inspect.getsource(mine).encode()).hexdigest()[:12]
    assert Rules(prune_layer=mine).describe() == {"prune_layer": f"{mine.__qualname__} {digest}"}
    assert "0x" not in Rules(prune_layer=functools.partial(mine, rate=0.5)).describe()["prune_layer"]


# --- random states on fewer GPUs -----------------------------------------------------------------

def test_a_checkpoints_gpu_random_state_is_restored_on_the_training_gpu_alone(monkeypatch):
    from lthkit.train import restore_cuda_rng

    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((int(state[0]), device)))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    one = [torch.tensor([7], dtype=torch.uint8)]
    every = [torch.tensor([i], dtype=torch.uint8) for i in range(4)]  # a checkpoint from before: every GPU's
    restore_cuda_rng(one, torch.device("cuda"))
    restore_cuda_rng(every, torch.device("cuda:2"))
    restore_cuda_rng(every, torch.device("cpu"))
    assert restored == [(7, torch.device("cuda")), (2, torch.device("cuda:2"))]
    with pytest.raises(ValueError, match="no random state for cuda:5"):
        restore_cuda_rng(every, torch.device("cuda:5"))
