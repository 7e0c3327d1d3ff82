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
from pathlib import Path
from urllib.error import HTTPError, URLError

from lthkit.catalogue import CHUNK, DATASETS, Archive, Check, archives, check, data_root, md5_of, unpacked
from lthkit.data import DataMissingError

OFFLINE_ADVICE = (
    "\nWithout internet here, copy a folder prepared with 'lthkit data download' on a machine that is online "
    "(a USB stick, a shared folder) into {root}, or set LTHKIT_DATA to that folder."
)


class FetchError(DataMissingError):
    """A file the course needs is missing or damaged and could not be fetched again."""


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
            with tqdm(total=size, unit="B", unit_scale=True, desc=target.name, disable=None if progress else True) as bar:
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
