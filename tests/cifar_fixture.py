"""A small synthetic CIFAR-10 in the exact on-disk layout of ``cifar-10-python.tar.gz``.

Real CIFAR-10 cannot be had on the machines this course is tested on. This writes the same
files (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``), each a
pickled dict with ``data`` (N x 3072 uint8, channel-major rows), ``labels``, ``batch_label``
and ``filenames``, so that torchvision's own ``CIFAR10`` reader parses it. Only the MD5
checks differ (the images are random), so tests switch those off. Nothing learnt from these
images means anything.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_synthetic_cifar10(root: Path, per_batch: int = 1100, test: int = 500, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(name: str, n: int, label: str) -> None:
        labels = [int(c) for c in rng.integers(0, 10, n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        entry = {"batch_label": label, "labels": labels, "data": data,
                 "filenames": [f"synthetic_{name}_{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch, f"training batch {i} of 5")
    batch("test_batch", test, "testing batch 1 of 1")
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": per_batch, "label_names": LABELS, "num_vis": 3072}, f, protocol=2)
    return folder


REPO = Path(__file__).resolve().parent.parent
STARTUP = '''# Written by tests/cifar_fixture.py for the notebook tests (make test); never used otherwise.
# The notebooks' kernels read their data from {data}: the real MNIST and FashionMNIST (linked
# from data/) and a synthetic CIFAR-10, whose random images fail torchvision's MD5 checks, so
# those checks are switched off here as the pytest fixtures switch them off.
import os

os.environ["LTHKIT_DATA"] = {data!r}
import torchvision.datasets.cifar as _cifar

_cifar.check_integrity = lambda path, md5=None: os.path.isfile(path)
'''


def prepare_notebook_tests(folder: Path) -> None:
    """Data and an IPython start-up file for notebook kernels started with IPYTHONDIR=folder/ipython."""
    data = (Path(folder) / "data").resolve()
    write_synthetic_cifar10(data, per_batch=1200, test=500)
    (data / "cifar-10-batches-py" / "SYNTHETIC").write_text("random images for tests; not CIFAR-10\n")
    for name in ("MNIST", "FashionMNIST"):
        link = data / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(REPO / "data" / name, target_is_directory=True)
    startup = Path(folder) / "ipython" / "profile_default" / "startup" / "00-lthkit-test-data.py"
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(STARTUP.format(data=str(data)))


if __name__ == "__main__":
    import sys

    prepare_notebook_tests(Path(sys.argv[1]))
