"""Learners' bitmask form (notebook 10): to_bitmask(weight, mask) -> (bits, values)."""

import numpy as np
import torch

from learners import Suite

suite = Suite("10.bitmask")


def _bits(mask, order="big"):
    return torch.from_numpy(np.packbits(mask.bool().flatten().numpy(), bitorder=order))


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"one byte per weight")
def bool_bits(weight, mask):
    return mask.bool().flatten(), weight[mask.bool()]


@suite.wrong(r"one byte per weight")
def one_uint8_per_weight(weight, mask):
    return mask.flatten().to(torch.uint8), weight[mask.bool()]


@suite.wrong(r"bit order is reversed")
def little_endian(weight, mask):
    return _bits(mask, "little"), weight[mask.bool()]


@suite.wrong(r"weights' zeros")
def mask_from_the_zeros(weight, mask):
    return _bits(weight != 0), weight[weight != 0]


@suite.wrong(r"bits go column by column")
def column_major_bits(weight, mask):
    return _bits(mask.T), weight[mask.bool()]


@suite.wrong(r"every weight")
def every_value(weight, mask):
    return _bits(mask), weight.flatten()


@suite.wrong(r"float32.*not torch\.float64")
def values_in_double(weight, mask):
    return _bits(mask), weight[mask.bool()].double()


@suite.wrong(r"float32.*not torch\.float16")
def values_in_half(weight, mask):
    return _bits(mask), weight[mask.bool()].half()


@suite.wrong(r"values go column by column")
def column_major_values(weight, mask):
    return _bits(mask), weight.T[mask.T.bool()]


@suite.wrong(r"non-zero weights")
def nonzero_values(weight, mask):
    return _bits(mask), weight[weight != 0]


@suite.wrong(r"in place")
def prunes_the_weight_in_place(weight, mask):
    weight.mul_(mask)
    return _bits(mask), weight[mask.bool()]


@suite.wrong(r"two tensors")
def a_list(weight, mask):
    return [_bits(mask), weight[mask.bool()]]


@suite.wrong(r"order \(bits, values\)")
def values_first(weight, mask):
    return weight[mask.bool()], _bits(mask)


@suite.wrong(r"flat tensor of the kept weights")
def values_from_nonzero_indices(weight, mask):
    flat = weight.flatten()
    return _bits(mask), flat[mask.flatten().nonzero()]


@suite.wrong(r"numpy arrays")
def numpy_arrays(weight, mask):
    keep = mask.bool().numpy()
    return np.packbits(keep.flatten()), weight.numpy()[keep]


@suite.wrong(r"each row on its own")
def packs_each_row(weight, mask):
    return torch.from_numpy(np.packbits(mask.bool().numpy(), axis=1)), weight[mask.bool()]


@suite.wrong(r"torch\.uint8, not torch\.int64")
def bits_through_a_list(weight, mask):
    return torch.tensor(np.packbits(mask.bool().flatten().numpy()).tolist()), weight[mask.bool()]


@suite.wrong(r"torch\.uint8, not torch\.int8")
def signed_bytes(weight, mask):
    return _bits(mask).view(torch.int8), weight[mask.bool()]


@suite.wrong(r"drops the last, partial byte")
def floors_the_byte_count(weight, mask):
    flat = mask.bool().flatten()
    whole = flat[: flat.numel() // 8 * 8].view(-1, 8).to(torch.uint8)
    bits = (whole * torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)).sum(1).to(torch.uint8)
    return bits, weight[mask.bool()]


@suite.wrong(r"not \(bytes, Tensor\)")
def bits_as_python_bytes(weight, mask):
    return np.packbits(mask.bool().flatten().numpy()).tobytes(), weight[mask.bool()]


@suite.wrong(r"non-zero weights")
def nonzero_of_the_masked_weight(weight, mask):
    pruned = weight * mask
    return _bits(mask), pruned[pruned != 0]


@suite.wrong(r"exactly two tensors")
def with_the_shape_too(weight, mask):
    return _bits(mask), weight[mask.bool()], tuple(weight.shape)


@suite.wrong(r"returned None")
def forgets_to_return(weight, mask):
    bits, values = _bits(mask), weight[mask.bool()]  # noqa: F841


# --- right -------------------------------------------------------------------------------------------


@suite.right
def with_packbits(weight, mask):
    keep = mask.bool()
    return torch.from_numpy(np.packbits(keep.flatten().numpy())), weight[keep].float()


@suite.right
def packed_by_hand(weight, mask):
    flat = mask.bool().flatten()
    padded = torch.zeros((flat.numel() + 7) // 8 * 8, dtype=torch.uint8)
    padded[: flat.numel()] = flat
    place = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int32)
    bits = (padded.view(-1, 8).int() * place).sum(1).to(torch.uint8)
    return bits, weight.flatten()[flat]


@suite.right
def with_masked_select(weight, mask):
    bits = torch.tensor(np.packbits(mask.numpy().astype(np.uint8).ravel()), dtype=torch.uint8)
    return bits, torch.masked_select(weight, mask.bool())


@suite.right
def values_from_flat_indices(weight, mask):
    where = mask.flatten().nonzero().flatten()
    return _bits(mask), weight.flatten()[where].clone()


@suite.right
def numpy_all_the_way(weight, mask):
    keep, w = mask.numpy().astype(bool), weight.numpy()
    return torch.from_numpy(np.packbits(keep, axis=None)), torch.from_numpy(w[keep].astype(np.float32))
