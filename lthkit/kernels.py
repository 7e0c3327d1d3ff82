"""Notebook kernels on Unix sockets, so that kernels started side by side never meet on a port.

jupyter_client gives a kernel its five TCP ports by binding each to port 0, noting the number and
letting it go; the kernel binds them again a moment later. In between, another process starting a
kernel can be handed the same port, and then one kernel dies or a client waits for a reply that went
elsewhere (nteract/papermill#511, ipython/ipykernel#412). lthkit starts kernels side by side: a sweep's
notebook jobs, the grader, and the test suite under pytest-xdist. With jupyter_client's ``ipc``
transport each socket is a file, named here after a fresh UUID: there is nothing to race for.

jupyter_client's own ``ipc`` default names the files ``kernel-ipc-N`` relative to the current folder,
which breaks when the kernel runs in another folder (papermill's ``cwd``) and collides between two
kernels started in one folder; the name here is absolute and unique. Windows has no Unix sockets, so
there kernels keep TCP.

A client of these kernels also never waits on one long poll: nbclient waits for a cell's reply with a
single ``get_msg`` as long as the cell's time limit, and now and then (cells that display widgets,
jupyter/nbclient#312) it sleeps on past a reply that has arrived, the kernel idle, until that limit.
The channels here poll a second at a time until the same deadline, so a reply that arrived is read.

``python -m lthkit.kernels`` is papermill's command line with these kernels, and ``engine_name="lthkit"``
runs a notebook this way from Python once this module is imported (papermill's entry points would
import lthkit from inside papermill's own import). ``KernelManager`` is the synchronous manager for
tools that start a kernel themselves (nbval).
"""

import os
import sys
import tempfile
import time
import uuid
from queue import Empty

import jupyter_client
from jupyter_client.channels import AsyncZMQSocketChannel
from papermill.engines import NBClientEngine, papermill_engines
from traitlets import DottedObjectName, Type, default

UNIX_SOCKETS = os.name == "posix"


class _UnixSockets:
    """The defaults of jupyter_client's ``ConnectionFileMixin`` that choose where a kernel listens."""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc" if UNIX_SOCKETS else "tcp"

    @default("ip")
    def _ip_default(self) -> str:
        if self.transport != "ipc":
            return super()._ip_default()
        return os.path.join(tempfile.gettempdir(), f"kernel-{uuid.uuid4().hex}")


class KernelManager(_UnixSockets, jupyter_client.KernelManager):
    """jupyter_client's ``KernelManager``, its kernel on Unix sockets of its own."""


class PatientChannel(AsyncZMQSocketChannel):
    """A channel whose ``get_msg(timeout)`` polls a second at a time until ``timeout`` (or forever).

    zmq polls in whole milliseconds, rounded down, so a poll can end just short of the deadline; what is
    left under a millisecond counts as the deadline reached, or the channel would poll it away in polls
    of no time at all."""

    poll_s = 1.0
    resolution_s = 0.001

    async def get_msg(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self.poll_s if deadline is None else deadline - time.monotonic()
            try:
                return await super().get_msg(timeout=min(self.poll_s, max(0.0, left)))
            except Empty:
                if deadline is not None and deadline - time.monotonic() < self.resolution_s:
                    raise


class AsyncKernelClient(jupyter_client.AsyncKernelClient):
    """jupyter_client's ``AsyncKernelClient`` with patient shell and IOPub channels."""

    shell_channel_class = Type(PatientChannel)
    iopub_channel_class = Type(PatientChannel)


class AsyncKernelManager(_UnixSockets, jupyter_client.AsyncKernelManager):
    """jupyter_client's ``AsyncKernelManager`` (the one nbclient uses), its kernel on Unix sockets of its own
    and its client's channels patient."""

    client_class = DottedObjectName("lthkit.kernels.AsyncKernelClient")
    client_factory = Type(AsyncKernelClient, klass=jupyter_client.AsyncKernelClient)


class Engine(NBClientEngine):
    """papermill's nbclient engine, its kernel on Unix sockets: ``engine_name="lthkit"``."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        return super().execute_managed_notebook(nb_man, kernel_name, kernel_manager_class=AsyncKernelManager,
                                                **kwargs)


papermill_engines.register("lthkit", Engine)

if __name__ == "__main__":
    from papermill.cli import papermill

    papermill(["--engine", "lthkit", *sys.argv[1:]])
