"""Checkers for the code a learner writes: the heart of IMP, by hand.

Notebook 02 has the learner write one layer's magnitude pruning, 03 the rewind and one round
of IMP, 04 the two controls. Each checker runs the learner's function itself, on small
hand-made tensors built to expose one classic mistake each (the mistakes other lottery-ticket
code bases shipped) and on a real LeNet-300-100, and names the first mistake it finds.
Every correct implementation passes: any order among tied magnitudes when the count is
exact, any way that keeps the mask's dtype and shape. ``check("02.prune-layer", prune_layer,
model=model)`` is called like the other exercises.
"""

from lthkit.course.code_exercises import (  # noqa: F401  (importing them registers their exercises)
    at_init,
    controls,
    conv,
    masked_step,
    pruning,
    rewind,
    rewinding,
    shipping,
    sparse,
    supermask,
    transfer,
    transformer,
)
from lthkit.course.code_exercises.common import NOT_WRITTEN, Mistake  # noqa: F401
