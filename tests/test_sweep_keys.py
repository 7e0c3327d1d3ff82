"""A sweep's job key holds everything that changes a result, by value; its files are checked, not trusted."""

import json

import pytest
import torch

from lthkit.cli import main
from lthkit.sweep import SweepError, check, expand, is_done, job_folder, run_job, run_sweep
from lthkit.sweep_results import collect

TINY = {"model": ["lenet300"], "subset": ["600"], "eval-images": ["500"], "iterations": ["20"], "eval-every": ["10"],
        "controls": [""], "rounds": ["0"], "device": ["cpu"]}


def test_a_setting_is_keyed_by_its_value_not_its_spelling():
    (a,), (b,), (c,) = (expand([0], {**TINY, "lr": [v]}) for v in ("1e-3", "0.001", "0.002"))
    assert a.key == b.key != c.key
    (d,), (e,) = (expand([0], {**TINY, "prune-rate": [v]}) for v in ("fc=0.2,output=0.1", "output=0.10,fc=0.20"))
    assert d.key == e.key
    with pytest.raises(SweepError, match="same job twice"):
        expand([0], {**TINY, "lr": ["1e-3", "0.001"]})


def test_a_notebook_is_keyed_by_its_content_not_its_name(tmp_path):
    teacher, student = tmp_path / "teacher" / "03.ipynb", tmp_path / "student" / "03.ipynb"
    for path, text in ((teacher, '{"cells": []}'), (student, '{"cells": [1]}')):
        path.parent.mkdir()
        path.write_text(text)
    (t,), (s,) = (expand([0], {"budget": ["test"]}, notebook=p) for p in (teacher, student))
    assert t.key != s.key, "a student's copy and the teacher's of one name are two jobs"
    (tmp_path / "renamed.ipynb").write_text(teacher.read_text())
    (r,) = expand([0], {"budget": ["test"]}, notebook=tmp_path / "renamed.ipynb")
    assert r.key == t.key, "the same notebook under another name is the same job"


def test_the_thread_count_is_in_the_key_and_the_job_computes_on_it(tmp_path, mnist_small):
    (job,) = expand([0], TINY)
    (three,) = expand([0], TINY, threads=3)
    assert job.key != three.key and job.threads == 1
    before = torch.get_num_threads()
    outcome = run_job(three, tmp_path)
    assert outcome.ok and torch.get_num_threads() == before
    folder = job_folder(tmp_path, three)
    assert json.loads((folder / "run" / "arithmetic.json").read_text())["threads"] == 3
    assert json.loads((folder / "job.json").read_text())["threads"] == 3
    assert not job_folder(tmp_path, job).exists()


def test_a_gpu_sweep_is_checked_without_a_gpu_and_its_device_resolved_on_the_worker():
    check(expand([0], {**TINY, "device": ["cuda", "auto"]}))
    with pytest.raises(SweepError, match="device 'tpu' is none of auto, cpu, cuda or mps"):
        check(expand([0], {**TINY, "device": ["tpu"]}))


def test_done_json_is_checked_against_the_runs_files(tmp_path, mnist_small, capsys):
    (job,) = expand([0], TINY)
    assert run_job(job, tmp_path).ok and is_done(tmp_path, job)
    folder = job_folder(tmp_path, job)
    assert json.loads((folder / "done.json").read_text())["files"] == {
        "run/results.json": (folder / "run" / "results.json").stat().st_size}
    assert len(collect(tmp_path)) == 1
    (folder / "run" / "results.json").unlink()
    assert not is_done(tmp_path, job), "a deleted result makes the job unfinished: the next submission runs it"
    assert collect(tmp_path) == []
    assert f"job {job.key}: its done.json names results that are gone" in capsys.readouterr().out
    rerun = run_job(job, tmp_path)
    assert rerun.ok and not rerun.skipped and is_done(tmp_path, job) and run_job(job, tmp_path).skipped


def test_settings_that_would_be_ignored_are_refused(tmp_path, capsys):
    with pytest.raises(SweepError, match="--workers sizes the LocalCluster"):
        run_sweep(expand([0], TINY), tmp_path, scheduler="tcp://127.0.0.1:1", workers=2)
    for argv, message in ((["--reference", "x"], "--reference and --reference-dir copy a finished sweep's runs"),
                          (["--reference-dir", str(tmp_path)], "give them to collect")):
        with pytest.raises(SystemExit):
            main(["sweep", "--out", str(tmp_path), "--set", "model=lenet300", *argv])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "collect", str(tmp_path), "--reference-dir", str(tmp_path)])
    assert "--reference-dir is where --reference copies to" in capsys.readouterr().err
