"""lthkit processes take turns on the CPU's cores: never more cores held than there are, turns
that alternate, a dead holder's cores freed at once, a stopped one waited for only so long, and a
training that waits for its turn and ends with the numbers it gets alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from lthkit import cores
from lthkit.catalogue import dataset_info
from lthkit.cores import CoreClaim, taking_turns
from lthkit.data import Split, Splits
from lthkit.models import build_model
from lthkit.settings import ConfigError
from lthkit.sparse_training import SparseConfig, train_sparse
from lthkit.train import TrainConfig, train

pytestmark = pytest.mark.skipif(cores.fcntl is None, reason="POSIX record locks (fcntl) only")

REPO = Path(__file__).resolve().parent.parent

# A process that waits for "go" on stdin, then works in 5 ms steps for ``seconds``, taking turns on
# ``cores`` cores of which it wants ``want``, and prints the spans it held them (monotonic clock).
WORKER = """
import json, sys, time
from pathlib import Path
from lthkit.cores import CoreClaim
path, cores, want, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
spans = []
class Recorded(CoreClaim):
    def take(self):
        super().take()
        spans.append([self.since, None])
    def give_back(self):
        if self.held:
            spans[-1][1] = time.monotonic()
        super().give_back()
claim = Recorded(path, cores, want, slice_s=0.02, patience_s=30)
print("ready", flush=True)
sys.stdin.readline()
claim.take()
end = time.monotonic() + seconds
while time.monotonic() < end:
    time.sleep(0.005)
    claim.turn()
claim.close()
print(json.dumps(spans), flush=True)
"""

# A process that holds every one of ``cores`` cores for ``seconds`` (forever: -1), then exits.
HOLDER = """
import sys, time
from pathlib import Path
from lthkit.cores import CoreClaim
claim = CoreClaim(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[2]))
claim.take()
print("holding", flush=True)
time.sleep(float(sys.argv[3]) if float(sys.argv[3]) >= 0 else 3600)
"""


def _python(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)


def _side_by_side(path: Path, cores_: int, want: int, seconds: float = 0.6) -> list[list[tuple[float, float]]]:
    workers = [_python(WORKER, path, cores_, want, seconds) for _ in range(2)]
    for w in workers:
        assert w.stdout.readline().strip() == "ready"
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    return [[tuple(s) for s in json.loads(w.communicate(timeout=60)[0])] for w in workers]


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def test_two_processes_that_want_every_core_never_hold_at_once_and_alternate(tmp_path):
    a, b = _side_by_side(tmp_path / "cores.lock", 2, 2)
    assert len(a) >= 5 and len(b) >= 5
    assert _overlap(a, b) == 0.0
    both = (max(a[0][0], b[0][0]), min(a[-1][1], b[-1][1]))
    turns = sorted([(s, "a") for s, _ in a] + [(s, "b") for s, _ in b])
    inside = [who for start, who in turns if both[0] <= start <= both[1]]
    repeats = [i for i in range(1, len(inside)) if inside[i] == inside[i - 1]]
    assert len(inside) >= 8 and repeats == [], f"turns did not alternate: {''.join(inside)}"


def test_processes_that_want_fewer_cores_than_there_are_hold_them_at_once(tmp_path):
    a, b = _side_by_side(tmp_path / "cores.lock", 2, 1)
    assert _overlap(a, b) > 0.3, "two one-core processes on two cores should run side by side"


def test_a_killed_holders_cores_are_free_at_once(tmp_path):
    path = tmp_path / "cores.lock"
    holder = _python(HOLDER, path, 2, -1)
    assert holder.stdout.readline().strip() == "holding"
    claim = CoreClaim(path, 2, 2, patience_s=20)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    start = time.monotonic()
    claim.take()
    assert claim.held == [0, 1] and not claim.off and time.monotonic() - start < 1.0
    claim.close()


def test_a_stopped_holder_is_waited_for_only_so_long_then_said(tmp_path, monkeypatch):
    monkeypatch.setattr(CoreClaim, "gave_up", False)
    path = tmp_path / "cores.lock"
    holder = _python(HOLDER, path, 2, -1)
    try:
        assert holder.stdout.readline().strip() == "holding"
        holder.send_signal(signal.SIGSTOP)
        claim = CoreClaim(path, 2, 2, patience_s=0.3)
        start = time.monotonic()
        with pytest.warns(RuntimeWarning, match=r"waited 0 s for the CPU's cores.*Ctrl-Z.*LTHKIT_SHARE_CORES=0"):
            claim.take()
        assert 0.3 <= time.monotonic() - start < 2.0
        assert claim.off and claim.held == [] and CoreClaim.gave_up
        claim.since = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            claim.turn()
            CoreClaim(path, 2, 2, patience_s=0.3).take()  # later claims of this process do not wait again
        assert claim._try(1 + 0) is False, "the stopped holder's core is still held by it"
        claim.close()
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait()


def _holder_holds(path: Path) -> bool:
    probe = subprocess.run([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1); print('free')\n"
        "except OSError:\n    print('held')"), str(path)], capture_output=True, text=True, check=True)
    return probe.stdout.strip() == "held"


def test_taking_turns_holds_on_the_cpu_only_once_per_process_and_not_when_turned_off(tmp_path, monkeypatch,
                                                                                     two_threads):
    path = tmp_path / "cores.lock"
    monkeypatch.setattr(cores, "lock_file", lambda: path)
    monkeypatch.setattr(CoreClaim, "gave_up", False)
    with taking_turns("cpu"):
        assert _holder_holds(path)
        with taking_turns("cpu"):
            pass
        assert _holder_holds(path), "a nested training gave back the outer one's cores"
    assert not _holder_holds(path)
    path.unlink()
    with taking_turns("meta"):
        assert not path.exists()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    with taking_turns("cpu"):
        assert not path.exists(), "a one-thread process took turns"
    monkeypatch.undo()
    monkeypatch.setattr(cores, "lock_file", lambda: path)
    monkeypatch.setenv("LTHKIT_SHARE_CORES", "0")
    with taking_turns("cpu"):
        assert not path.exists()


def _tiny_training(sparse: bool) -> tuple[torch.nn.Module, float]:
    g = torch.Generator().manual_seed(0)
    split = lambda n: Split(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))  # noqa: E731
    data = Splits(dataset_info("mnist"), split(600), split(60), split(60))
    model = build_model("lenet300", (1, 28, 28), seed=0)
    config = TrainConfig(iterations=30, eval_every=10)
    start = time.monotonic()
    if sparse:
        train_sparse(model, data, config, SparseConfig(density=0.5, update_every=10), seed=0)
    else:
        train(model, data, config, progress=False)
    return model, time.monotonic() - start


@pytest.fixture
def two_threads():
    """``make test`` runs its workers on one thread, which takes no turns: these tests compute on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("sparse", [False, True], ids=["train", "train_sparse"])
def test_training_waits_for_its_turn_and_ends_with_the_numbers_it_gets_alone(tmp_path, monkeypatch, sparse,
                                                                             two_threads):
    path = tmp_path / "cores.lock"
    monkeypatch.setattr(cores, "lock_file", lambda: path)
    monkeypatch.setattr(CoreClaim, "gave_up", False)
    alone, _ = _tiny_training(sparse)
    holder = _python(HOLDER, path, os.cpu_count(), 1.5)
    assert holder.stdout.readline().strip() == "holding"
    beside, seconds = _tiny_training(sparse)
    holder.wait()
    assert seconds >= 1.0, f"training did not wait for the cores another process held ({seconds:.2f} s)"
    for (name, p), q in zip(alone.state_dict().items(), beside.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_setting_other_than_0_or_1_is_refused_with_what_to_set(monkeypatch):
    monkeypatch.setenv("LTHKIT_SHARE_CORES", "off")
    with pytest.raises(ConfigError, match=r"LTHKIT_SHARE_CORES='off': set it to 1 .* or 0"):
        with taking_turns("cpu"):
            pass
