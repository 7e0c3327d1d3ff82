"""The dataset catalogue: what each dataset of the course is, where its files live, and whether
the files on disk are the ones published.

Both loading (``lthkit.data``) and fetching (``lthkit.fetch``) need this, and neither needs the
other: loading refuses a damaged file (``check``) without knowing how to download one, and
fetching knows the files without loading them. File names, MD5s and download addresses are
torchvision's own (``MNIST.resources``, ``CIFAR10.tgz_md5`` and so on), so the files land exactly
where ``torchvision.datasets`` looks for them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    torchvision_class: str
    folder: str
    files: tuple[str, ...]
    input_shape: tuple[int, int, int]
    num_classes: int
    val_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_pool: int
    test_size: int

    @property
    def train_size(self) -> int:
        return self.train_pool - self.val_size


_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", "MNIST", "MNIST/raw", _MNIST_FILES, (1, 28, 28), 10, 5000,
        (0.1307,), (0.3081,), 60000, 10000,
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "FashionMNIST", "FashionMNIST/raw", _MNIST_FILES, (1, 28, 28), 10, 5000,
        (0.2860,), (0.3530,), 60000, 10000,
    ),
    "cifar10": DatasetInfo(
        "cifar10", "CIFAR10", "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
         "test_batch", "batches.meta"),
        (3, 32, 32), 10, 5000,
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 50000, 10000,
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``root`` if given, else ``$LTHKIT_DATA``, else the repository's ``data/``."""
    if root is not None:
        return Path(root)
    if os.environ.get("LTHKIT_DATA"):
        return Path(os.environ["LTHKIT_DATA"])
    return Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Archive:
    """One file as published: where it lives under the data root, its MD5, where to download it."""

    path: str
    md5: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Unpacked:
    """A file unpacked from an archive. ``md5`` is torchvision's where it publishes one (CIFAR-10's
    batches); MNIST's unpacked files have none, so they are compared with their archive instead."""

    path: str
    archive: Archive
    md5: str | None


def _torchvision_class(name: str):
    import torchvision

    return getattr(torchvision.datasets, dataset_info(name).torchvision_class)


def archives(name: str) -> list[Archive]:
    """The files ``name`` is published as, from torchvision's own resource lists."""
    cls = _torchvision_class(name)
    if name == "cifar10":
        return [Archive(cls.filename, cls.tgz_md5, (cls.url,))]
    folder = dataset_info(name).folder
    return [Archive(f"{folder}/{file}", md5, tuple(base + file for base in cls.mirrors)) for file, md5 in cls.resources]


def unpacked(name: str) -> list[Unpacked]:
    """The files torchvision reads, unpacked from the archives."""
    cls = _torchvision_class(name)
    if name == "cifar10":
        (tarball,) = archives(name)
        batches = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
        return [Unpacked(f"{cls.base_folder}/{file}", tarball, md5) for file, md5 in batches]
    return [Unpacked(a.path.removesuffix(".gz"), a, None) for a in archives(name)]


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _same_as_gunzipped(path: Path, archive: Path) -> bool:
    with open(path, "rb") as mine, gzip.open(archive, "rb") as theirs:
        while True:
            a, b = mine.read(CHUNK), theirs.read(CHUNK)
            if a != b:
                return False
            if not a:
                return True


@dataclass
class Check:
    """What is wrong with one dataset under a data root; all lists empty means verified."""

    name: str
    root: Path
    missing: list[Path] = field(default_factory=list)
    corrupted: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)  # unpacked files that differ from their good archive

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupted or self.stale)


def check(name: str, root: str | os.PathLike | None = None) -> Check:
    """Check every file of ``name`` against its MD5, downloading nothing.

    CIFAR-10 is verified by its unpacked batches (each has an MD5), so a folder holding only
    ``cifar-10-batches-py/`` is complete. MNIST-style datasets are verified by their archives, and
    an unpacked file beside a good archive must equal the archive's content.
    """
    root = data_root(root)
    result = Check(name, root)
    published = unpacked(name) if name == "cifar10" else archives(name)
    for file in published:
        path = root / file.path
        if not path.exists():
            result.missing.append(path)
        elif md5_of(path) != file.md5:
            result.corrupted.append(path)
    if name == "cifar10":
        return result
    for file in unpacked(name):
        path, source = root / file.path, root / file.archive.path
        if path.exists() and source not in result.missing + result.corrupted:
            if not _same_as_gunzipped(path, source):
                result.stale.append(path)
    return result
