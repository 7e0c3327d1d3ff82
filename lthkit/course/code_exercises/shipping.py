"""Notebook 10's code exercises: a pruned layer stored compactly."""

from __future__ import annotations

import math

import torch

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.seeds import generator


def to_bitmask_reference(weight: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lthkit's bitmask form (``lthkit.export.bitmask_layer``) with the notebook's signature."""
    from lthkit.export import bitmask_layer

    stored = bitmask_layer(weight.detach().cpu(), mask.detach().cpu().bool())
    return stored["bits"], stored["values"]


def _check_pair(out) -> tuple[torch.Tensor, torch.Tensor]:
    """Two tensors, in the order (bits, values)."""
    import numpy as np

    if out is None:
        raise Mistake("your function returned None: return the pair (bits, values)")
    if isinstance(out, tuple) and len(out) == 2 and any(isinstance(t, np.ndarray) for t in out):
        raise Mistake("return torch tensors, not numpy arrays: wrap np.packbits's bytes in torch.from_numpy")
    if isinstance(out, list) and len(out) == 2:
        raise Mistake("return a tuple of two tensors, (bits, values), not a list")
    if isinstance(out, tuple) and len(out) == 2 and not all(isinstance(t, torch.Tensor) for t in out):
        raise Mistake(f"return two tensors, (bits, values), not ({type(out[0]).__name__}, {type(out[1]).__name__}): "
                      "torch.from_numpy turns numpy's bytes into one")
    if isinstance(out, (tuple, list)) and len(out) != 2:
        raise Mistake(f"return exactly two tensors, (bits, values), not {len(out)} things: the shape is the "
                      "layer's own")
    if not isinstance(out, tuple):
        raise Mistake(f"return two tensors, (bits, values), not {type(out).__name__}")
    first, second = out
    if first.is_floating_point() and not second.is_floating_point():
        raise Mistake("you returned (values, bits): return them in the order (bits, values)")
    return first, second


def _bitmask_case(fn, weight: torch.Tensor, keep: torch.Tensor) -> None:
    import numpy as np

    from lthkit.export import bitmask_layer

    given = weight.clone(), keep.clone()
    out = _run(fn, *given)
    if not (torch.equal(given[0], weight) and torch.equal(given[1], keep)):
        raise Mistake("you changed a tensor you were given in place: leave the weight and the mask as they are")
    n, kept = weight.numel(), int(keep.sum())
    bits, values = _check_pair(out)
    right = bitmask_layer(weight, keep)
    flat = keep.flatten().numpy()
    if bits.dim() != 1:
        if bits.dim() == 2 and torch.equal(bits, torch.from_numpy(np.packbits(keep.numpy(), axis=-1))):
            raise Mistake("you packed each row on its own (np.packbits(..., axis=1)): pack the flattened mask, "
                          "np.packbits(mask.flatten().numpy()), one flat row of bytes")
        raise Mistake(f"the bits should be one flat row of bytes, not a tensor of shape {tuple(bits.shape)}: "
                      "np.packbits(mask.flatten().numpy())")
    if bits.dtype == torch.bool or bits.numel() == n:
        raise Mistake(f"your bits take one byte per weight ({n:,} bytes here): pack 8 weights into each byte, "
                      "np.packbits(mask.flatten().numpy()), so they take ceil(n / 8)")
    if bits.dtype != torch.uint8:
        raise Mistake(f"store the bits as bytes, torch.uint8, not {bits.dtype}")
    if bits.numel() == n // 8 != math.ceil(n / 8):
        raise Mistake(f"{n} weights need ceil({n} / 8) = {math.ceil(n / 8)} bytes of bits: {n} // 8 drops the last, "
                      "partial byte")
    if bits.numel() != math.ceil(n / 8):
        raise Mistake(f"{n} weights need ceil({n} / 8) = {math.ceil(n / 8)} bytes of bits, you wrote {bits.numel()}")
    if not torch.equal(bits, right["bits"]):
        if torch.equal(bits, torch.from_numpy(np.packbits(flat, bitorder="little"))):
            raise Mistake("the bit order is reversed: the first weight goes in the highest bit, numpy.packbits's "
                          "default (bitorder='big')")
        if torch.equal(bits, torch.from_numpy(np.packbits((weight != 0).flatten().numpy()))):
            raise Mistake("you read the mask from the weights' zeros: a kept weight can be exactly zero (here one "
                          "is), so pack the mask you were given")
        if torch.equal(bits, torch.from_numpy(np.packbits(keep.T.flatten().numpy()))):
            raise Mistake("your bits go column by column: flatten row by row (mask.flatten()), as the values")
        raise Mistake("your bits are not the mask, flattened row by row and packed 8 to the byte")
    if values.dim() != 1:
        raise Mistake(f"the values should be a flat tensor of the kept weights, not of shape {tuple(values.shape)}: "
                      "weight[mask] with a bool mask gives one (indices from nonzero() need .flatten())")
    if values.numel() == n:
        raise Mistake("you stored every weight, the pruned ones included: keep only the weights the mask keeps")
    if values.dtype != torch.float32:
        raise Mistake(f"store the values as float32 (4 bytes each), not {values.dtype}")
    if values.numel() != kept or not torch.equal(values, right["values"]):
        if torch.equal(values, weight[weight != 0]) or torch.equal(values, weight[keep & (weight != 0)]):
            raise Mistake("you kept the non-zero weights: a kept weight can be exactly zero, so select by the "
                          "mask, weight[mask]")
        if torch.equal(values, weight.T[keep.T]):
            raise Mistake("your values go column by column: take them row by row, weight[mask], the order of the "
                          "bits")
        raise Mistake(f"the values should be the {kept} kept weights in row-major order, weight[mask]")


@exercise("10.bitmask", reference=to_bitmask_reference)
def _bitmask_exercise(fn) -> Verdict:
    from lthkit.export import expand_layer

    def cases() -> str:
        weight = torch.tensor([[0.5, 0.0, -0.25, 0.0, 0.75, 0.0], [0.0, -1.5, 0.0, 0.3, 0.0, 2.0]])
        keep = torch.tensor([[True, True, True, False, True, False], [False, True, False, False, False, True]])
        _bitmask_case(fn, weight, keep)  # a kept weight (row 0, column 1) is zero, a dropped one (row 1, column 3) not
        g = generator("exercise", 10)
        layer = torch.randn(300, 784, generator=g)
        keep = torch.rand(300, 784, generator=g) < 0.035
        layer = layer * keep
        _bitmask_case(fn, layer, keep)
        bits, values = fn(layer.clone(), keep.clone())
        back = expand_layer({"form": "bitmask", "shape": [300, 784], "bits": bits, "values": values})
        if not torch.equal(back, layer):
            raise Mistake("lthkit.export.expand_layer does not read your 300x784 layer back bit for bit")
        return (f"stores a 300x784 layer at 3.5% in {bits.numel() + 4 * values.numel():,} bytes instead of "
                f"{4 * layer.numel():,}, and lthkit reads it back bit for bit.")
    return _judge("to_bitmask", cases)
