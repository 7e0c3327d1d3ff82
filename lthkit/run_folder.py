"""The files of one IMP run, owned by one object, so that a run folder cannot tear.

A run is killed in the middle of things: a learner interrupts a cell, a laptop sleeps, a
cluster's time limit runs out. Whatever instant it happens at, the folder must hold only
whole files that a resume can trust. So ``RunFolder`` is the one place that knows a run's file
names, and it writes every file the same way: into a temporary file in the same folder,
flushed to disk, then renamed over the old one with ``os.replace``, which is atomic. A reader
(a resume, ``load_ticket``, a notebook plotting a run in progress) sees the old file or the
new one, never half of one.

Two runs writing one folder would tear it all the same (each rewriting ``results.json`` with
its own rounds), so a run holds the folder's lock (``locked``) for as long as it works in it;
a second run stops at once with an error that says what to do. The operating system drops
the lock when the process ends, however it ends, so a killed run never leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import torch

from lthkit import files
from lthkit.config import ConfigError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

RESULTS = "results.json"
TIMINGS = "timings.json"
RULES = "rules.json"
EVAL_SETS = "eval_sets.json"
ARITHMETIC = "arithmetic.json"
REWIND_POINT = "rewind_point.pt"
CHECKPOINT = "checkpoint.pt"
DAMAGED_CHECKPOINT = "checkpoint.damaged.pt"
LOCK = ".lock"


class FolderInUse(ConfigError):
    """Another run holds the folder's lock."""


class RunFolder:
    """The folder of one IMP run: its file names, its atomic writes and its lock.

    - ``results.json``, ``timings.json``: what each arm measured, and how long it took;
    - ``rules.json``: the learner's own rules the rounds were made with (``lthkit.imp.Rules``);
    - ``eval_sets.json``: how many validation and test images measured the curves, so that a
      resume with other data (``config.eval_images`` unset) cannot mix two measurements;
    - ``arithmetic.json``: the device, the engine and the CPU thread count the rounds were computed
      with, which change the last bits of every result (``lthkit.imp``'s resume compares them);
    - ``rewind_point.pt``: the weights rounds rewind to (written once);
    - ``round_NN.pt``: each round's mask and trained weights;
    - ``checkpoint.pt``: the round in training, every few minutes (``lthkit.train.train_together``),
      removed when the round is done.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def timings(self) -> Path:
        return self.path / TIMINGS

    @property
    def rules(self) -> Path:
        return self.path / RULES

    @property
    def eval_sets(self) -> Path:
        return self.path / EVAL_SETS

    @property
    def arithmetic(self) -> Path:
        return self.path / ARITHMETIC

    @property
    def rewind_point(self) -> Path:
        return self.path / REWIND_POINT

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def round(self, r: int) -> Path:
        return self.path / f"round_{r:02d}.pt"

    def check_is_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"output folder {self.path} is a file: choose another --out")

    def clear(self, keep_checkpoint: bool = False) -> None:
        """Remove every file of a run (not the lock): a fresh run must not reuse a stale one's."""
        for f in [self.results, self.timings, self.rules, self.eval_sets, self.arithmetic, self.rewind_point,
                  *([] if keep_checkpoint else [self.checkpoint]), self.path / DAMAGED_CHECKPOINT,
                  *self.path.glob("round_*.pt")]:
            f.unlink(missing_ok=True)
        self.remove_temporaries()

    def remove_temporaries(self) -> None:
        """Temporary files a run killed mid-write left (never renamed, so never read)."""
        for f in self.path.glob(".*.tmp"):
            f.unlink(missing_ok=True)

    # --- writing -----------------------------------------------------------------------------

    def write_atomically(self, path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
        """``lthkit.files.write_atomically``: the old file or the new one, never half of one."""
        files.write_atomically(path, write)

    def write_json(self, path: str | os.PathLike, data: object) -> None:
        files.write_json(path, data)

    def save(self, path: str | os.PathLike, obj: object) -> None:
        files.save_torch(path, obj)

    def read_json(self, path: str | os.PathLike):
        """The JSON in ``path``, or None when there is no such file (``DamagedFile`` when it is damaged)."""
        path = Path(path)
        return files.read_json(path) if path.exists() else None

    def save_snapshot(self, snapshot) -> None:
        """The rewind point, in ``lthkit.rewind.Snapshot.save``'s format."""
        self.save(self.rewind_point, {"iteration": snapshot.iteration,
                                      "state": {k: v.cpu() for k, v in snapshot.state.items()}})

    def save_round(self, r: int, mask, trained: dict[str, torch.Tensor]) -> None:
        self.save(self.round(r), {"mask": mask.state_dict(), "trained": {n: v.cpu() for n, v in trained.items()}})

    def load_round(self, r: int) -> dict:
        path = self.round(r)
        if not path.exists():
            raise ConfigError(f"{self.path} holds no round {r} ({path.name} is missing): "
                              f"choose a round the run has finished")
        return files.load_torch(path)

    def save_checkpoint(self, state: dict) -> None:
        self.save(self.checkpoint, state)

    def load_checkpoint(self) -> dict | None:
        """The checkpoint a killed run left, or None. A checkpoint is only a cache of a round in
        training: a damaged one is set aside (``checkpoint.damaged.pt``, for a look) and its round
        trained again from its start, said in one line."""
        if not self.checkpoint.exists():
            return None
        try:
            state = files.load_torch(self.checkpoint)
        except files.DamagedFile as err:
            aside = self.path / DAMAGED_CHECKPOINT
            os.replace(self.checkpoint, aside)
            print(f"{self.checkpoint} cannot be read ({err.detail}): set aside as "
                  f"{aside.name}; its round is trained again from its start", flush=True)
            return None
        return state if isinstance(state, dict) else None

    def remove_checkpoint(self) -> None:
        self.checkpoint.unlink(missing_ok=True)

    # --- the lock ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunFolder"]:
        """Hold the folder's lock while the block runs; raise ``FolderInUse`` at once when another
        run holds it. The lock file stays (removing it would let two runs lock two different files)."""
        self.check_is_folder()
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.path / LOCK, "a+")
        try:
            if not _try_lock(f):
                try:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                except OSError:
                    holder = "unknown"
                raise FolderInUse(
                    f"{self.path} is in use by another run (process {holder}): two runs writing one folder would "
                    f"tear its files. Wait for that run to finish (or stop it), or choose another output folder"
                )
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()} on {socket.gethostname()}\n")
            f.flush()
            self.remove_temporaries()  # no one else writes here now
            try:
                yield self
            finally:
                _unlock(f)
        finally:
            f.close()


def _try_lock(f) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(f) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        else:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)

