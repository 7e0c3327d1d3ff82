"""Kernels on Unix sockets (lthkit.kernels): what papermill's ``lthkit`` engine and the test suite's nbval start."""

import json
import os
from pathlib import Path

import nbformat
import papermill
import pytest

from lthkit import kernels

pytestmark = pytest.mark.skipif(not kernels.UNIX_SOCKETS, reason="no Unix sockets here: kernels keep TCP")

WHERE_AM_I = """import json, os
from ipykernel import get_connection_info
info = get_connection_info(unpack=True)
print(json.dumps({"transport": info["transport"], "ip": info["ip"], "cwd": os.getcwd()}))"""


def kernel_report(tmp_path: Path, name: str) -> dict:
    """Run a one-cell notebook through ``papermill --engine lthkit`` in a folder of its own, as a sweep's job
    runs, and return where its kernel listened."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(WHERE_AM_I)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / f"{name}.ipynb")
    (tmp_path / name).mkdir()
    ran = papermill.execute_notebook(str(tmp_path / f"{name}.ipynb"), str(tmp_path / f"ran_{name}.ipynb"),
                                     cwd=str(tmp_path / name), engine_name="lthkit", progress_bar=False)
    return json.loads(ran.cells[0].outputs[0]["text"])


def test_papermills_lthkit_engine_runs_the_kernel_on_sockets_of_its_own_in_another_folder(tmp_path):
    first, second = kernel_report(tmp_path, "a"), kernel_report(tmp_path, "b")
    assert first["transport"] == second["transport"] == "ipc"
    assert first["cwd"] == str(tmp_path / "a"), "the kernel ran where papermill was told"
    assert os.path.isabs(first["ip"]) and os.path.isabs(second["ip"]), "a relative socket path depends on the folder"
    assert first["ip"] != second["ip"]
    assert not list(Path(first["ip"]).parent.glob(Path(first["ip"]).name + "-*")), "sockets left behind"


def test_two_kernel_managers_started_together_listen_on_files_that_differ_and_are_removed():
    managers = [kernels.KernelManager(kernel_name="python3") for _ in range(2)]
    for km in managers:
        km.start_kernel()
    try:
        for km in managers:
            client = km.client()
            client.start_channels()
            client.wait_for_ready(timeout=60)
            client.stop_channels()
        sockets = [sorted(Path(km.ip).parent.glob(Path(km.ip).name + "-*")) for km in managers]
        assert all(km.transport == "ipc" for km in managers)
        assert [len(s) for s in sockets] == [5, 5], "shell, iopub, stdin, control and heartbeat"
        assert not set(sockets[0]) & set(sockets[1])
    finally:
        for km in managers:
            km.shutdown_kernel(now=True)
    assert not [s for km in managers for s in Path(km.ip).parent.glob(Path(km.ip).name + "-*")], "sockets left behind"


def test_a_papermill_kernels_client_polls_its_channels_a_second_at_a_time_until_the_deadline(monkeypatch):
    """nbclient waits for a reply with one long get_msg that can sleep past a reply already there
    (jupyter/nbclient#312); the channels here poll every second, find a reply, and give up at the deadline."""
    import asyncio
    import time
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    polls = []
    one_poll = AsyncZMQSocketChannel.get_msg

    async def counted(self, timeout=None):
        polls.append(timeout)
        return await one_poll(self, timeout=timeout)

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", counted)

    async def exercise():
        km = kernels.AsyncKernelManager(kernel_name="python3")
        await km.start_kernel()
        client = km.client()
        try:
            assert isinstance(client, kernels.AsyncKernelClient)
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            assert isinstance(client.shell_channel, kernels.PatientChannel)
            assert isinstance(client.iopub_channel, kernels.PatientChannel)
            msg_id = client.kernel_info()
            reply = await client.shell_channel.get_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == msg_id
            start, before = time.monotonic(), len(polls)
            with pytest.raises(Empty):
                await client.shell_channel.get_msg(timeout=2.5)
            assert 2.4 <= time.monotonic() - start < 4
            waits = polls[before:]
            assert max(waits) <= 1.0, f"a poll a second, none longer: {waits}"
            assert min(waits) >= kernels.PatientChannel.resolution_s, f"polled a remainder away: {waits}"
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    asyncio.run(exercise())


@pytest.mark.parametrize("spurious_wakes", [0, 1])
def test_a_patient_channel_polls_a_second_at_a_time_to_the_deadline_as_zmq_polls(monkeypatch, spurious_wakes):
    """zmq polls in whole milliseconds, rounded down, and its asyncio poll can wake with nothing to read
    (its socket's file descriptor signals any change): what CI saw as a fourth poll. On a clock that moves
    as zmq sleeps and a tenth of a millisecond a call, the channel polls a second at a time, again after a
    spurious wake, and stops at the deadline instead of polling a remainder away in polls of no time."""
    import asyncio
    from types import SimpleNamespace
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    clock, polls = [7654.321], []

    async def as_zmq_polls(self, timeout=None):
        polls.append(timeout)
        if len(polls) > 50:
            raise AssertionError(f"polled a remainder away: {polls[:6]} ...")
        clock[0] += 0.0001
        if len(polls) > spurious_wakes:
            clock[0] += int(timeout * 1000) / 1000
        raise Empty

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", as_zmq_polls)
    monkeypatch.setattr(kernels, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    start, channel = clock[0], object.__new__(kernels.PatientChannel)

    async def wait():
        with pytest.raises(Empty):
            await channel.get_msg(timeout=2.5)

    asyncio.run(wait())
    assert clock[0] - start > 2.5 - kernels.PatientChannel.resolution_s
    assert max(polls) <= 1.0, "a poll a second, none longer"
    assert len(polls) == 3 + spurious_wakes, polls
