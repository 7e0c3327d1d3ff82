"""lthkit.fetch against a loopback HTTP server holding the real MNIST archives: never the internet."""

import contextlib
import gzip
import hashlib
import pickle
import shutil
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision

from cifar_fixture import write_synthetic_cifar10
from conftest import SHARED
from lthkit.cli import main
from lthkit.catalogue import DATASETS, archives, check, unpacked
from lthkit.data import DataMissingError, load_dataset
from lthkit.fetch import FetchError, fetch

MNIST_ARCHIVES = archives("mnist")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def serve(folder: Path):
    """An HTTP server on 127.0.0.1 serving ``folder``; ``.requests`` lists the paths asked for."""
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", requests=requests)
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port_url() -> str:
    """An address on this machine where nothing listens: what a download sees offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server():
    if not all((SHARED / a.path).is_file() for a in MNIST_ARCHIVES):
        pytest.skip(f"the real MNIST archives are not in {SHARED}")
    with serve(SHARED) as running:
        yield running


@pytest.fixture(scope="module")
def prepared(server, tmp_path_factory):
    """A data folder made by one fresh download of MNIST from the loopback server."""
    root = tmp_path_factory.mktemp("fresh")
    server.requests.clear()
    lines = []
    downloaded = fetch(["mnist"], root, mirror=server.url, progress=False, log=lines.append)
    return SimpleNamespace(root=root, downloaded=downloaded, requests=list(server.requests), lines=lines)


@pytest.fixture
def copy(prepared, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(prepared.root, root)
    return root


def test_sources_are_torchvisions_own_lists():
    assert [a.path for a in MNIST_ARCHIVES] == [f"MNIST/raw/{f}" for f in DATASETS["mnist"].files]
    assert [a.md5 for a in MNIST_ARCHIVES] == [md5 for _, md5 in torchvision.datasets.MNIST.resources]
    assert MNIST_ARCHIVES[0].urls == tuple(m + "train-images-idx3-ubyte.gz" for m in torchvision.datasets.MNIST.mirrors)
    assert archives("fashion-mnist")[0].urls[0].startswith(torchvision.datasets.FashionMNIST.mirrors[0])
    (tarball,) = archives("cifar10")
    assert (tarball.path, tarball.md5) == ("cifar-10-python.tar.gz", torchvision.datasets.CIFAR10.tgz_md5)
    assert [Path(f.path).name for f in unpacked("cifar10")] == list(DATASETS["cifar10"].files)


def test_a_fresh_download_gives_the_published_files(prepared):
    assert sorted(prepared.requests) == sorted(f"/{a.path}" for a in MNIST_ARCHIVES)
    assert prepared.downloaded == [prepared.root / a.path for a in MNIST_ARCHIVES]
    for archive in MNIST_ARCHIVES:
        path = prepared.root / archive.path
        assert md5(path) == archive.md5 == md5(SHARED / archive.path)
        assert path.with_suffix("").read_bytes() == gzip.decompress(path.read_bytes())
    assert not list(prepared.root.rglob("*.part"))
    assert prepared.lines[-1] == f"mnist: fetched and verified in {prepared.root}"


def test_a_second_run_downloads_nothing(prepared, server):
    server.requests.clear()
    lines = []
    assert fetch(["mnist"], prepared.root, mirror=server.url, progress=False, log=lines.append) == []
    assert server.requests == [] and lines == [f"mnist: verified in {prepared.root}"]


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_archive_is_named_and_fetched_again(damage, copy, server):
    victim = copy / "MNIST/raw/t10k-images-idx3-ubyte.gz"
    good = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(good[: len(good) // 2])
    else:
        victim.write_bytes(good[:1000] + bytes([good[1000] ^ 0x01]) + good[1001:])
    victim.with_suffix("").write_bytes(b"unpacked from the damaged archive")
    (copy / "cache").mkdir()
    (copy / "cache" / "mnist.pt").write_bytes(b"tensors read from the damaged archive")
    assert check("mnist", copy).corrupted == [victim]

    server.requests.clear()
    lines = []
    downloaded = fetch(["mnist"], copy, mirror=server.url, progress=False, log=lines.append)
    assert lines[0] == f"{victim}: checksum mismatch (truncated or damaged), fetching again"
    assert server.requests == ["/MNIST/raw/t10k-images-idx3-ubyte.gz"] and downloaded == [victim]
    assert victim.read_bytes() == good
    assert victim.with_suffix("").read_bytes() == gzip.decompress(good)
    assert not (copy / "cache" / "mnist.pt").exists()


def test_the_repaired_folder_loads_offline_as_the_real_mnist(copy, server, mnist):
    victim = copy / "MNIST/raw/train-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-10])
    fetch(["mnist"], copy, mirror=server.url, progress=False, log=lambda line: None)
    again = load_dataset("mnist", root=copy, download=False)
    assert torch.equal(again.train.y, mnist.train.y) and torch.equal(again.test.x, mnist.test.x)


def test_a_damaged_unpacked_file_is_unpacked_again_without_downloading(copy, server):
    unpacked_file = copy / "MNIST/raw/t10k-labels-idx1-ubyte"
    good = unpacked_file.read_bytes()
    unpacked_file.write_bytes(good[:500] + bytes([good[500] ^ 0xFF]) + good[501:])
    assert check("mnist", copy).stale == [unpacked_file]
    server.requests.clear()
    lines = []
    assert fetch(["mnist"], copy, mirror=server.url, progress=False, log=lines.append) == []
    assert lines[0] == f"{unpacked_file}: differs from its archive, unpacking again"
    assert server.requests == [] and unpacked_file.read_bytes() == good


def test_offline_a_missing_file_gives_a_clear_error(copy):
    victim = copy / "MNIST/raw/train-labels-idx1-ubyte.gz"
    victim.unlink()
    unpacked_before = victim.with_suffix("").read_bytes()
    others = {a.path: md5(copy / a.path) for a in MNIST_ARCHIVES if copy / a.path != victim}
    with pytest.raises(FetchError) as err:
        fetch(["mnist"], copy, mirror=closed_port_url(), progress=False, log=lambda line: None)
    message = str(err.value)
    assert isinstance(err.value, DataMissingError)
    assert f"{victim} is missing or damaged and could not be fetched again" in message
    assert "Connection refused" in message and "lthkit data download" in message and "LTHKIT_DATA" in message
    assert victim.with_suffix("").read_bytes() == unpacked_before, "offline, a fetch must not delete what still works"
    assert {path: md5(copy / path) for path in others} == others
    assert not list(copy.rglob("*.part"))


def test_offline_a_corrupted_file_is_never_used(copy):
    victim = copy / "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-1])
    (copy / "cache").mkdir()
    (copy / "cache" / "mnist.pt").write_bytes(b"stale")
    lines = []
    with pytest.raises(FetchError, match="t10k-labels-idx1-ubyte.gz is missing or damaged"):
        fetch(["mnist"], copy, mirror=closed_port_url(), progress=False, log=lines.append)
    assert lines == [f"{victim}: checksum mismatch (truncated or damaged), fetching again"]
    with pytest.raises(DataMissingError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", root=copy, download=False)


def test_a_mirror_serving_wrong_bytes_leaves_no_file(server, tmp_path):
    root = tmp_path / "data"
    (root / "MNIST" / "raw").mkdir(parents=True)
    for archive in MNIST_ARCHIVES[:3]:
        shutil.copyfile(SHARED / archive.path, root / archive.path)
    bad = tmp_path / "mirror" / "MNIST" / "raw"
    bad.mkdir(parents=True)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not the labels"))
    with serve(tmp_path / "mirror") as mirror, pytest.raises(FetchError, match="checksum mismatch: got MD5"):
        fetch(["mnist"], root, mirror=mirror.url, progress=False, log=lambda line: None)
    assert not (root / "MNIST/raw/t10k-labels-idx1-ubyte.gz").exists()
    assert not list(root.rglob("*.part"))


def test_one_dataset_failing_does_not_stop_the_others(server, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED / "MNIST", mirror / "MNIST")
    root = tmp_path / "data"
    with serve(mirror) as mnist_only, pytest.raises(FetchError) as err:
        fetch(["cifar10", "mnist"], root, mirror=mnist_only.url, progress=False, log=lambda line: None)
    assert f"{root / 'cifar-10-python.tar.gz'} is missing or damaged" in str(err.value)
    assert "404" in str(err.value) and str(err.value).count("LTHKIT_DATA") == 1
    assert check("mnist", root).ok


@pytest.fixture
def small_cifar10(tmp_path, monkeypatch):
    """A synthetic CIFAR-10 tarball served from a loopback mirror, with torchvision's MD5 lists
    pointed at it (the real CIFAR-10 cannot be had here)."""
    source = tmp_path / "source"
    folder = write_synthetic_cifar10(source, per_batch=10, test=10)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    cls = torchvision.datasets.CIFAR10
    md5s = {p.name: md5(p) for p in folder.iterdir()}
    monkeypatch.setattr(cls, "tgz_md5", md5(mirror / "cifar-10-python.tar.gz"))
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5s["batches.meta"]})
    with serve(mirror) as running:
        yield running


def test_cifar10_from_its_archive_is_unpacked_verified_and_a_damaged_batch_unpacked_again(small_cifar10, tmp_path):
    """Upstream publishes only the archive: a mirror without batch files falls back to it, and a
    verified archive already on disk is unpacked again rather than downloaded again."""
    root = tmp_path / "data"
    assert fetch(["cifar10"], root, mirror=small_cifar10.url, progress=False, log=lambda line: None) == [
        root / "cifar-10-python.tar.gz"]
    assert check("cifar10", root).ok
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    good = batch.read_bytes()
    batch.write_bytes(good[:-7])
    small_cifar10.requests.clear()
    lines = []
    assert fetch(["cifar10"], root, mirror=small_cifar10.url, progress=False, log=lines.append) == []
    assert lines[0] == f"{batch}: checksum mismatch (truncated or damaged), fetching again"
    assert "fetching the whole archive instead" in lines[1]
    assert small_cifar10.requests == ["/cifar-10-batches-py/data_batch_3"] and batch.read_bytes() == good
    assert pickle.loads(good)["batch_label"] == "training batch 3 of 5"


REAL_CIFAR10 = SHARED / "cifar-10-batches-py"


@pytest.fixture
def real_cifar10(tmp_path):
    """A data folder holding the real CIFAR-10 batch files and no archive, as ../shared does."""
    if not all((SHARED / f.path).is_file() for f in unpacked("cifar10")):
        pytest.skip(f"the real CIFAR-10 batch files are not in {SHARED}")
    root = tmp_path / "data"
    shutil.copytree(REAL_CIFAR10, root / "cifar-10-batches-py")
    return root


def test_real_cifar10_batches_without_the_archive_are_verified_and_nothing_is_downloaded(real_cifar10, server):
    assert not (real_cifar10 / "cifar-10-python.tar.gz").exists()
    assert check("cifar10", real_cifar10).ok
    server.requests.clear()
    lines = []
    assert fetch(["cifar10"], real_cifar10, mirror=server.url, progress=False, log=lines.append) == []
    assert server.requests == [] and lines == [f"cifar10: verified in {real_cifar10}"]
    assert main(["data", "verify", "--root", str(real_cifar10), "--datasets", "cifar10"]) == 0


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_real_cifar10_batch_is_named_and_only_it_fetched_again(damage, real_cifar10, server, capsys):
    """From a mirror laid out as a data root (here ../shared/datasets itself, torchvision's MD5s
    unchanged) only the damaged batch file travels, not the 170 MB archive."""
    victim = real_cifar10 / "cifar-10-batches-py" / "data_batch_2"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 3] if damage == "truncated" else good[:99] + bytes([good[99] ^ 0x10]) + good[100:])
    (real_cifar10 / "cache").mkdir()
    (real_cifar10 / "cache" / "cifar10.pt").write_bytes(b"tensors read from the damaged batch")
    assert main(["data", "verify", "--root", str(real_cifar10), "--datasets", "cifar10"]) == 1
    assert f"{victim}: checksum mismatch (truncated or damaged)" in capsys.readouterr().out

    server.requests.clear()
    lines = []
    downloaded = fetch(["cifar10"], real_cifar10, mirror=server.url, progress=False, log=lines.append)
    assert lines[0] == f"{victim}: checksum mismatch (truncated or damaged), fetching again"
    assert server.requests == ["/cifar-10-batches-py/data_batch_2"] and downloaded == [victim]
    assert victim.read_bytes() == good and md5(victim) == "d4bba439e000b95fd0a9bffe97cbabec"
    assert not (real_cifar10 / "cache" / "cifar10.pt").exists() and check("cifar10", real_cifar10).ok


def test_missing_cifar10_offline_names_the_archive_and_the_way_out(tmp_path):
    assert len(check("cifar10", tmp_path).missing) == 7
    with pytest.raises(FetchError) as err:
        fetch(["cifar10"], tmp_path, mirror=closed_port_url(), progress=False, log=lambda line: None)
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(err.value) and "LTHKIT_DATA" in str(err.value)
