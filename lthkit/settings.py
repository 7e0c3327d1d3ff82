"""What a setting is, beside its field: the check it passes and its command-line option.

``TrainConfig`` and ``ExperimentConfig`` call the checks from ``__post_init__``, so a
configuration is checked once, where it is made, whoever makes it (``make_config``, the command
line, a notebook, a test), each check with a message that says what to give instead. A field
that the command line sets carries its ``option`` in its metadata; ``lthkit.cli`` makes the
options from the fields, so an option cannot drift from the setting it sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """A field's command-line option: ``--name-with-hyphens`` unless ``flag`` says otherwise;
    ``parse`` reads its text (else the field's type); ``imp_only``: not an option of
    ``lthkit train``; options of one ``group`` exclude each other."""

    help: str
    flag: str | None = None
    parse: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    imp_only: bool = False
    group: str | None = None


def option(help: str, **details) -> dict:
    """A field's metadata: ``field(default=..., metadata=option("what it does (default: ...)"))``."""
    return {"option": Option(help, **details)}


class ConfigError(ValueError):
    """A setting that cannot work; the message says what to give instead."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole(name: str, value: object, minimum: int | None = 1, *, what: str = "") -> int:
    """A whole number, ``minimum`` or more (any, with None; ``what`` names the unit in the message)."""
    if not _is_int(value) or (minimum is not None and value < minimum):
        kind = ("a positive whole number" if minimum == 1 else f"a whole number{what}" if minimum is None
                else f"a whole number{what}, {minimum} or more")
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return value


def number(name: str, value: object, *, positive: bool = False) -> float:
    """A finite number: positive, or 0 or more."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) or math.isinf(value) \
            or value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'a positive number' if positive else 'a number, 0 or more'}, got {value!r}")
    return float(value)


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


def choice(name: str, value: object, choices: Collection[str]) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    return value
