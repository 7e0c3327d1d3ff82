"""Sweeps on Dask: the grid, the jobs' folders, resuming, failures, and the merged table."""

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from lthkit.results import Results
from lthkit.sweep import (Job, SweepError, check, expand, is_done, job_folder, parse_seeds, parse_set, run_job,
                          run_sweep)
from lthkit.sweep_results import Row, collect, format_summary, interval, summarize, t_quantile, write_csv

distributed = pytest.importorskip("distributed", reason="sweeps need the sweep extra: pip install -e '.[sweep]'")

TINY = {"model": ["lenet300"], "subset": ["600"], "eval-images": ["500"], "iterations": ["60"], "eval-every": ["30"],
        "controls": ["reinit"], "device": ["cpu"]}


def tiny(**changes) -> dict[str, list[str]]:
    return {**TINY, **{k.replace("_", "-"): v for k, v in changes.items()}}


# --- the grid ------------------------------------------------------------------------------------

def test_seeds_and_settings_are_read_as_written():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("0,2,5") == [0, 2, 5] and parse_seeds("3") == [3]
    assert parse_set("model=conv2,conv4") == ("model", ["conv2", "conv4"])
    assert parse_set("rewind_iteration=0,500") == ("rewind-iteration", ["0", "500"])
    assert parse_set("controls=reinit,random;reinit") == ("controls", ["reinit,random", "reinit"])
    assert parse_set("prune-rate=fc=0.2,output=0.1;0.4") == ("prune-rate", ["fc=0.2,output=0.1", "0.4"])
    for bad in ("0-x", "", "1,1"):
        with pytest.raises(SweepError, match="seed"):
            parse_seeds(bad)
    with pytest.raises(SweepError, match="NAME=VALUE"):
        parse_set("model")


def test_a_grid_is_every_combination_and_each_job_is_named_by_its_settings():
    jobs = expand([0, 1], {"model": ["conv2", "conv4"], "rewind-iteration": ["0", "500"]})
    assert len(jobs) == 8 and len({j.key for j in jobs}) == 8
    assert all(len(j.key) == 12 and int(j.key, 16) >= 0 for j in jobs)
    assert jobs[0].imp_args() == ["--model", "conv2", "--rewind-iteration", "0", "--seed", "0"]
    again = expand([0, 1], {"rewind-iteration": ["0", "500"], "model": ["conv2", "conv4"]})
    assert {j.key for j in again} == {j.key for j in jobs}, "the order of --set does not change a job"
    changed = expand([0], {"model": ["conv2"], "rewind-iteration": ["0"], "iterations": ["300"]})
    assert changed[0].key not in {j.key for j in jobs}, "a changed setting is another job"
    assert Job("imp", (("global", "true"), ("seed", "0"))).imp_args() == ["--global", "--seed", "0"]
    assert Job("imp", (("global", "false"), ("seed", "0"))).imp_args() == ["--no-global", "--seed", "0"]
    with pytest.raises(SweepError, match="--seeds"):
        expand([0], {"seed": ["1"]})
    with pytest.raises(SweepError, match="twice"):
        expand([0], {"model": ["conv2", "conv2"]})


def test_settings_lthkit_imp_would_refuse_stop_the_sweep_before_it_starts(tmp_path):
    with pytest.raises(SweepError, match="model=conv9.*model must be one of"):
        check(expand([0], {"model": ["conv9"]}))
    with pytest.raises(SweepError, match="no setting colour; its settings are"):
        check(expand([0], {"colour": ["red"]}))
    with pytest.raises(SweepError, match="global is true or false"):
        check(expand([0], {"global": ["maybe"]}))
    with pytest.raises(SweepError, match="rewind_iteration 900 is past the end of training"):
        check(expand([0], {"iterations": ["100"], "rewind-iteration": ["900"]}))
    notebook = expand([0], {"budget": ["test"], "colour": ["red"]}, notebook="notebooks/03_winning_tickets.ipynb")
    with pytest.raises(SweepError, match="no parameter colour"):
        check(notebook)
    with pytest.raises(SweepError, match="no notebook"):
        check(expand([0], {"budget": ["test"]}, notebook=tmp_path / "missing.ipynb"))
    assert notebook[0].parameters() == {"budget": "test", "colour": "red", "seed": 0}


def test_the_95_percent_interval_uses_students_t():
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-3)
    mean, half = interval([0.9, 0.92, 0.94])
    assert mean == pytest.approx(0.92) and half == pytest.approx(4.303 * 0.02 / 3 ** 0.5, rel=1e-3)
    assert interval([0.5]) == (0.5, None)


# --- on a LocalCluster -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def rows_of(folder, job) -> list[Row]:
    results = Results.load(job_folder(folder, job) / "run" / "results.json")
    setting = " ".join(f"{k}={v}" for k, v in job.settings if k != "seed")
    return [Row(setting, "run", job.seed, job.key, r.round, arm, r.weights_remaining, a.early_stop_test_accuracy,
                a.early_stop_iteration, a.test_accuracy) for r in results.rounds for arm, a in r.arms.items()]


def test_a_sweep_runs_every_job_once_and_its_table_is_the_runs_own(cluster, tmp_path, capsys):
    jobs = expand([0, 1], tiny(rounds=["1", "2"]))
    report = run_sweep(jobs, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert report.ok and len(report.outcomes) == 4 and not any(o.skipped for o in report.outcomes)
    assert all(is_done(tmp_path, j) and json.loads((job_folder(tmp_path, j) / "job.json").read_text())["settings"]
               == dict(j.settings) for j in jobs)
    rows = collect(tmp_path)
    assert sorted(rows, key=repr) == sorted((r for j in jobs for r in rows_of(tmp_path, j)), key=repr)
    assert len(rows) == 2 * (1 + 2) + 2 * (1 + 2 * 2)  # per seed: dense + 1 round of two arms; dense + 2 rounds
    summary = summarize(rows)
    line = next(s for s in summary if s["round"] == 2 and s["arm"] == "reinit")
    values = [r.early_stop_test_accuracy for r in rows if r.round == 2 and r.arm == "reinit"]
    assert line["seeds"] == 2 and line["early_stop_test_accuracy"] == pytest.approx(sum(values) / 2)
    assert line["early_stop_test_accuracy_95"] == pytest.approx(interval(values)[1])
    assert "± " in format_summary(summary)
    assert write_csv(tmp_path / "sweep.csv", rows).read_text().count("\n") == len(rows) + 1

    logs = {j.key: (job_folder(tmp_path, j) / "log.txt").read_text() for j in jobs}
    again = run_sweep(jobs, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert again.ok and all(o.skipped for o in again.outcomes) and again.cluster_seconds == 0
    assert logs == {j.key: (job_folder(tmp_path, j) / "log.txt").read_text() for j in jobs}, "nothing ran again"
    assert "0 ran, 4 already finished, 0 failed" in again.summary()

    from lthkit.cli import main

    with pytest.raises(SystemExit):  # two settings, one name: the rounds must be in it
        main(["sweep", "collect", str(tmp_path), "--reference", "tiny", "--reference-dir", str(tmp_path)])
    assert re.search(r"would both be tiny-seed[01]\.json", capsys.readouterr().err)
    assert main(["sweep", "collect", str(tmp_path), "--reference", "tiny-{rounds}", "--reference-dir",
                 str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("tiny-*.json")) == [
        "tiny-1-seed0.json", "tiny-1-seed1.json", "tiny-2-seed0.json", "tiny-2-seed1.json"]


def test_a_failed_job_is_reported_with_its_log_and_the_others_finish(cluster, tmp_path):
    jobs = expand([0, 1, 2], tiny(rounds=["1"]))
    blocked = job_folder(tmp_path, jobs[1])
    blocked.mkdir(parents=True)
    (blocked / "run").write_text("a file where the run's folder should be\n")
    report = run_sweep(jobs, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert not report.ok and [o.job for o in report.failed] == [jobs[1]]
    assert "Error" in report.failed[0].log_tail and "Traceback" in report.failed[0].log_tail
    assert is_done(tmp_path, jobs[0]) and is_done(tmp_path, jobs[2]) and not is_done(tmp_path, jobs[1])
    assert "2 ran, 0 already finished, 1 failed" in report.summary()


def test_a_job_whose_worker_is_killed_resumes_and_ends_as_an_uninterrupted_run(cluster, tmp_path):
    from lthkit.cli import main

    settings = tiny(rounds=["4"], iterations=["300"], eval_every=["100"])
    (job,) = expand([3], settings)
    plain, threads = tmp_path / "plain", torch.get_num_threads()
    torch.set_num_threads(1)  # as the job computes: a CPU's sums can depend on how many threads split them
    try:
        assert main(["imp", *job.imp_args(), "--out", str(plain), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)

    sweep = tmp_path / "sweep"
    reports, errors = [], []

    def submit():
        try:
            reports.append(run_sweep([job], sweep, scheduler=cluster.scheduler_address, progress=False))
        except Exception as err:  # noqa: BLE001  seen by the assertion below
            errors.append(err)

    thread = threading.Thread(target=submit)
    thread.start()
    run = job_folder(sweep, job) / "run"
    deadline = time.monotonic() + 120
    while not (run / "round_01.pt").exists():
        assert time.monotonic() < deadline and thread.is_alive(), "the job never reached round 1"
        time.sleep(0.05)
    with distributed.Client(cluster.scheduler_address) as client:
        busy = [w for w, tasks in client.processing().items() if tasks]
        pid = client.run(os.getpid, workers=busy)[busy[0]]
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert not errors and len(reports) == 1, errors
    assert reports[0].ok == is_done(sweep, job)  # Dask may have retried it at once on the other worker
    final = run_sweep([job], sweep, scheduler=cluster.scheduler_address, progress=False)
    assert final.ok and is_done(sweep, job)
    log = (job_folder(sweep, job) / "log.txt").read_text()
    assert log.count("--- ") >= 2, "a second attempt resumed the job"
    resumed = json.loads((run / "results.json").read_text())
    assert resumed == json.loads((plain / "results.json").read_text())


def test_the_command_line_runs_a_sweep_and_collects_it(tmp_path, capsys):
    from lthkit.cli import main

    args = ["sweep", "--out", str(tmp_path), "--seeds", "0-1", "--workers", "2", "--quiet"]
    for name, values in tiny(rounds=["1"]).items():
        args += ["--set", f"{name}={';'.join(values) if name == 'controls' else ','.join(values)}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 jobs into" in printed and "2 ran, 0 already finished, 0 failed" in printed
    assert main(["sweep", "collect", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert all((tmp_path / f).stat().st_size > 0 for f in ("sweep.csv", "summary.csv", "sweep.png"))
    assert "reinit" in printed and "± " in printed
    with pytest.raises(SystemExit):
        main(["sweep", "collect", str(tmp_path / "empty")])
    assert "holds no finished job" in capsys.readouterr().err
    reference = tmp_path / "reference"
    reference.mkdir()
    assert main(["sweep", "collect", str(tmp_path), "--reference", "lenet-{model}", "--reference-dir",
                 str(reference)]) == 0
    assert sorted(p.name for p in reference.iterdir()) == ["lenet-lenet300-seed0.json", "lenet-lenet300-seed1.json"]
    copied = json.loads((reference / "lenet-lenet300-seed1.json").read_text())
    assert copied["config"]["seed"] == 1 and len(copied["rounds"]) == 2
    with pytest.raises(SystemExit):
        main(["sweep", "collect", str(tmp_path), "--reference", "lenet-{method}", "--reference-dir", str(reference)])
    assert "does not set" in capsys.readouterr().err


def notebook(path, *cells: str):
    """A notebook whose first cell holds the parameters, as the course's do."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_notebook_sweep_runs_the_notebook_per_seed_and_collects_its_runs(cluster, tmp_path):
    imp = notebook(tmp_path / "tiny_imp.ipynb", "seed = 0\nrounds = 1\noutput_dir = 'outputs'", (
        "from lthkit.config import make_config\nfrom lthkit.imp import run_imp\n"
        "config = make_config(model='lenet300', subset=200, eval_images=200, iterations=20, eval_every=10, "
        "rounds=rounds, controls=('reinit',), seed=seed, device='cpu')\n"
        "run_imp(config, f'{output_dir}/imp-seed{seed}', resume=True, progress=False)"))
    jobs = expand([0, 1], {"rounds": ["2"]}, notebook=imp)
    assert all(Path(j.notebook).is_absolute() for j in jobs), "a worker elsewhere finds the notebook by its full path"
    report = run_sweep(jobs, tmp_path / "sweep", scheduler=cluster.scheduler_address, cell_timeout=300,
                       progress=False)
    assert report.ok, [o.log_tail for o in report.failed]
    executed = (job_folder(tmp_path / "sweep", jobs[1]) / "notebook.ipynb").read_text()
    assert "seed = 1" in executed and str(job_folder(tmp_path / "sweep", jobs[1]) / "outputs") in executed
    rows = collect(tmp_path / "sweep")
    assert {r.seed for r in rows} == {0, 1} and {r.setting for r in rows} == {"tiny_imp rounds=2"}
    assert {r.run for r in rows} == {"outputs/imp"}, "a notebook's runs are named without their seeds"
    for job in jobs:
        results = Results.load(job_folder(tmp_path / "sweep", job) / "outputs" / f"imp-seed{job.seed}" / "results.json")
        assert len(results.rounds) == 3, "the parameter reached the notebook"
        assert [r for r in rows if r.seed == job.seed] == [
            Row("tiny_imp rounds=2", "outputs/imp", job.seed, job.key, r.round, arm, r.weights_remaining,
                a.early_stop_test_accuracy, a.early_stop_iteration, a.test_accuracy)
            for r in results.rounds for arm, a in r.arms.items()]


def test_a_cell_that_runs_too_long_fails_its_notebook_job(tmp_path):
    slow = notebook(tmp_path / "slow.ipynb", "seed = 0\noutput_dir = '.'", "import time\ntime.sleep(60)")
    (job,) = expand([0], {}, notebook=slow)
    outcome = run_job(job, tmp_path / "sweep", cell_timeout=3)
    assert not outcome.ok and outcome.seconds < 50 and "papermill exited" in outcome.log_tail


def test_threads_per_job_reaches_the_job_and_its_key_through_the_command(cluster, tmp_path, capsys):
    """Dask's nanny starts each worker on one thread: a sweep that dropped --threads-per-job would
    still compute, on one thread, in a folder keyed as if it had two."""
    from lthkit.cli import main

    argv = ["sweep", "--out", str(tmp_path), "--scheduler", cluster.scheduler_address, "--quiet"]
    for name, values in tiny(rounds=["0"], iterations=["20"], eval_every=["10"], controls=[""]).items():
        argv += ["--set", f"{name}={','.join(values)}"]
    assert main(argv + ["--threads-per-job", "2"]) == 0
    capsys.readouterr()
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((folder / "job.json").read_text())["threads"] == 2
    assert json.loads((folder / "run" / "arithmetic.json").read_text())["threads"] == 2
    assert main(argv) == 0 and "1 ran, 0 already finished" in capsys.readouterr().out, "one thread is another job"
