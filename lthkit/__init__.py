"""lthkit: the helper package of the Lottery Ticket course.

One module per idea: ``data`` (datasets as tensors), ``models`` (the paper's networks),
``masks`` (masks and pruning rules), ``rewind`` (snapshots, rewinding, tickets), ``train``
(the training loop), ``imp`` (iterative magnitude pruning with controls), ``results``
(plain data to and from JSON), ``config`` (one checked configuration), ``cli``.
"""

from lthkit.config import ConfigError, ExperimentConfig, make_config
from lthkit.data import DataMissingError, Splits, load_dataset
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
from lthkit.train import TrainConfig, evaluate, resolve_device, train, train_together

__version__ = "0.1.0"

__all__ = [
    "ArmResult", "ConfigError", "CurvePoint", "DataMissingError", "ExperimentConfig", "Mask", "Results",
    "RoundResult", "Snapshot", "Splits", "Ticket", "TrainConfig", "build_model", "count_parameters",
    "evaluate", "from_torch_prune", "load_dataset", "load_ticket", "make_config", "prunable_layers",
    "prune_by_magnitude", "prune_globally", "prune_randomly", "random_mask_like", "reinitialize",
    "resolve_device", "rewind_to", "run_imp", "to_torch_prune", "train", "train_together",
]
