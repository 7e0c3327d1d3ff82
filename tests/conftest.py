"""Shared test set-up: the real datasets, copied (never linked) from ../shared when present.

../shared is never written: everything unpacked or cached from these copies lands in data/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbval.kernel
import pytest
import torch
from filelock import FileLock

from lthkit import data as lthdata
from lthkit import kernels

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"


def copy_shared_datasets() -> None:
    """Copy the byte-identical files from ../shared/datasets into data/: MNIST's and Fashion-MNIST's
    archives (torchvision unpacks them there) and CIFAR-10's batch files (already unpacked), then
    unpack each into lthkit's cache once. pytest-xdist's workers import this file at the same time:
    one does the work under a lock while the others wait, so none reads a file half written."""
    if not SHARED.is_dir():
        return
    (REPO / "data").mkdir(exist_ok=True)
    with FileLock(REPO / "data" / ".tests.lock"):
        for source in [*SHARED.glob("*/raw/*.gz"), *SHARED.glob("cifar-10-batches-py/*")]:
            target = REPO / "data" / source.relative_to(SHARED)
            if not target.exists() or target.stat().st_size != source.stat().st_size:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        for name in ("mnist", "fashion-mnist", "cifar10"):
            if not (REPO / "data" / "cache" / f"{name}.pt").exists():
                try:
                    lthdata.load_dataset(name, root=REPO / "data", download=False)
                except lthdata.DataMissingError:
                    pass  # the tests that need it skip, or fail under CI, with the reason


STUDENT_COPIES = "test_student_copies_run.py"


def pytest_collection_modifyitems(items):
    """The student copies first: each is a notebook run of its own (together a third of the suite's
    time), and collected late they would leave a worker running alone at the end."""
    items.sort(key=lambda item: item.path.name != STUDENT_COPIES)


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist sends each file whole, in order, to one worker (``--dist loadfile``: a notebook's cells
    share one kernel), but each student copy on its own, so that their runs spread over the workers."""
    from xdist.scheduler import LoadFileScheduling

    class FilesWholeStudentCopiesApart(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if STUDENT_COPIES in nodeid else super()._split_scope(nodeid)

    return FilesWholeStudentCopiesApart(config, log)


# nbval starts its kernels with jupyter_client's KernelManager, which no option of its own replaces. Under
# pytest-xdist two workers start kernels at the same moment: on Unix sockets they cannot take each other's ports.
nbval.kernel.KernelManager = kernels.KernelManager

if torch.cuda.is_available():  # cuBLAS reads it once, at its first use: before any test runs on the GPU
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.fixture
def determinism_restored(monkeypatch):
    """Deterministic mode as it was before the test, whatever the test turns on."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1:]


def _load(name: str, **kwargs) -> lthdata.Splits:
    try:
        return lthdata.load_dataset(name, **kwargs)
    except lthdata.DataMissingError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"real {name} is not available: {err}")


copy_shared_datasets()


@pytest.fixture(scope="session")
def mnist():
    return _load("mnist")


@pytest.fixture(scope="session")
def mnist_small():
    """Real MNIST with 600 training images and 1,000 each for validation and test: IMP in seconds."""
    return _load("mnist", subset=600).with_eval_size(1000)


@pytest.fixture(scope="session")
def trained_lenet(mnist_small):
    """A LeNet-300-100 trained 30 iterations on ``mnist_small``: trained weights for the pruning checkers."""
    from lthkit.models import build_model
    from lthkit.train import TrainConfig, train

    model = build_model("lenet300", (1, 28, 28), seed=0)
    train(model, mnist_small, TrainConfig(iterations=30, eval_every=30), progress=False)
    return model.cpu()


@pytest.fixture(scope="session")
def cifar10():
    """Real CIFAR-10: 45,000 training, 5,000 validation and 10,000 test images."""
    return _load("cifar10")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
