"""Every file lthkit writes, written whole or not at all; every file it reads, named when it is damaged.

A run is killed at any instant (a learner interrupts a cell, a laptop sleeps, a cluster's time
limit runs out), and a re-export or a second ``sweep collect`` overwrites a good file. So each
write goes into a temporary file beside its target, is flushed to disk, then renamed over the
target with ``os.replace``, which is atomic: a reader sees the old file or the new one, never
half of one. Temporary names start with a dot and end in ``.tmp`` (``RunFolder`` removes the ones
a killed run left).

Reading goes the other way: a truncated ``results.json`` or a damaged ``round_01.pt`` raises
``DamagedFile``, which names the file and says what to do, instead of the parser's own words.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from lthkit.settings import ConfigError

_names = itertools.count()


class DamagedFile(ConfigError):
    """A file lthkit wrote that cannot be read back: truncated, or not what it should be."""

    def __init__(self, path: Path, detail: str, what: str):
        super().__init__(f"{path} is damaged ({detail}): it is not {what}, or was cut short. Restore it, "
                         f"or run again what wrote it")
        self.path, self.detail = path, detail


def _open_new(path: Path) -> BinaryIO:
    """The temporary file's handle (a seam for tests that tear a write half-way)."""
    return open(path, "xb")


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary file is flushed to disk before the rename, so even a power cut leaves the old
    file or the new one. If ``write`` fails, the temporary file is removed and ``path`` is
    untouched. An ``OSError`` names ``path`` (not the temporary file), which is what a user chose.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_names)}.tmp")
    try:
        with _open_new(tmp) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename in (str(tmp), tmp):
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    sync_folder(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomically(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, data: object) -> Path:
    """``data`` as indented JSON with a final newline: the format of every JSON file a run writes."""
    return write_text(path, json.dumps(data, indent=1) + "\n")


def save_torch(path: str | os.PathLike, obj: object) -> Path:
    """``torch.save(obj)``, atomically."""
    import torch

    return write_atomically(path, lambda f: torch.save(obj, f))


def save_figure(figure, path: str | os.PathLike, **options) -> Path:
    """A matplotlib figure, rendered in memory first (its format from ``path``'s suffix)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **options)
    return write_bytes(path, buffer.getvalue())


def read_json(path: str | os.PathLike):
    """The JSON in ``path``; ``DamagedFile`` naming it when it is truncated or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedFile(path, str(err), "the JSON lthkit wrote") from None


TORCH_DAMAGE = (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, KeyError)
"""What ``torch.load`` raises for a truncated or foreign file (its zip reader's words, mostly)."""


def load_torch(path: str | os.PathLike, *, map_location=None):
    """``torch.load`` of a file lthkit wrote; ``DamagedFile`` naming it when it cannot be read."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, weights_only=True, map_location=map_location)
    except TORCH_DAMAGE as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise DamagedFile(path, detail, "a file lthkit wrote") from None


def sync_folder(folder: Path) -> None:
    """Flush a rename itself to disk (POSIX; Windows cannot open a folder, and needs not)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
