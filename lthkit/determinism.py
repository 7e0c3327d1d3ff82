"""Deterministic mode: the same seed gives the same numbers bit for bit on a CUDA GPU too.

On the CPU, lthkit's training is already reproducible (same machine, same thread count, same
PyTorch). On a GPU two things vary from run to run unless asked not to: some kernels (cuDNN's
fastest convolutions, atomic adds in some backward passes) add their terms in whatever order the
threads finish, and cuBLAS picks its workspace per stream. ``use_deterministic()`` is PyTorch's
documented recipe (https://pytorch.org/docs/stable/notes/randomness.html):

- ``torch.use_deterministic_algorithms(True)``: every operation uses a deterministic
  implementation, and one that has none raises an error instead of silently varying;
- ``torch.backends.cudnn.benchmark = False``: cuDNN does not time and pick a convolution
  algorithm anew in each process;
- ``CUBLAS_WORKSPACE_CONFIG=:4096:8``: the cuBLAS workspace setting CUDA 10.2 and later need for
  deterministic matrix products. cuBLAS reads it when it starts, so it must be set before the
  first matrix product on the GPU; ``lthkit --deterministic`` sets it before anything runs.

It costs some speed on a GPU and nothing on the CPU. It does not make a GPU agree with the CPU,
nor one GPU model with another: they add in different orders (see README, "Same seed, same numbers").
"""

from __future__ import annotations

import os

import torch

CUBLAS_WORKSPACE_CONFIG = ":4096:8"
DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")  # the two settings NVIDIA documents as deterministic


def use_deterministic(enabled: bool = True) -> None:
    """Turn deterministic mode on (or back off) for this process.

    Turning it on sets ``CUBLAS_WORKSPACE_CONFIG`` unless it already holds one of the
    deterministic settings; turning it off leaves the environment alone.
    """
    if enabled and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in DETERMINISTIC_CUBLAS:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = False if enabled else torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic = enabled


def is_deterministic() -> bool:
    """Whether deterministic mode is on: deterministic algorithms and a deterministic cuBLAS workspace."""
    return (torch.are_deterministic_algorithms_enabled()
            and os.environ.get("CUBLAS_WORKSPACE_CONFIG") in DETERMINISTIC_CUBLAS)
