"""Results as plain data: what a run measured, to and from JSON.

A learning curve is a list of evaluations; an arm (the ticket or a control) is one
training run summarised by its curve and its early-stopping point; a round is one mask and
the arms trained with it. Everything here is numbers, strings, lists and dicts, so a
results file can be read by any tool, and two runs can be compared for equality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from lthkit import files


@dataclass
class CurvePoint:
    iteration: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    test_accuracy: float


@dataclass
class ArmResult:
    """One training run: its learning curve and where early stopping would have stopped it.

    Early stopping follows the paper: the iteration of minimum validation loss, and the test
    accuracy measured there. ``test_accuracy`` is at the end of training.
    """

    test_accuracy: float
    early_stop_iteration: int
    early_stop_test_accuracy: float
    early_stop_val_loss: float
    curve: list[CurvePoint]

    @classmethod
    def from_curve(cls, curve: list[CurvePoint]) -> "ArmResult":
        best = min(curve, key=lambda p: p.val_loss)
        return cls(curve[-1].test_accuracy, best.iteration, best.test_accuracy, best.val_loss, curve)

    @classmethod
    def from_dict(cls, d: dict) -> "ArmResult":
        return cls(**{**d, "curve": [CurvePoint(**p) for p in d["curve"]]})


@dataclass
class RoundResult:
    """One mask and the arms trained with it. ``collapsed`` names each arm whose mask left a
    layer with no weight (arm -> those layers): such an arm is reported, not trained."""

    round: int
    weights_remaining: float
    layer_weights_remaining: dict[str, float]
    arms: dict[str, ArmResult] = field(default_factory=dict)
    collapsed: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "RoundResult":
        return cls(d["round"], d["weights_remaining"], d["layer_weights_remaining"],
                   {k: ArmResult.from_dict(v) for k, v in d["arms"].items()}, d.get("collapsed", {}))

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.collapsed:  # most runs never collapse: their files keep the shape they always had
            del d["collapsed"]
        return d


@dataclass
class Results:
    """A whole IMP run: the configuration that made it and one entry per pruning round."""

    config: dict
    rounds: list[RoundResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"config": self.config, "rounds": [r.to_dict() for r in self.rounds]}

    @classmethod
    def from_dict(cls, d: dict) -> "Results":
        return cls(d["config"], [RoundResult.from_dict(r) for r in d["rounds"]])

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        try:
            return cls.from_dict(files.read_json(path))
        except (KeyError, TypeError, AttributeError) as err:
            raise files.DamagedFile(Path(path), f"no {err}" if isinstance(err, KeyError) else str(err),
                                    "the results of an lthkit run") from None

    def arms(self) -> list[str]:
        seen: list[str] = []
        for r in self.rounds:
            seen += [a for a in [*r.arms, *r.collapsed] if a not in seen]
        return seen

    def series(self, arm: str, key: str) -> tuple[list[float], list[float]]:
        """(weights remaining, ``key`` of ``arm``) over the rounds that trained that arm."""
        xs, ys = [], []
        for r in self.rounds:
            if arm in r.arms:
                xs.append(r.weights_remaining)
                ys.append(getattr(r.arms[arm], key))
        return xs, ys

    def table(self) -> str:
        """One line per round: weights remaining, then each arm's early-stop accuracy and iteration."""
        arms = self.arms()
        head = f"{'round':>5} {'weights':>8} " + " ".join(f"{a + ' acc':>11} {a + ' it':>10}" for a in arms)
        lines = [head]
        for r in self.rounds:
            cells = []
            for a in arms:
                if a in r.arms:
                    cells.append(f"{r.arms[a].early_stop_test_accuracy:>11.4f} {r.arms[a].early_stop_iteration:>10d}")
                elif a in r.collapsed:
                    cells.append(f"{'collapsed':>11} {'-':>10}")
                else:
                    cells.append(f"{'-':>11} {'-':>10}")
            lines.append(f"{r.round:>5} {r.weights_remaining:>7.2%} " + " ".join(cells))
        return "\n".join(lines)


def print_arm(r: int, arm: str, result: ArmResult, seconds: float, *, seed: int | None = None) -> None:
    """One line per trained network: an ``on_arm`` progress log for the CLI and the notebooks
    (``seed``: which of several runs trained together)."""
    name = "dense" if r == 0 else arm
    print(("" if seed is None else f"seed {seed} ") + f"round {r:2d} {name:7s} {result.early_stop_test_accuracy:.2%} at early stop "
          f"(iteration {result.early_stop_iteration}), {seconds:.0f} s", flush=True)


def write_json(path: str | Path, data: object) -> None:
    """Write JSON atomically (``lthkit.files``), so that a run killed mid-write never leaves half a file."""
    files.write_json(path, data)
