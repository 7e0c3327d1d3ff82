"""A run folder cannot tear: atomic writes, and one run at a time (lthkit.run_folder)."""

import json
import re
import subprocess
import sys

import pytest
import torch

from lthkit.config import ConfigError, make_config
from lthkit.imp import run_imp
from lthkit.run_folder import FolderInUse, RunFolder


class Crash(Exception):
    pass


def temporaries(path):
    return sorted(p.name for p in path.glob(".*.tmp"))


def test_a_json_write_that_fails_half_way_leaves_the_previous_file_whole(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_json(folder.results, {"rounds": [1, 2]})
    before = folder.results.read_bytes()

    def half(f):
        f.write(b'{"rounds": [1, 2, ')
        raise Crash

    with pytest.raises(Crash):
        folder.write_atomically(folder.results, half)
    assert folder.results.read_bytes() == before == b'{\n "rounds": [\n  1,\n  2\n ]\n}\n'
    assert temporaries(tmp_path) == []


def test_a_torch_save_that_fails_half_way_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    folder.save_checkpoint({"iteration": 10, "w": torch.arange(5.0)})
    real_save = torch.save

    def dies_writing(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half the bytes are on disk when the process dies
        raise Crash

    monkeypatch.setattr(torch, "save", dies_writing)
    with pytest.raises(Crash):
        folder.save_checkpoint({"iteration": 20, "w": torch.zeros(5)})
    monkeypatch.undo()
    kept = folder.load_checkpoint()
    assert kept["iteration"] == 10 and torch.equal(kept["w"], torch.arange(5.0))
    assert temporaries(tmp_path) == []


def test_temporary_files_of_a_killed_writer_go_when_the_folder_is_next_locked(tmp_path):
    (tmp_path / ".results.json.4242.0.tmp").write_text('{"half')
    with RunFolder(tmp_path).locked():
        assert temporaries(tmp_path) == []


def test_the_lock_is_held_for_the_block_and_released_after_an_error(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(Crash):
        with folder.locked():
            with pytest.raises(FolderInUse, match=r"run is in use by another run \(process \d+ on .*\).*"
                                                  r"Wait for that run to finish.*or choose another output folder"):
                with RunFolder(tmp_path / "run").locked():
                    pass
            raise Crash
    with folder.locked():  # released: the failed run does not keep the folder
        pass


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file: choose another --out"):
        with RunFolder(tmp_path / "out").locked():
            pass


def test_a_second_run_on_a_folder_in_use_stops_with_a_clear_error(mnist_small, tmp_path):
    config = make_config(dataset="mnist", model="lenet300", rounds=0, iterations=20, eval_every=10, subset=600,
                         device="cpu")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom lthkit.run_folder import RunFolder\n"
                               "with RunFolder(sys.argv[1]).locked():\n    print('locked', flush=True)\n"
                               "    sys.stdin.read()\n", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUse, match=f"{re.escape(str(tmp_path))} is in use by another run \\(process {holder.pid} "):
            run_imp(config, tmp_path, data=mnist_small, progress=False)
        with pytest.raises(ConfigError, match="in use by another run"):  # what the CLI catches and prints
            run_imp(config, tmp_path, data=mnist_small, progress=False, resume=True)
        assert not (tmp_path / "results.json").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    results = run_imp(config, tmp_path, data=mnist_small, progress=False)  # the lock went with its process
    assert json.loads((tmp_path / "results.json").read_text()) == results.to_dict()
