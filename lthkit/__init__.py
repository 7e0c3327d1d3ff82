"""lthkit: the helper package of the Lottery Ticket course.

One module per idea: ``data`` (datasets as tensors), ``models`` (the paper's networks),
``masks`` (masks and pruning rules), ``rewind`` (snapshots, rewinding, tickets), ``train``
(the training loop), ``cores`` (taking turns on the CPU's cores with the other lthkit processes),
``imp`` (iterative magnitude pruning with controls; each run's bookkeeping in ``imp_runs``, the
learner's ``rules``, the run's ``run_records``, ``saved_runs`` read back), ``files`` (atomic writes,
damaged files named), ``results`` (plain data to and from JSON), ``config`` (one checked
configuration), ``stability`` (instability analysis), ``determinism`` (bit-for-bit runs on a GPU),
``cli``.

``lthkit.train`` is the training module, and calling it trains: ``from lthkit import train``
then ``train(model, data, config)`` runs ``lthkit.train.train``.
"""

import inspect
import sys
import types

from lthkit.config import ConfigError, ExperimentConfig, make_config
from lthkit.data import DataMissingError, Splits, load_dataset
from lthkit.determinism import use_deterministic
from lthkit.imp import load_ticket, run_imp
from lthkit.masks import (
    Mask,
    from_torch_prune,
    prune_by_magnitude,
    prune_globally,
    prune_randomly,
    random_mask_like,
    to_torch_prune,
)
from lthkit.models import build_model, count_parameters, prunable_layers
from lthkit.results import ArmResult, CurvePoint, Results, RoundResult
from lthkit.rewind import Snapshot, Ticket, reinitialize, rewind_to
from lthkit.train import TrainConfig, evaluate, resolve_device, train_together


class _CallableModule(types.ModuleType):
    """A module that can be called: ``lthkit.train(...)`` is ``lthkit.train.train(...)``.

    ``train`` is both a submodule and its main function. Binding the function to the package
    would hide the module (``import lthkit.train`` would then give the function, and
    ``lthkit.train.TrainConfig`` would fail), and binding the module would break the notebooks'
    ``from lthkit import train; train(model, data, config)``. The module, made callable, serves both.
    """

    def __call__(self, *args, **kwargs):
        return self.train(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # help and tab completion show the function's
        return inspect.signature(self.train)


train = sys.modules["lthkit.train"]
train.__class__ = _CallableModule

__version__ = "0.1.0"

__all__ = [
    "ArmResult", "ConfigError", "CurvePoint", "DataMissingError", "ExperimentConfig", "Mask", "Results",
    "RoundResult", "Snapshot", "Splits", "Ticket", "TrainConfig", "build_model", "count_parameters",
    "evaluate", "from_torch_prune", "load_dataset", "load_ticket", "make_config", "prunable_layers",
    "prune_by_magnitude", "prune_globally", "prune_randomly", "random_mask_like", "reinitialize",
    "resolve_device", "rewind_to", "run_imp", "to_torch_prune", "train", "train_together", "use_deterministic",
]
