"""benchmarks/gpu_checks.sh's dry run: every step of the GPU checks, on the CPU at tiny sizes.

A lent GPU machine gives a task about 15 minutes, so a typo in the script, a wrong option or a
file $OUT cannot return must show up here, in CI, rather than there. The dry run runs the same
parts with the same options as the GPU run (the CUDA tests skip, 2:4 sparsity records why it
cannot run) and must leave in $OUT what a device call returns: at most 8 files, none in a folder.
"""

import json
import os
import subprocess
import sys

import pytest
from cifar_fixture import write_synthetic_cifar10
from test_classroom_tools import REPO, load_tool


def dry_run(tmp_path, **env):
    out = tmp_path / "out"
    done = subprocess.run(["bash", "benchmarks/gpu_checks.sh", "--dry-run"], cwd=REPO, capture_output=True, text=True, check=False,
                          env=os.environ | {"OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
                                            "PACKED": str(tmp_path / "parts"), "STASH": str(tmp_path / "stash"),
                                            "DATA_DEST": str(tmp_path / "data")} | env, timeout=600)
    return done, out, json.loads((out / "checks.json").read_text())


@pytest.mark.usefixtures("mnist")  # the parts read real MNIST
def test_the_dry_run_runs_every_part_and_leaves_what_a_device_call_returns(tmp_path):
    done, out, checks = dry_run(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    parts = checks["parts"]
    assert parts["device"]["dry_run"] == 1 and parts["device"]["gpu"] == "none"
    assert {k: v["outcome"] for k, v in parts.items() if k != "device"} == dict.fromkeys(
        ["data", "tests", "sparse", "stacked", "paper"], "passed")
    assert parts["data"]["report"]["manifest"] is False  # nothing was carried
    assert parts["tests"]["counts"] == {"skipped": 7}  # graph vs eager, captures, kill and resume, determinism
    assert any("cuda_graph_replays" in name for name in parts["tests"]["tests"])
    assert "no CUDA device" in parts["sparse"]["report"]["rows"][0]["refused"]
    stacked = json.loads((out / "stacked-cpu.json").read_text())
    assert list(stacked["rows"]) == ["lenet300 x1", "lenet300 x3"]
    paper = json.loads((out / "paper-lenet-cpu.json").read_text())
    assert paper["engine"] == "stacked" and len(paper["rounds"]) == 1 + 3  # the dense round, then 3 arms
    assert checks["out"]["problems"] == [] and len(checks["out"]["files"]) <= 8
    assert sorted(checks["out"]["files"]) == sorted(p.name for p in out.iterdir())


def test_the_data_part_receives_the_parts_carried_and_checks_them_against_torchvision(tmp_path):
    """Synthetic CIFAR-10 packed as tools/pack_data.py packs it: the parts arrive and join, and the
    batches are refused because they are not torchvision's (the real files' round trip: README)."""
    source = write_synthetic_cifar10(tmp_path / "here", per_batch=10, test=10)
    load_tool("pack_data").pack(source, tmp_path / "parts", part_bytes=50_000, preset=1)
    done, out, checks = dry_run(tmp_path, PARTS="data")
    report = checks["parts"]["data"]["report"]
    assert done.returncode == 1 and checks["parts"]["data"]["outcome"] == "failed"
    assert len(report["arrived"]) >= 2 and not report["missing"] and "torchvision's published" in report["error"]
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()
    assert sorted(p.name for p in out.iterdir()) == ["checks.json", "log.txt"]
