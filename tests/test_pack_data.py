"""tools/pack_data.py: CIFAR-10 packed into parts here, joined and verified on the device.

A tiny synthetic CIFAR-10 (tests/cifar_fixture.py) stands in for the real 178 MiB, with parts of
a few kilobytes, so the whole round trip runs in a second; the real files were packed and joined
by hand (README, "Many networks in one step"). The parts arrive one call at a time, as they do on
a warm device machine.
"""

import json
import shutil
import subprocess
import sys

import pytest
from cifar_fixture import write_synthetic_cifar10
from test_classroom_tools import REPO, load_tool

pack_data = load_tool("pack_data")


@pytest.fixture
def packed(tmp_path):
    source = write_synthetic_cifar10(tmp_path / "here", per_batch=40, test=30)
    (source / "readme.html").write_text("<meta>\n")
    manifest = pack_data.pack(source, tmp_path / "parts", part_bytes=20_000, preset=1)
    return source, manifest, tmp_path


def published(source):
    """MD5s standing in for torchvision's (the synthetic batches are not the published ones)."""
    return {p.name: pack_data.md5_file(p) for p in source.iterdir() if p.name != "readme.html"}


def arrive(parts, outbox, names):
    """One device call: the manifest and the named parts carried into the ``parts`` folder there."""
    outbox.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(parts / "manifest.json", outbox / "manifest.json")
    for name in names:
        shutil.copyfile(parts / name, outbox / name)


def test_parts_arrive_one_call_at_a_time_and_join_to_the_same_files(packed):
    source, manifest, tmp = packed
    names = [p["name"] for p in manifest["parts"]]
    assert len(names) >= 3 and all(p["bytes"] <= 20_000 for p in manifest["parts"])
    assert sum(p["bytes"] for p in manifest["parts"]) == manifest["whole"]["bytes"]
    assert all(pack_data.md5_file(tmp / "parts" / p["name"]) == p["md5"] for p in manifest["parts"])
    device, known = tmp / "device", published(source)
    for i, name in enumerate(reversed(names)):  # any order
        arrive(tmp / "parts", device / ".gpu-data-parts", [name])
        report = pack_data.join(device / ".gpu-data-parts", device / "stash", device / "data", known)
        assert report["arrived"] == [name] and len(report["kept"]) == i
        assert report["joined"] == (i == len(names) - 1) and not report["corrupted"]
    assert set(report["verified"].values()) == {"torchvision", "manifest"}  # readme.html: the manifest's MD5 only
    for path in source.iterdir():
        assert (device / "data" / "cifar-10-batches-py" / path.name).read_bytes() == path.read_bytes()
    assert not (device / "data" / ".cifar-10-batches-py.partial").exists()
    again = pack_data.join(device / ".gpu-data-parts", device / "stash", device / "data", known)
    assert again["joined"] and again["already"]  # a later call finds it unpacked


def test_packing_is_deterministic(packed, tmp_path):
    source, manifest, _ = packed
    again = pack_data.pack(source, tmp_path / "again", part_bytes=20_000, preset=1)
    assert again == manifest


def test_a_corrupted_part_is_deleted_and_carried_again(packed):
    source, manifest, tmp = packed
    names = [p["name"] for p in manifest["parts"]]
    device = tmp / "device"
    arrive(tmp / "parts", device / ".gpu-data-parts", names)
    bad = device / ".gpu-data-parts" / names[1]
    bad.write_bytes(bad.read_bytes()[:-1] + b"\0")
    report = pack_data.join(device / ".gpu-data-parts", device / "stash", device / "data", published(source))
    assert report["corrupted"] == [names[1]] and not report["joined"] and not bad.exists()
    arrive(tmp / "parts", device / ".gpu-data-parts", [names[1]])
    assert pack_data.join(device / ".gpu-data-parts", device / "stash", device / "data", published(source))["joined"]


def test_a_batch_that_is_not_torchvisions_is_refused_and_nothing_is_unpacked(packed):
    source, manifest, tmp = packed
    device = tmp / "device"
    arrive(tmp / "parts", device / ".gpu-data-parts", [p["name"] for p in manifest["parts"]])
    wrong = published(source) | {"data_batch_3": "0" * 32}
    report = pack_data.join(device / ".gpu-data-parts", device / "stash", device / "data", wrong)
    assert not report["joined"] and "data_batch_3" in report["error"] and "torchvision" in report["error"]
    assert not (device / "data" / "cifar-10-batches-py").exists()


def test_the_command_line_prints_each_calls_carry_list_and_joins(tmp_path):
    """``pack`` from the command line (sized from a budget), then ``join`` as the device runs it; the
    join checks the real torchvision MD5s, which the synthetic batches fail, and says so."""
    source = write_synthetic_cifar10(tmp_path / "small", per_batch=10, test=10)
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in pack_data.MNIST:
        (mnist / name).write_bytes(b"x" * 100)
    work = tmp_path / "work"
    work.mkdir()
    tree = pack_data.travelling_bytes(REPO) / pack_data.MIB
    done = subprocess.run([sys.executable, str(REPO / "tools" / "pack_data.py"), "pack", "--source", str(source),
                           "--mnist", str(mnist), "--budget-mib", str(tree + 0.06), "--margin-mib", "0.01",
                           "--preset", "1"], cwd=work, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line.split("carry=")[1]) for line in done.stdout.splitlines() if line.startswith("call ")]
    manifest = json.loads((work / ".gpu-data-parts" / "manifest.json").read_text())
    assert len(calls) == len(manifest["parts"]) > 1 and calls[0][0] == ".gpu-data"
    assert sorted(c[-1] for c in calls) == sorted(f".gpu-data-parts/{p['name']}" for p in manifest["parts"])
    assert all(c[-2] == ".gpu-data-parts/manifest.json" for c in calls)
    assert sorted(p.name for p in (work / ".gpu-data" / "MNIST" / "raw").iterdir()) == sorted(pack_data.MNIST)
    joined = subprocess.run([sys.executable, str(REPO / "tools" / "pack_data.py"), "join", "--json", "report.json"],
                            cwd=work, capture_output=True, text=True, check=False)
    report = json.loads((work / "report.json").read_text())
    assert joined.returncode == 1 and "torchvision's published" in report["error"]
    assert len(report["arrived"]) == len(calls) and not (work / "data" / "cifar-10-batches-py").exists()
