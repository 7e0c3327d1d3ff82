"""CIFAR-10 onto a lent GPU machine, in parts that each fit one device call.

    .venv/bin/python tools/pack_data.py pack     # here: parts, manifest and the carry list of each call
    python3 tools/pack_data.py join               # there, in every call: keeps the parts that arrived, and
                                                  # once all have, joins, verifies and unpacks them

Why: a device call carries the working tree and the paths named in ``carry``, 64 MiB in all, and
CIFAR-10's batch files are 178 MiB. ``pack`` writes them as one deterministic tar, compressed
with xz (133 MiB: the pickled images compress by a quarter, which saves a call against gzip's
tenth), split by bytes into parts sized from the tree that travels today, with an MD5 per part,
for the whole stream and for each batch file (``manifest.json``). It copies MNIST's four archives
into ``.gpu-data/MNIST/raw`` (what ``benchmarks/gpu_checks.sh`` copies into ``data/`` there) and
prints, per call, the paths to carry and their size. Both folders are git-ignored: they travel only
when named in ``carry``.

On the device, the ignored files already there are kept between calls while the machine is warm,
so the parts arrive one call at a time. ``join`` checks each part that has arrived against its MD5
and moves it to ``build/gpu-data-parts`` (out of the carried folder's way); once all are there it
streams them through one MD5 of the whole, xz and tar into a scratch folder, checks each file
against the manifest and each batch against torchvision's published MD5
(``lthkit.catalogue.unpacked``), and only then moves them into ``data/cifar-10-batches-py``. It
prints and writes (``--json``) what arrived, what is missing and what was verified; it exits 1 on
any MD5 that differs (the bad part is deleted, so carrying it again repairs it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDER = "cifar-10-batches-py"
STREAM = "cifar10.tar.xz"
MIB = 2**20
MNIST = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]


class JoinError(RuntimeError):
    """A part, the whole stream or an unpacked file whose MD5 is not the one it should have."""


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


class PartWriter(io.RawIOBase):
    """A file that writes itself as consecutive parts of ``part_bytes`` bytes, hashing each part
    and the whole as the bytes go by (the stream is never held whole, in memory or on disk)."""

    def __init__(self, folder: Path, part_bytes: int):
        self.folder, self.part_bytes = folder, part_bytes
        self.whole, self.parts, self.size = hashlib.md5(), [], 0
        self.file = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while view:
            if self.file is None or self.parts[-1]["bytes"] == self.part_bytes:
                self._next_part()
            room = self.part_bytes - self.parts[-1]["bytes"]
            chunk = view[:room]
            self.file.write(chunk)
            self.digest.update(chunk)
            self.whole.update(chunk)
            self.parts[-1]["bytes"] += len(chunk)
            self.size += len(chunk)
            view = view[room:]
        return len(data)

    def _next_part(self) -> None:
        self._close_part()
        name = f"{STREAM}.{len(self.parts):03d}"
        self.file, self.digest = open(self.folder / name, "wb"), hashlib.md5()  # noqa: SIM115 (closed in _close_part)
        self.parts.append({"name": name, "bytes": 0})

    def _close_part(self) -> None:
        if self.file is not None:
            self.file.close()
            self.parts[-1]["md5"] = self.digest.hexdigest()
            self.file = None

    def close(self) -> None:
        self._close_part()
        super().close()


def travelling_bytes(repo: Path) -> int:
    """What a device call sends besides ``carry``: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / os.fsdecode(p)).lstat().st_size for p in listed if p and (repo / os.fsdecode(p)).exists())


def pack(source: Path, parts: Path, part_bytes: int, preset: int = 6) -> dict:
    """The files of ``source`` (a ``cifar-10-batches-py`` folder) as a tar.xz split into ``parts``."""
    if parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    files = sorted(p for p in source.iterdir() if p.is_file())
    writer = PartWriter(parts, part_bytes)
    with lzma.LZMAFile(writer, "w", preset=preset) as xz, tarfile.open(fileobj=xz, mode="w",
                                                                       format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(f"{FOLDER}/{path.name}")  # no owner, no time: the same bytes every time
            info.size, info.mode = path.stat().st_size, 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    writer.close()
    manifest = {"folder": FOLDER, "stream": STREAM, "format": "tar.xz",
                "whole": {"bytes": writer.size, "md5": writer.whole.hexdigest()}, "parts": writer.parts,
                "files": {p.name: {"bytes": p.stat().st_size, "md5": md5_file(p)} for p in files}}
    (parts / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def plan_calls(manifest: dict, parts: Path, mnist: Path | None, tree: int) -> list[dict]:
    """One device call per part, each carrying the manifest; MNIST rides with the smallest part
    (the last), first, since the checks that need no CIFAR-10 run while the rest arrive."""
    manifest_path = str(parts / "manifest.json")
    mnist_bytes = sum(p.stat().st_size for p in mnist.iterdir()) if mnist else 0
    calls = []
    for part in sorted(manifest["parts"], key=lambda p: p["bytes"]):
        carry = [manifest_path, str(parts / part["name"])]
        size = tree + part["bytes"] + (parts / "manifest.json").stat().st_size
        if mnist and not calls:
            carry.insert(0, str(mnist.parent.parent))
            size += mnist_bytes
        calls.append({"carry": carry, "bytes": size})
    return calls


def published_md5s() -> dict[str, str]:
    """torchvision's MD5 of each CIFAR-10 batch file (``lthkit.catalogue``, which reads them from
    torchvision's ``CIFAR10`` class), by file name."""
    sys.path.insert(0, str(REPO))
    from lthkit.catalogue import unpacked

    return {Path(f.path).name: f.md5 for f in unpacked("cifar10") if f.md5}


def receive(parts: Path, stash: Path) -> dict:
    """Move each part that arrived in ``parts`` and matches its MD5 into ``stash``; delete a bad one."""
    manifest_file = next((f for f in (parts / "manifest.json", stash / "manifest.json") if f.exists()), None)
    if manifest_file is None:
        return {"manifest": False}
    manifest = json.loads(manifest_file.read_text())
    stash.mkdir(parents=True, exist_ok=True)
    if manifest_file.parent != stash:
        shutil.copyfile(manifest_file, stash / "manifest.json")
    report = {"manifest": True, "arrived": [], "kept": [], "missing": [], "corrupted": []}
    for part in manifest["parts"]:
        name, there = part["name"], parts / part["name"]
        if there.exists():
            if md5_file(there) != part["md5"]:
                there.unlink()
                report["corrupted"].append(name)
                continue
            shutil.move(there, stash / name)
            report["arrived"].append(name)
        elif (stash / name).exists() and (stash / name).stat().st_size == part["bytes"]:
            report["kept"].append(name)
        else:
            report["missing"].append(name)
    return report | {"manifest_data": manifest}


class _Joined(io.RawIOBase):
    """The stashed parts read as one stream, hashed as it is read."""

    def __init__(self, paths: list[Path]):
        self.paths, self.file, self.digest = list(paths), None, hashlib.md5()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self.file is None:
                if not self.paths:
                    return 0
                self.file = open(self.paths.pop(0), "rb")  # noqa: SIM115 (closed at its end)
            n = self.file.readinto(buffer)
            if n:
                self.digest.update(memoryview(buffer)[:n])
                return n
            self.file.close()
            self.file = None


def unpack(manifest: dict, stash: Path, dest: Path, published: dict[str, str]) -> dict[str, str]:
    """Join the stashed parts, verify every MD5 and move the files into ``dest/<folder>``."""
    scratch = dest / f".{manifest['folder']}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    joined = _Joined([stash / p["name"] for p in manifest["parts"]])
    with lzma.LZMAFile(io.BufferedReader(joined, MIB), "r") as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
        for member in tar:
            folder, _, name = member.name.partition("/")
            if not member.isfile() or folder != manifest["folder"] or name not in manifest["files"]:
                raise JoinError(f"unexpected member in the stream: {member.name}")
            with tar.extractfile(member) as src, open(scratch / name, "wb") as out:
                shutil.copyfileobj(src, out, MIB)
        while xz.read(MIB):  # to the end, so that the whole stream's MD5 covers every byte
            pass
    while joined.readinto(bytearray(MIB)):
        pass
    if joined.digest.hexdigest() != manifest["whole"]["md5"]:
        raise JoinError(f"the joined stream's MD5 {joined.digest.hexdigest()} is not {manifest['whole']['md5']}")
    verified = {}
    for name, want in manifest["files"].items():
        got = md5_file(scratch / name) if (scratch / name).exists() else None
        if got != want["md5"]:
            raise JoinError(f"{name}: MD5 {got} is not the manifest's {want['md5']}")
        if name in published and published[name] != got:
            raise JoinError(f"{name}: MD5 {got} is not torchvision's published {published[name]}")
        verified[name] = "torchvision" if name in published else "manifest"
    if missing := set(published) - set(manifest["files"]):
        raise JoinError(f"torchvision's files missing from the stream: {sorted(missing)}")
    target = dest / manifest["folder"]
    target.mkdir(parents=True, exist_ok=True)
    for name in manifest["files"]:
        os.replace(scratch / name, target / name)
    scratch.rmdir()
    return verified


def join(parts: Path, stash: Path, dest: Path, published: dict[str, str] | None = None) -> dict:
    """Receive what arrived; once every part is here, unpack it. Returns the report (JSON-ready)."""
    start = time.perf_counter()
    report = receive(parts, stash)
    manifest = report.pop("manifest_data", None)
    report["joined"] = False
    target = dest / manifest["folder"] if manifest else None
    if manifest and all((target / n).exists() and md5_file(target / n) == f["md5"] for n, f in manifest["files"].items()):
        report |= {"joined": True, "already": True, "folder": str(target)}  # unpacked in an earlier call
    elif manifest and not report["missing"] and not report["corrupted"]:
        try:
            report["verified"] = unpack(manifest, stash, dest, published_md5s() if published is None else published)
            report["joined"] = True
            report["folder"] = str(dest / manifest["folder"])
        except JoinError as err:
            report["error"] = str(err)
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: write the parts, the manifest and each call's carry list")
    p.add_argument("--source", type=Path, default=REPO / "data" / FOLDER)
    p.add_argument("--mnist", type=Path, default=REPO / "data" / "MNIST" / "raw",
                   help="MNIST's raw folder: its four .gz go to .gpu-data/MNIST/raw with the first call")
    p.add_argument("--no-mnist", action="store_true", help="leave MNIST out")
    p.add_argument("--parts", type=Path, default=Path(".gpu-data-parts"))
    p.add_argument("--budget-mib", type=float, default=64, help="what one call carries, tree included")
    p.add_argument("--margin-mib", type=float, default=4, help="left free in each call for the tree to grow")
    p.add_argument("--part-mib", type=float, help="part size (default: budget - tree - margin)")
    p.add_argument("--preset", type=int, default=6, help="xz preset (default: 6)")
    j = sub.add_parser("join", help="there: keep the parts that arrived; join, verify and unpack once all have")
    j.add_argument("--parts", type=Path, default=Path(".gpu-data-parts"))
    j.add_argument("--stash", type=Path, default=Path("build/gpu-data-parts"))
    j.add_argument("--dest", type=Path, default=Path("data"))
    j.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    if args.command == "join":
        report = join(args.parts, args.stash, args.dest)
        text = json.dumps(report, indent=1)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        return 1 if report.get("corrupted") or report.get("error") else 0
    start = time.perf_counter()
    tree = travelling_bytes(REPO)
    part_bytes = int((args.part_mib or args.budget_mib - tree / MIB - args.margin_mib) * MIB)
    manifest = pack(args.source, args.parts, part_bytes, args.preset)
    mnist = None
    if not args.no_mnist:
        mnist = Path(".gpu-data/MNIST/raw")
        shutil.rmtree(mnist, ignore_errors=True)
        mnist.mkdir(parents=True)
        for name in MNIST:
            shutil.copyfile(args.mnist / name, mnist / name)
    calls = plan_calls(manifest, args.parts, mnist, tree)
    print(f"{len(manifest['files'])} files, {sum(f['bytes'] for f in manifest['files'].values()) / MIB:.1f} MiB, "
          f"packed to {manifest['whole']['bytes'] / MIB:.1f} MiB in {len(manifest['parts'])} parts of at most "
          f"{part_bytes / MIB:.1f} MiB ({time.perf_counter() - start:.0f} s); the tree travels {tree / MIB:.1f} MiB")
    for i, call in enumerate(calls, 1):
        print(f"call {i}: {call['bytes'] / MIB:5.1f} MiB  carry={json.dumps(call['carry'])}")
    over = [c for c in calls if c["bytes"] > args.budget_mib * MIB]
    if over:
        print(f"{len(over)} calls exceed {args.budget_mib} MiB: pack with a smaller --part-mib", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
