"""Shared test set-up: the real datasets, copied (never linked) from ../shared when present."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from lthkit import data as lthdata

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"


def copy_shared_datasets() -> None:
    """Copy the byte-identical archives from ../shared/datasets into data/; torchvision unpacks them there."""
    if not SHARED.is_dir():
        return
    for archive in SHARED.glob("*/raw/*.gz"):
        target = REPO / "data" / archive.relative_to(SHARED)
        if not target.exists() or target.stat().st_size != archive.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(archive, target)


copy_shared_datasets()


def _load(name: str, **kwargs) -> lthdata.Splits:
    try:
        return lthdata.load_dataset(name, **kwargs)
    except lthdata.DataMissingError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"real {name} is not available: {err}")


@pytest.fixture(scope="session")
def mnist():
    return _load("mnist")


@pytest.fixture(scope="session")
def mnist_small():
    """Real MNIST with 600 training images and 1,000 each for validation and test: IMP in seconds."""
    return _load("mnist", subset=600).with_eval_size(1000)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
