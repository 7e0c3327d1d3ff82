"""Fetching the course's datasets once, and knowing that what is on disk is what was published.

A classroom often has one good connection (or none): a teacher fetches the data once, with
``lthkit data download --root /media/usb/lthkit-data``, and hands the folder round. A copy made
that way can be damaged on the way (a stick pulled out mid-copy, a flaky network share), and a
damaged archive must never become a silently wrong dataset. So every file is checked against
the MD5 that torchvision publishes for it; a file that fails is named, removed and fetched again,
and whatever was derived from it (the unpacked file beside an MNIST archive, lthkit's tensor
cache) goes with it.

File names, MD5s and download addresses are torchvision's own (``MNIST.resources``,
``CIFAR10.tgz_md5`` and so on), so the files land exactly where ``torchvision.datasets`` and
``lthkit.data`` look for them. A download goes to ``NAME.part`` and is renamed only once its MD5
matches, so an interrupted run leaves nothing that looks finished.

``mirror`` replaces the official addresses by one base URL under which files sit as they do
under a data root: a folder made by ``lthkit data download`` and served with
``python -m http.server`` is such a mirror.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError

from lthkit.data import DATASETS, DataMissingError, data_root, dataset_info

CHUNK = 1 << 20
OFFLINE_ADVICE = (
    "\nWithout internet here, copy a folder prepared with 'lthkit data download' on a machine that is online "
    "(a USB stick, a shared folder) into {root}, or set LTHKIT_DATA to that folder."
)


class FetchError(DataMissingError):
    """A file the course needs is missing or damaged and could not be fetched again."""


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


def fetch(
    names: list[str] | tuple[str, ...] = tuple(DATASETS),
    root: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    progress: bool = True,
    log=print,
) -> list[Path]:
    """Make ``root`` hold every file of each dataset in ``names``, verified; return what was downloaded.

    Nothing is downloaded when every file is present and its MD5 matches. A damaged file is
    reported by name, removed with what was derived from it, and fetched again; when that fails
    (offline), ``FetchError`` says which file and what to do instead.
    """
    root = data_root(root)
    downloaded, failures = [], []
    for name in names:
        state = check(name, root)
        if state.ok:
            log(f"{name}: verified in {root}")
            continue
        try:
            downloaded += _repair(name, state, mirror, progress, log)
        except FetchError as err:
            failures.append(str(err))
    if failures:
        raise FetchError("\n".join(failures) + OFFLINE_ADVICE.format(root=root))
    return downloaded


def _repair(name: str, state: Check, mirror: str | None, progress: bool, log) -> list[Path]:
    """Remove what ``state`` found damaged and everything derived from it, fetch and unpack again."""
    root, downloaded = state.root, []
    (root / "cache" / f"{name}.pt").unlink(missing_ok=True)
    for path in state.corrupted:
        log(f"{path}: checksum mismatch (truncated or damaged), fetching again")
        path.unlink()
    for path in state.stale:
        log(f"{path}: differs from its archive, unpacking again")
        path.unlink()
    if name == "cifar10":
        downloaded += _fetch_cifar10(root, state, mirror, progress, log)
    else:
        for file in unpacked(name):
            if root / file.archive.path in state.corrupted:
                (root / file.path).unlink(missing_ok=True)  # made from a damaged archive: never to be read
        for archive in [a for a in archives(name) if not (root / a.path).exists()]:
            _download(archive, root, mirror, progress)
            downloaded.append(root / archive.path)
            for file in unpacked(name):
                if file.archive == archive:  # kept until now, unpacked again below from the verified archive
                    (root / file.path).unlink(missing_ok=True)
        for file in unpacked(name):
            if not (root / file.path).exists():
                _gunzip(root / file.archive.path, root / file.path)
    after = check(name, root)
    if not after.ok:
        raise FetchError(f"{name}: still not verified after fetching: {_describe(after)}")
    log(f"{name}: fetched and verified in {root}")
    return downloaded


def _fetch_cifar10(root: Path, state: Check, mirror: str | None, progress: bool, log) -> list[Path]:
    """CIFAR-10 is published as one archive, but a mirror made by ``lthkit data download`` (or any
    folder laid out as a data root) also serves the batch files themselves, each with its own
    MD5: from a mirror only the batches that are missing or damaged are fetched. The archive is
    the fallback, and the only source upstream."""
    from torchvision.datasets.utils import extract_archive

    wanted = {root / f.path for f in unpacked("cifar10")} & {*state.missing, *state.corrupted}
    if mirror:
        batches = [Archive(f.path, f.md5, ()) for f in unpacked("cifar10") if root / f.path in wanted]
        try:
            for batch in batches:
                _download(batch, root, mirror, progress)
            return [root / b.path for b in batches]
        except FetchError as err:
            log(f"{err}; fetching the whole archive instead")
    (tarball,) = archives("cifar10")
    path, downloaded = root / tarball.path, []
    if path.exists() and md5_of(path) != tarball.md5:
        log(f"{path}: checksum mismatch (truncated or damaged), fetching again")
        path.unlink()
    if not path.exists():
        _download(tarball, root, mirror, progress)
        downloaded.append(path)
    extract_archive(str(path), str(root))
    return downloaded


def _gunzip(archive: Path, target: Path) -> None:
    part = target.with_name(target.name + ".part")
    with gzip.open(archive, "rb") as src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
    os.replace(part, target)


def _download(archive: Archive, root: Path, mirror: str | None, progress: bool) -> None:
    """Download ``archive`` into ``root`` from the first address that gives the right bytes."""
    target = root / archive.path
    target.parent.mkdir(parents=True, exist_ok=True)
    urls = (f"{mirror.rstrip('/')}/{archive.path}",) if mirror else archive.urls
    failures = []
    for url in urls:
        try:
            _download_one(url, target, archive.md5, progress)
            return
        except HTTPError as err:
            failures.append(f"{url} (HTTP {err.code} {err.reason})")
        except (URLError, OSError, ValueError) as err:
            failures.append(f"{url} ({getattr(err, 'reason', err)})")
    raise FetchError(f"{target} is missing or damaged and could not be fetched again: tried {'; '.join(failures)}")


def _download_one(url: str, target: Path, md5: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    digest = hashlib.md5()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "lthkit"})
        with urllib.request.urlopen(request, timeout=30) as response, open(part, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch: got MD5 {digest.hexdigest()}, expected {md5}")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _describe(state: Check) -> str:
    parts = [f"missing {p}" for p in state.missing] + [f"corrupted {p}" for p in state.corrupted]
    return "; ".join(parts + [f"differs from its archive {p}" for p in state.stale])
