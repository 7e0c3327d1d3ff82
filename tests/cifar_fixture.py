"""A tiny synthetic CIFAR-10 in the exact on-disk layout of ``cifar-10-python.tar.gz``.

Every test that learns on CIFAR-10 uses the real one (``conftest.cifar10``). This fixture is
for the few tests that need a tiny tarball to serve and damage: it writes the same files
(``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``), each a pickled dict
with ``data`` (N x 3072 uint8, channel-major rows), ``labels``, ``batch_label`` and
``filenames``, so that torchvision's own ``CIFAR10`` reader parses it. Its images are noise.
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
