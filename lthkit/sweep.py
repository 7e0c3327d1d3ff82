"""Sweeps: a grid of runs on Dask's distributed scheduler, the same on a laptop as on a cluster.

A sweep is seeds × the values of each varied setting, every combination one ``Job``: an
``lthkit imp`` run (its command-line settings) or a notebook run through papermill (its
parameters). Each job lives in ``DIR/<key>``, ``key`` a hash of its settings, so that:

- submitting the same sweep again skips the finished jobs (``done.json``) and resumes the others
  from their own checkpoints (``lthkit imp --resume``; a notebook's runs resume themselves);
- a changed setting is another job in another folder, never an overwritten one.

``run_sweep`` hands the jobs to ``dask.distributed``: a ``LocalCluster`` of one single-threaded
worker per core by default, or the scheduler at an address (a cluster started any way Dask
supports: ``dask scheduler``/``dask worker``, dask-jobqueue on Slurm or PBS). Dask does the
scheduling, retries a job whose worker died on another worker, and reports exceptions; a job that
fails is reported with the tail of its log while the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

LIST_VALUED = ("controls", "prune-rate", "milestones")
"""Settings whose one value holds commas (``reinit,random``): their alternatives are separated by ';'."""
LOG_TAIL_LINES = 30
CELL_TIMEOUT_S = 3600
"""A notebook job's cell that runs longer fails the job. nbclient, which papermill runs notebooks
with, can block for good on a cell that displays a widget (jupyter/nbclient#312, seen here with the
course's sliders); the timeout turns that into a failure that the next submission retries, and the
notebook's runs resume. Paper-budget cells can take longer: raise it (0: no limit)."""


class SweepError(ValueError):
    """A sweep that cannot start: a bad grid, setting or notebook; the message says what to change."""


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4]; ``"0,2,5"`` → [0, 2, 5]; ``"3"`` → [3]."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            first, _, last = part.strip().partition("-")
            seeds += range(int(first), int(last or first) + 1)
    except ValueError:
        raise SweepError(f"seeds must be whole numbers such as 0-4 or 0,2,5, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepError(f"seeds must name each seed once, got {text!r}")
    return seeds


def parse_set(text: str) -> tuple[str, list[str]]:
    """``"model=conv2,conv4"`` → ("model", ["conv2", "conv4"]): a setting and its alternatives
    (separated by ';' for the settings of ``LIST_VALUED``, whose own values hold commas;
    ``"controls="`` is the one value '', no controls)."""
    name, sep, values = text.partition("=")
    name = name.strip().lstrip("-").replace("_", "-")
    if not sep or not name:
        raise SweepError(f"--set takes NAME=VALUE[,VALUE...], such as model=conv2,conv4; got {text!r}")
    split = ";" if name in LIST_VALUED else ","
    return name, [v.strip() for v in values.split(split)]


@dataclass(frozen=True)
class Job:
    """One run of a sweep: ``kind`` ("imp" or "notebook"), the notebook's path for a notebook job,
    its settings as (name, value) pairs, sorted: the seed among them; the CPU threads it computes on
    (they change a result's last bits) and the SHA-256 of the notebook's content."""

    kind: str
    settings: tuple[tuple[str, str], ...]
    notebook: str | None = None
    threads: int = 1
    notebook_hash: str | None = None

    @property
    def key(self) -> str:
        """Twelve hex digits of the SHA-256 of what the job computes: settings by their value (``1e-3``
        is ``0.001``), the notebook by its content (a student's copy and the teacher's of one name
        differ), the thread count. Equal jobs, equal key; a changed one is another folder."""
        what = {"kind": self.kind, "notebook": self.notebook_hash if self.notebook else None,
                "settings": _by_value(self.kind, self.settings), "threads": self.threads}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def seed(self) -> int:
        return int(dict(self.settings)["seed"])

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.settings)

    def imp_args(self) -> list[str]:
        """The job's settings as ``lthkit imp``'s arguments: the command that runs it by hand."""
        from lthkit.config import TRUE, option_name, setting_fields

        yes_no = {option_name(f) for f in setting_fields() if f.type in ("bool", "bool | None")}
        args = []
        for name, value in self.settings:
            if name in yes_no:
                args.append(f"--{name}" if value.strip().lower() in TRUE else f"--no-{name}")
            else:
                args += [f"--{name}", value]
        return args

    def parameters(self) -> dict:
        """The job's notebook parameters, typed as papermill's ``-p`` types them (int, float,
        True/False/None, else text), names with underscores."""
        return {name.replace("-", "_"): _typed(value) for name, value in self.settings}

    def to_dict(self) -> dict:
        return {"key": self.key, "kind": self.kind, "notebook": self.notebook, "notebook_sha256": self.notebook_hash,
                "threads": self.threads, "settings": dict(self.settings)}


def _by_value(kind: str, settings: tuple[tuple[str, str], ...]) -> dict:
    """Each setting as its parsed value (an ``lthkit imp`` option as the command line reads it, a
    notebook parameter as papermill types it), so that two spellings of one value are one job; a value
    that does not parse stays text (``check`` refuses it) and a device stays its name (it is resolved
    on the worker, which may have a GPU the submitting machine lacks)."""
    from lthkit.config import ConfigError, read_setting, setting_fields, option_name

    fields = {option_name(f): f for f in setting_fields() if "option" in f.metadata}
    values = {}
    for name, text in settings:
        value = _typed(text)
        if kind == "imp" and name == "device":
            value = text.strip().lower()
        elif kind == "imp" and name in fields:
            with contextlib.suppress(ConfigError):
                value = read_setting(fields[name], text)
        values[name] = value
    return json.loads(json.dumps(values, sort_keys=True))


def content_hash(path: str | Path | None) -> str | None:
    """The SHA-256 of a notebook's bytes (None when there is no such file: ``check`` says so)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def _typed(value: str):
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(value)
    return {"True": True, "False": False, "None": None}.get(value, value)


def expand(seeds: list[int], sets: dict[str, list[str]], *, notebook: str | Path | None = None,
           threads: int = 1) -> list[Job]:
    """Every combination of ``seeds`` and the alternatives of each setting in ``sets``, one job each,
    in a stable order (seeds last, so that a sweep's first jobs cover its settings first)."""
    if "seed" in sets:
        raise SweepError("give the seeds with --seeds (seeds=...), not as a setting")
    kind = "notebook" if notebook else "imp"
    combos: list[dict[str, str]] = [{}]
    for name, values in sets.items():
        combos = [{**c, name: v} for c in combos for v in values]
    path = str(Path(notebook).resolve()) if notebook else None  # workers elsewhere read it by its full path
    digest = content_hash(path)
    jobs = [Job(kind, tuple(sorted({**c, "seed": str(s)}.items())), path, threads, digest) for s in seeds for c in combos]
    if len({j.key for j in jobs}) != len(jobs):
        raise SweepError("the grid names the same job twice: give each value of a setting once")
    return jobs


def check(jobs: list[Job]) -> None:
    """Refuse, before anything runs, a job whose settings ``lthkit imp`` or the notebook would refuse."""
    for job in jobs:
        if job.kind == "imp":
            _check_imp(job)
        else:
            _check_notebook(job)


def imp_config(job: Job):
    """The ``ExperimentConfig`` of an ``lthkit imp`` job, read as the command line reads its options."""
    from lthkit.config import make_config, settings_from_text

    return make_config(**settings_from_text(dict(job.settings)))


def _check_imp(job: Job) -> None:
    """The job's settings as the worker will read them, but its device only by name: the machine
    submitting a GPU sweep may have no GPU (a cluster's login node)."""
    import torch

    from lthkit.config import ConfigError

    settings = dict(job.settings)
    device = settings.get("device", "auto").strip().lower()
    try:
        if device != "auto" and torch.device(device).type not in ("cpu", "cuda", "mps"):
            raise RuntimeError
    except RuntimeError:
        raise SweepError(f"job {job.describe()}: device {device!r} is none of auto, cpu, cuda or mps") from None
    try:
        imp_config(Job(job.kind, tuple({**settings, "device": "cpu"}.items()), job.notebook))
    except ConfigError as err:
        raise SweepError(f"job {job.describe()}: {err}") from None


def _check_notebook(job: Job) -> None:
    import papermill

    path = Path(job.notebook)
    if not path.is_file():
        raise SweepError(f"no notebook {path}: give the path of one of the course's notebooks")
    known = set(papermill.inspect_notebook(str(path)))
    unknown = set(job.parameters()) - known
    if unknown:
        raise SweepError(f"{path.name} has no parameter {', '.join(sorted(unknown))}; its parameters are "
                         f"{', '.join(sorted(known))}")
    if "output_dir" in job.parameters():
        raise SweepError("output_dir is the sweep's to set: each job writes into its own folder")


# --- one job, on a worker ------------------------------------------------------------------------

@dataclass
class Outcome:
    """What became of one job: ``ok``, ``skipped`` (finished by an earlier submission), the seconds
    it ran, and the tail of its log when it failed."""

    job: Job
    ok: bool
    skipped: bool = False
    seconds: float = 0.0
    log_tail: str = ""


def job_folder(root: str | Path, job: Job) -> Path:
    return Path(root) / job.key


def is_done(root: str | Path, job: Job) -> bool:
    return finished(job_folder(root, job), job.kind)


def finished(folder: Path, kind: str) -> bool:
    """Whether the job in ``folder`` finished and its results are still there: ``done.json`` names
    each results file with its size, and each must be so (a deleted or cut ``results.json`` makes
    the job unfinished again: the next submission resumes it, ``collect`` leaves it out). An
    ``lthkit imp`` job's ``done.json`` from before it named files needs ``run/results.json``."""
    from lthkit.files import DamagedFile, read_json

    try:
        done = read_json(folder / "done.json")
    except (OSError, DamagedFile):
        return False
    named = done.get("files") if isinstance(done, dict) else None
    if named is None:
        return kind != "imp" or (folder / "run" / "results.json").is_file()
    whole = all((folder / f).is_file() and (folder / f).stat().st_size == size for f, size in named.items())
    return whole and (bool(named) or kind != "imp")


def results_files(folder: Path) -> dict[str, int]:
    """Every results file of the job in ``folder``, by its path there, with its size."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("results.json"))}


def run_job(job: Job, root: str | Path, threads: int | None = None, cell_timeout: int = CELL_TIMEOUT_S) -> Outcome:
    """Run ``job`` in ``root/<key>`` here on ``threads`` CPU threads (default: the job's), resuming
    what an earlier attempt left; its output goes to the folder's ``log.txt``. A finished job is
    not run again."""
    import dataclasses

    import torch

    from lthkit import files

    if threads is not None and threads != job.threads:
        job = dataclasses.replace(job, threads=threads)
    threads = job.threads
    folder = job_folder(root, job)
    if is_done(root, job):
        return Outcome(job, ok=True, skipped=True)
    folder.mkdir(parents=True, exist_ok=True)
    files.write_json(folder / "job.json", job.to_dict())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    with open(folder / "log.txt", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {platform.node()}, "
              f"pid {os.getpid()}: {job.describe()}", flush=True)
        try:
            _run_imp(job, folder) if job.kind == "imp" else _run_notebook(job, folder, threads, cell_timeout)
            ok = True
        except BaseException as err:  # noqa: BLE001  a job's failure, whatever it is, is its own: report it
            if isinstance(err, KeyboardInterrupt):
                raise
            traceback.print_exc()
            ok = False
        finally:
            torch.set_num_threads(before)
    seconds = time.perf_counter() - start
    if ok:
        files.write_text(folder / "done.json", json.dumps({"seconds": seconds, "finished": datetime.now(
            timezone.utc).isoformat(timespec="seconds"), "files": results_files(folder)}) + "\n")
    return Outcome(job, ok=ok, seconds=seconds, log_tail="" if ok else log_tail(folder / "log.txt"))


def _run_imp(job: Job, folder: Path) -> None:
    from lthkit.imp import run_imp
    from lthkit.results import print_arm

    print("lthkit imp " + shlex.join([*job.imp_args(), "--out", str(folder / "run"), "--resume"]), flush=True)
    print(run_imp(imp_config(job), folder / "run", resume=True, progress=False, on_arm=print_arm).table())


def _run_notebook(job: Job, folder: Path, threads: int, cell_timeout: int) -> None:
    """papermill in a process of its own (its kernel client is not safe in a worker's thread), its
    kernel on Unix sockets (``lthkit.kernels``: jobs side by side never share a port) and on ``threads`` threads; on Linux it dies with the worker (``_death_signal``), so a killed
    job leaves nothing running behind it (elsewhere it runs on, and a second attempt meets its runs'
    folders in use and fails, to be submitted again)."""
    import subprocess
    import sys

    notebook = Path(job.notebook).resolve()
    parameters = {**job.parameters(), "output_dir": str(folder / "outputs")}
    command = [sys.executable, "-m", "lthkit.kernels", str(notebook), str(folder / "notebook.ipynb"),
               "-y", json.dumps(parameters), "--cwd", str(notebook.parent), "--no-progress-bar", "--log-output",
               *(["--execution-timeout", str(cell_timeout)] if cell_timeout else [])]
    print(shlex.join(command[1:]), flush=True)
    die_with_parent = _death_signal() if sys.platform == "linux" else None
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    done = subprocess.run(command, stdout=sys.stdout, stderr=sys.stderr, env=env, preexec_fn=die_with_parent)
    if done.returncode:
        raise RuntimeError(f"papermill exited with {done.returncode}: see the executed notebook "
                           f"{folder / 'notebook.ipynb'}")


def _death_signal():
    """A function for a Linux child process to call before it starts: be killed when the thread that
    started it (the worker's) dies. ``prctl`` is looked up here, in the parent, so that the child only
    calls it (nothing between fork and exec may take a lock)."""
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# --- the sweep -----------------------------------------------------------------------------------

@dataclass
class SweepReport:
    """A submission's outcomes, its wall time and the seconds the cluster took to start."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    cluster_seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        ran = [o for o in self.outcomes if o.ok and not o.skipped]
        skipped = [o for o in self.outcomes if o.skipped]
        return (f"{len(ran)} ran, {len(skipped)} already finished, {len(self.failed)} failed, in "
                f"{self.seconds:.1f} s (the cluster's start {self.cluster_seconds:.1f} s)")


def run_sweep(jobs: list[Job], root: str | Path, *, scheduler: str | None = None, workers: int | None = None,
              threads_per_job: int = 1, cell_timeout: int = CELL_TIMEOUT_S, progress: bool = True) -> SweepReport:
    """Run ``jobs`` into ``root`` on Dask: the scheduler at ``scheduler`` (``tcp://HOST:8786``), or
    a ``LocalCluster`` of ``workers`` single-threaded worker processes (default: one per core).
    Each job computes on ``threads_per_job`` threads; give a cluster's workers as many (``dask
    worker --nthreads 1`` runs one job at a time, whose output then goes to its own log alone).
    A notebook job's cell running longer than ``cell_timeout`` seconds fails it (``CELL_TIMEOUT_S``).
    Jobs finished by an earlier submission are skipped without a worker."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as e:
        raise ImportError("sweeps run on Dask: pip install -e '.[sweep]'") from e
    if scheduler and workers:
        raise SweepError("--workers sizes the LocalCluster that --scheduler replaces: start that cluster's workers "
                         "yourself (dask worker ADDRESS --nthreads 1), or leave out --scheduler")
    jobs = [dataclasses.replace(j, threads=threads_per_job) for j in jobs]
    check(jobs)
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    report = SweepReport(outcomes=[Outcome(j, ok=True, skipped=True) for j in jobs if is_done(root, j)])
    todo = [j for j in jobs if not is_done(root, j)]
    start = time.perf_counter()
    if not todo:
        report.seconds = time.perf_counter() - start
        return report
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
            if any(n > 1 for n in client.nthreads().values()):
                print("warning: workers with more than one thread run several jobs at once, whose logs then mix; "
                      "start them with dask worker --nthreads 1")
        else:
            from dask.system import CPU_COUNT  # the cores this process may use (affinity, cgroups), not all

            cluster = stack.enter_context(LocalCluster(n_workers=workers or CPU_COUNT, threads_per_worker=1,
                                                       processes=True, memory_limit=0, dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
        report.cluster_seconds = time.perf_counter() - start
        where = hashlib.sha256(str(root).encode()).hexdigest()[:8]  # one sweep's task is not another folder's
        futures = {client.submit(run_job, job, str(root), None, cell_timeout,
                                 key=f"lthkit-job-{job.key}-{where}", pure=False): job for job in todo}
        bar = _progress(len(jobs), len(report.outcomes), progress)
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001  a worker lost more often than Dask retries
                folder = job_folder(root, futures[future])
                outcome = Outcome(futures[future], ok=False, log_tail=f"{type(err).__name__}: {err}\n"
                                                                       + log_tail(folder / "log.txt"))
            report.outcomes.append(outcome)
            bar.update(1)
            if not outcome.ok:
                bar.write(f"job {outcome.job.key} ({outcome.job.describe()}) failed; the end of its log:\n"
                          + "\n".join("  " + line for line in outcome.log_tail.splitlines()))
        bar.close()
    report.seconds = time.perf_counter() - start
    return report


def _progress(total: int, done: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="job", desc="sweep", disable=None if enabled else True)
