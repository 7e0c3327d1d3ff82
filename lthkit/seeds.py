"""One place where every random stream in lthkit gets its seed.

Each stream (a split, a data order, an initialisation, a random mask) is seeded from a
description of what it is for, such as ``("reinit", seed, round)``. No stream depends on
how many random numbers were drawn before it, so a run that resumes halfway draws exactly
what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded from ``parts``."""
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g
