"""Taking turns on the CPU's cores with the other lthkit processes of this machine.

PyTorch computes on the CPU with one OpenMP thread per core, and a thread that waits for work spins
(GNU OpenMP: about 300,000 turns) before it sleeps. Alone that saves a wake-up; two processes that
each have a thread per core spin against each other's work, and each took 2.7 (Conv-2) to 4.5
(LeNet-300-100) times as long as alone (medians, benchmarks/threads.py; 10 to 50 times on a busier
machine). Giving each process
fewer threads would stop the fight, but it slows a process alone (Conv-2 1.6 times) and changes its
arithmetic (the order of a sum over threads), so a run's numbers would hang on what else was
running. Instead a process that trains on the CPU holds one of the machine's cores per thread, in
slices of ``SLICE_S``: when processes want more cores than there are, they take turns, each at full
speed on its own thread count. Two processes that each want every core took 2.0 (LeNet) and 2.2
(Conv-2) times as long as one alone, and end with the numbers each gets alone. A slice of a second
keeps the cost of a hand-over (the other process's threads spin for some 10 ms after its turn, and
the new holder's caches are cold) to about a percent.

Each core is one byte of a lock file (``fcntl.lockf``), one file per user: the kernel drops a dead
process's locks, so nothing goes stale. A turnstile byte makes the turns alternate: a process that
wants cores holds it while it waits, so the one whose slice just ended queues behind it. Waiting
polls every ``POLL_S`` and gives up after ``PATIENCE_S`` (a holder stopped with Ctrl-Z, say): the
process then computes without taking turns, as it would without this module, and says so once.
``LTHKIT_SHARE_CORES=0`` turns turn-taking off.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

from lthkit.settings import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no POSIX record locks; processes compute without taking turns
    fcntl = None

SLICE_S = 1.0
POLL_S = 0.002
PATIENCE_S = 60.0
_TURNSTILE = 0

_holding = threading.Lock()  # one claim per process: POSIX locks belong to the process, not the thread


def lock_file() -> Path:
    """This user's lock file: a byte per core of the machine after the turnstile's."""
    return Path(tempfile.gettempdir()) / f"lthkit-cores-{os.getuid()}.lock"


class CoreClaim:
    """One process's hold on ``want`` of the ``cores`` core-bytes of ``path``, taken and given back
    in slices of ``slice_s`` seconds. After waiting ``patience_s`` seconds in vain it stops taking
    turns (``off``) and says so."""

    gave_up = False  # in this process, once: a stopped holder would cost every later training as long

    def __init__(self, path: Path, cores: int, want: int, slice_s: float = SLICE_S,
                 patience_s: float = PATIENCE_S):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.cores, self.want = cores, min(want, cores)
        self.slice_s, self.patience_s = slice_s, patience_s
        self.held: list[int] = []
        self.since = 0.0
        self.off = CoreClaim.gave_up

    def take(self) -> None:
        """Hold ``want`` cores, waiting for them behind the turnstile."""
        if self.off:
            return
        try:
            self._take(time.monotonic() + self.patience_s)
        except TimeoutError:
            self.give_back()
            self.off = CoreClaim.gave_up = True
            warnings.warn(f"lthkit waited {self.patience_s:.0f} s for the CPU's cores, which another lthkit "
                          f"process holds (stopped with Ctrl-Z? `fg` resumes it). This process now computes "
                          f"without taking turns; LTHKIT_SHARE_CORES=0 turns turn-taking off.", RuntimeWarning)
        self.since = time.monotonic()

    def _take(self, deadline: float) -> None:
        while not self._try(_TURNSTILE):
            self._wait(deadline)
        try:
            while True:
                for c in range(self.cores):
                    if len(self.held) < self.want and c not in self.held and self._try(1 + c):
                        self.held.append(c)
                if len(self.held) == self.want:
                    return
                self._wait(deadline)
        finally:
            self._unlock(_TURNSTILE)

    def turn(self) -> None:
        """Between two steps: once this slice is over, give the cores back and queue for them again."""
        if not self.off and time.monotonic() - self.since >= self.slice_s:
            self.give_back()
            self.take()

    def give_back(self) -> None:
        for c in self.held:
            self._unlock(1 + c)
        self.held = []

    def close(self) -> None:
        self.give_back()
        os.close(self.fd)

    def _try(self, byte: int) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte)
            return True
        except OSError:
            return False

    def _unlock(self, byte: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, byte)

    @staticmethod
    def _wait(deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(POLL_S)


@contextmanager
def taking_turns(device: torch.device | str) -> Iterator[Callable[[], None]]:
    """Hold this process's cores while training on ``device``; yields ``turn``, to call between
    steps. Nothing is held off the CPU, on one thread, while another ``taking_turns`` of this process
    holds (in a nested training or another thread), without ``fcntl`` or with ``LTHKIT_SHARE_CORES=0``.
    A process on one thread has no team of threads to spin or stall, and a turn of a second would only
    delay its short trainings (``make test``'s workers, a sweep's jobs): it computes as it would alone."""
    share = os.environ.get("LTHKIT_SHARE_CORES", "1")
    if share not in ("0", "1"):
        raise ConfigError(f"LTHKIT_SHARE_CORES={share!r}: set it to 1 (trainings on the CPU take turns on its cores, "
                         f"the default) or 0 (they do not)")
    if (torch.device(device).type != "cpu" or torch.get_num_threads() < 2 or fcntl is None or share == "0"
            or not _holding.acquire(blocking=False)):
        yield lambda: None
        return
    try:
        try:
            claim = CoreClaim(lock_file(), os.cpu_count() or 1, torch.get_num_threads())
        except OSError:  # no writable temporary folder: compute without taking turns
            yield lambda: None
            return
        try:
            claim.take()
            yield claim.turn
        finally:
            claim.close()
    finally:
        _holding.release()
