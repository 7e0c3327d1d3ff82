"""Learners as the course expects them: for each code exercise, the wrong implementations that learners
write (each with the words its verdict must use to name the mistake) and the right-but-unusual ones.

One module per exercise, each with one ``Suite``::

    suite = Suite("02.prune-layer", context=lambda get: {"model": get("trained_lenet")})

    @suite.wrong(r"signed values")
    def signed_threshold(weights, mask, rate): ...

    @suite.right
    def with_topk(weights, mask, rate): ...

``context`` builds the keyword arguments exactly as the notebook's checker cell passes them; ``get``
is pytest's ``request.getfixturevalue`` (``mnist_small``, ``trained_lenet``, ...). ``tests/test_learner_suite.py``
runs every suite: each wrong one refused with its mistake named, each right one passed, no checker raising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Wrong:
    fn: Callable
    mistake: str  # a regular expression (case-insensitive) that the verdict's message must match


@dataclass
class Suite:
    exercise: str
    context: Callable[[Callable[[str], object]], dict] = lambda get: {}
    wrongs: list[Wrong] = field(default_factory=list)
    rights: list[Callable] = field(default_factory=list)

    def wrong(self, mistake: str):
        """Register the decorated function as a wrong implementation whose verdict must match ``mistake``."""
        def register(fn):
            self.wrongs.append(Wrong(fn, mistake))
            return fn
        return register

    def right(self, fn):
        """Register the decorated function as a right implementation: it must pass."""
        self.rights.append(fn)
        return fn
