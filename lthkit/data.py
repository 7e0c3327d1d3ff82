"""Datasets as tensors on the device, with the paper's splits.

Lottery-ticket experiments train the same small network dozens of times, so the data
is read once through ``torchvision.datasets``, cached on disk as ``uint8`` tensors, and
held in memory as one normalised tensor per split. Training then slices batches out of
that tensor: no per-sample Python, no DataLoader.

Splits follow Frankle & Carbin: 5,000 training images are held out for validation
(early stopping) and never trained on; the official test set is the test set.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch

from lthkit import files
from lthkit.catalogue import DatasetInfo, check, data_root, dataset_info
from lthkit.seeds import generator

CACHE_VERSION = 1


class DataMissingError(FileNotFoundError):
    """The dataset is not on disk and could not be downloaded."""


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Splits:
    """Train, validation and test tensors of one dataset, all on one device."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    def to(self, device: str | torch.device) -> "Splits":
        """The same splits on ``device`` (itself when they are there already)."""
        if torch.device(device) == self.device:
            return self
        move = lambda split: Split(split.x.to(device), split.y.to(device))  # noqa: E731
        return Splits(self.info, move(self.train), move(self.val), move(self.test))

    def with_eval_size(self, n: int | None) -> "Splits":
        """The same training set, validated and tested on the first ``n`` images of each (a small
        budget's cheaper, noisier measurement); ``None`` keeps them whole."""
        if n is None:
            return self
        return Splits(self.info, self.train, Split(self.val.x[:n], self.val.y[:n]),
                      Split(self.test.x[:n], self.test.y[:n]))


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    subset: int | None = None,
    split_seed: int = 0,
    download: bool = True,
) -> Splits:
    """Load a dataset as normalised tensors with the paper's train/validation/test split.

    ``subset`` keeps a seeded, class-balanced sample of that many training images (for
    small budgets); validation and test sets stay whole so that accuracies stay comparable.
    """
    info = dataset_info(name)
    if subset is not None and not (info.num_classes <= subset <= info.train_size):
        raise ValueError(
            f"subset={subset} is out of range for {name}: give at least {info.num_classes} "
            f"(one per class) and at most {info.train_size} training images, or None for all"
        )
    images, labels, test_images, test_labels = _raw_tensors(info, data_root(root), download)

    train_idx, val_idx = paper_split(len(labels), info.val_size, split_seed)
    if subset is not None:
        train_idx = _balanced_subset(train_idx, labels[train_idx], subset, info.num_classes, split_seed)

    device = torch.device(device)
    scale = (1.0 / (255.0 * torch.tensor(info.std))).view(1, -1, 1, 1).to(device)
    shift = (torch.tensor(info.mean) / torch.tensor(info.std)).view(1, -1, 1, 1).to(device)

    def split(x: torch.Tensor, y: torch.Tensor) -> Split:
        x = x.to(device).to(torch.float32)
        return Split(x.mul_(scale).sub_(shift), y.to(device, torch.long))

    return Splits(
        info,
        split(images[train_idx], labels[train_idx]),
        split(images[val_idx], labels[val_idx]),
        split(test_images, test_labels),
    )


def paper_split(n: int, val_size: int, split_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the ``n`` official training images: (train, validation), disjoint, fixed by seed."""
    order = torch.randperm(n, generator=generator("split", n, split_seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def _balanced_subset(idx: torch.Tensor, labels: torch.Tensor, size: int, classes: int, seed: int) -> torch.Tensor:
    """``size`` indices, as evenly spread over classes as the classes allow.

    Each class is shuffled; images are then dealt round-robin, one per class at a time, so a
    class that runs out simply stops contributing and the total is always ``size``.
    """
    g = generator("subset", size, seed)
    rank = torch.empty(len(idx), dtype=torch.long)
    for c in range(classes):
        members = (labels == c).nonzero().flatten()
        rank[members[torch.randperm(len(members), generator=g)]] = torch.arange(len(members))
    order = torch.argsort(rank * classes + labels, stable=True)
    return idx[order[:size]].sort().values


def _raw_tensors(info: DatasetInfo, root: Path, download: bool):
    """(train images, train labels, test images, test labels) as uint8/long tensors, NCHW."""
    cache = root / "cache" / f"{info.name}.pt"
    if cache.exists():
        try:
            blob = files.load_torch(cache)
        except files.DamagedFile:  # a cache cut short is rebuilt from the dataset's own files
            blob = {}
        if isinstance(blob, dict) and blob.get("version") == CACHE_VERSION:
            return blob["train_x"], blob["train_y"], blob["test_x"], blob["test_y"]
    _refuse_damaged(info, root)
    train_x, train_y = _read_torchvision(info, root, train=True, download=download)
    test_x, test_y = _read_torchvision(info, root, train=False, download=download)
    blob = {"version": CACHE_VERSION, "train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        files.save_torch(cache, blob)
    except OSError as err:
        warnings.warn(f"could not cache {info.name} in {cache.parent} ({err}); loads stay slower but correct")
    return train_x, train_y, test_x, test_y


def _refuse_damaged(info: DatasetInfo, root: Path) -> None:
    """torchvision reads MNIST's unpacked files without checking them, so before they become the
    cached tensors they are checked against the published MD5s (CIFAR-10's batches torchvision
    checks itself). A damaged file stops the load with its name rather than training on it."""
    if info.name == "cifar10":
        return
    state = check(info.name, root)
    damaged = state.corrupted + state.stale
    if damaged:
        raise DataMissingError(
            f"{', '.join(map(str, damaged))}: damaged (the bytes differ from the published ones). Fetch them again "
            f"with `lthkit data download --root {root}`, or copy them from a folder that `lthkit data verify` passes."
        )


def _read_torchvision(info: DatasetInfo, root: Path, *, train: bool, download: bool):
    import torchvision

    cls = getattr(torchvision.datasets, info.torchvision_class)
    archives_here = all((root / info.folder / f).exists() for f in info.files)
    try:
        # With the archives present, torchvision checks their MD5 and unpacks them offline.
        ds = cls(str(root), train=train, download=download or archives_here)
    except (RuntimeError, URLError, OSError) as err:
        raise DataMissingError(_missing_message(info, root, download, err)) from None
    data = torch.as_tensor(ds.data)
    if data.ndim == 3:
        data = data.unsqueeze(1)
    else:
        data = data.permute(0, 3, 1, 2)
    return data.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)


def _missing_message(info: DatasetInfo, root: Path, download: bool, err: Exception) -> str:
    folder = root / info.folder
    why = "downloading is switched off" if not download else f"the download failed ({str(err).splitlines()[0]})"
    files = ", ".join(info.files)
    place = (
        f"Unpack cifar-10-python.tar.gz into {root} so that {folder} holds {files}"
        if info.name == "cifar10"
        else f"Place the official archives in {folder} ({files})"
    )
    return (
        f"{info.torchvision_class} is not in {folder} (or a file there is corrupted) and {why}. "
        f"{place}, or run once on a machine that is online, or set LTHKIT_DATA to a folder that already holds them."
    )


def iterations_per_epoch(train_size: int, batch_size: int) -> int:
    """Batches in one pass over the training set; the last batch may be smaller."""
    return math.ceil(train_size / batch_size)


def augment(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch of images: a random crop of the image padded
    by ``pad`` pixels, and a horizontal flip with probability 1/2, drawn from ``g``. The padding
    is zero in the normalised image, that is the mean colour (torchvision pads with black)."""
    n, _, h, w = x.shape
    shift = torch.randint(0, 2 * pad + 1, (n, 2), generator=g).to(x.device)
    flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
    rows = shift[:, :1] + torch.arange(h, device=x.device)
    cols = shift[:, 1:] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
