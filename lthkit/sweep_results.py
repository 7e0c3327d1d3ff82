"""A sweep's results in one table: every run's rounds and arms, and their mean and 95% interval over seeds.

``collect`` reads each finished job of a sweep folder (``lthkit.sweep``): an ``lthkit imp`` job's
``results.json``, or each IMP run a notebook job wrote. ``summarize`` groups the rows by setting,
run, round and arm, over seeds: the mean and a 95% Student-t interval (what a handful of seeds
supports; none from one seed). ``write_csv`` writes either table.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from lthkit import files
from lthkit.results import Results

MEASURES = ("early_stop_test_accuracy", "early_stop_iteration", "test_accuracy")


@dataclass(frozen=True)
class Row:
    """One arm of one round of one run of one job."""

    setting: str  # the job's settings but its seed, "model=conv2 rewind-iteration=500"
    run: str  # the run's name within the job: "run" for lthkit imp, a notebook's run folder without its seed
    seed: int
    job: str
    round: int
    arm: str
    weights_remaining: float
    early_stop_test_accuracy: float
    early_stop_iteration: int
    test_accuracy: float


def finished_runs(root: str | Path) -> list[tuple[str, int, str, str, Results]]:
    """(setting, seed, job key, run name, results) of every run of every finished job under ``root``:
    the setting is the job's settings but its seed (and its notebook's name), the run name the run's
    folder within the job without its seed ("run" for an ``lthkit imp`` job)."""
    found = []
    from lthkit.sweep import finished

    for done in sorted(Path(root).glob("*/done.json")):
        folder = done.parent
        job = files.read_json(folder / "job.json")
        if not finished(folder, job["kind"]):
            print(f"job {folder.name}: its done.json names results that are gone or changed: left out; submit the "
                  f"sweep again to run it", flush=True)
            continue
        settings = dict(job["settings"])
        seed = int(settings.pop("seed"))
        setting = " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
        if job.get("notebook"):
            setting = f"{Path(job['notebook']).stem} {setting}".strip()
        for results in sorted(folder.rglob("results.json")):
            name = re.sub(r"-seed\d+$", "", results.parent.relative_to(folder).as_posix())
            found.append((setting, seed, job["key"], name, Results.load(results)))
    return found


def rows_of(results: Results, setting: str = "", run: str = "run", job: str = "", seed: int | None = None) -> list[Row]:
    """Every round and arm of one run, as rows (``seed``: the run's own, from its config, unless given)."""
    seed = results.config["seed"] if seed is None else seed
    return [Row(setting, run, seed, job, r.round, arm, r.weights_remaining,
                a.early_stop_test_accuracy, a.early_stop_iteration, a.test_accuracy)
            for r in results.rounds for arm, a in r.arms.items()]


def collect(root: str | Path) -> list[Row]:
    """Every round and arm of every finished run of the sweep in ``root``."""
    return [row for setting, seed, key, run, results in finished_runs(root)
            for row in rows_of(results, setting, run, key, seed)]


@functools.lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` degrees of freedom: its CDF
    integrated (Simpson's rule) and inverted by bisection, to 1e-6."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        total = sum((1 if i in (0, steps) else 4 if i % 2 else 2) * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2)
                    for i in range(steps + 1))
        return 0.5 + c * total * h / 3

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    while high - low > 1e-6:
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def interval(values: list[float]) -> tuple[float, float | None]:
    """The mean of ``values`` and the half-width of its 95% t interval (None from one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, t_quantile(0.975, len(values) - 1) * sd / math.sqrt(len(values))


def summarize(rows: list[Row]) -> list[dict]:
    """Per setting, run, round and arm: how many seeds, the mean weights remaining, and each
    measure's mean and 95% half-width over the seeds."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.setting, row.run, row.round, row.arm)].append(row)
    summary = []
    for (setting, run, r, arm), members in sorted(groups.items()):
        line = {"setting": setting, "run": run, "round": r, "arm": arm, "seeds": len(members),
                "weights_remaining": sum(m.weights_remaining for m in members) / len(members)}
        for measure in MEASURES:
            mean, half = interval([getattr(m, measure) for m in members])
            line[measure], line[f"{measure}_95"] = mean, half
        summary.append(line)
    return summary


def write_csv(path: str | Path, records: list) -> Path:
    """``records`` (rows or summary lines) as CSV, one column per field."""
    dicts = [asdict(r) if isinstance(r, Row) else r for r in records]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(dicts[0]) if dicts else list(Row.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(dicts)
    return files.write_text(path, text.getvalue())


def format_summary(summary: list[dict]) -> str:
    """The summary as text: the settings every row shares once on top, then per row what sets it apart,
    the accuracy at early stop and the early-stop iteration, each mean ± 95% half-width."""
    def pm(mean: float, half: float | None, scale: float, digits: int) -> str:
        return f"{mean * scale:.{digits}f}" + (f" ± {half * scale:.{digits}f}" if half is not None else "")

    tokens = [s["setting"].split() for s in summary]
    common = [t for t in tokens[0] if all(t in ts for ts in tokens)] if tokens else []
    own = [" ".join(t for t in ts if t not in common) or "—" for ts in tokens]
    width = max([len("setting"), *map(len, own)])
    runs = max([len("run"), *(len(s["run"]) for s in summary)])
    lines = [f"every run: {' '.join(common)}"] if common else []
    lines.append(f"{'setting':{width}s} {'run':{runs}s} {'round':>5s} {'arm':8s} {'seeds':>5s} {'weights':>8s} "
                 f"{'accuracy at early stop (%)':>27s} {'early-stop iteration':>22s}")
    for s, setting in zip(summary, own):
        lines.append(f"{setting:{width}s} {s['run']:{runs}s} {s['round']:5d} {s['arm']:8s} {s['seeds']:5d} "
                     f"{s['weights_remaining']:8.1%} "
                     f"{pm(s['early_stop_test_accuracy'], s['early_stop_test_accuracy_95'], 100, 2):>27s} "
                     f"{pm(s['early_stop_iteration'], s['early_stop_iteration_95'], 1, 0):>22s}")
    return "\n".join(lines)


def runs_by_setting(root: str | Path) -> dict[tuple[str, str], list[Results]]:
    """The finished runs of ``root`` grouped by (setting, run), each group's runs in seed order: what
    a figure draws as one band per arm."""
    groups: dict[tuple[str, str], list[tuple[int, Results]]] = defaultdict(list)
    for setting, seed, _, run, results in finished_runs(root):
        groups[(setting, run)].append((seed, results))
    return {key: [r for _, r in sorted(members, key=lambda m: m[0])] for key, members in sorted(groups.items())}
