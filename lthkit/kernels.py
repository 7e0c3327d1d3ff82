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

``python -m lthkit.kernels`` is papermill's command line with these kernels, and ``engine_name="lthkit"``
runs a notebook this way from Python once this module is imported (papermill's entry points would
import lthkit from inside papermill's own import). ``KernelManager`` is the synchronous manager for
tools that start a kernel themselves (nbval).
"""

import os
import sys
import tempfile
import uuid

import jupyter_client
from papermill.engines import NBClientEngine, papermill_engines
from traitlets import default

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


class AsyncKernelManager(_UnixSockets, jupyter_client.AsyncKernelManager):
    """jupyter_client's ``AsyncKernelManager`` (the one nbclient uses), its kernel on Unix sockets of its own."""


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
