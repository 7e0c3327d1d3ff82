"""Learners' sign keeping (notebook 08): keep_signs(initial, fresh) -> |fresh| with the sign of initial."""

import math

import torch

from learners import Suite

suite = Suite("08.keep-signs")


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"flips the sign")
def fresh_times_sign(initial, fresh):
    return fresh * initial.sign()


@suite.wrong(r"initial weights themselves")
def returns_initial(initial, fresh):
    return initial.clone()


@suite.wrong(r"roles are swapped")
def swapped(initial, fresh):
    return initial.abs() * fresh.sign()


@suite.wrong(r"roles are swapped")
def copysign_arguments_swapped(initial, fresh):
    return torch.copysign(initial, fresh)


@suite.wrong(r"every weight is positive")
def forgets_the_sign(initial, fresh):
    return fresh.abs()


@suite.wrong(r"signed constant")
def signed_constant(initial, fresh):
    return initial.sign() * fresh.std()


@suite.wrong(r"in place")
def edits_fresh_in_place(initial, fresh):
    return fresh.abs_().mul_(initial.sign())


@suite.wrong(r"in place")
def edits_initial_in_place(initial, fresh):
    return initial.sign_().mul_(fresh.abs())


@suite.wrong(r"exactly")
def rounds(initial, fresh):
    return fresh.abs() * initial / initial.abs() * (1 + 1e-7)


@suite.wrong(r"fresh weights with their own signs")
def returns_fresh(initial, fresh):
    return fresh.clone()


@suite.wrong(r"dtype of `fresh` \(torch\.float32\), not torch\.float64")
def in_double_precision(initial, fresh):
    return fresh.double().abs() * initial.double().sign()


@suite.wrong(r"dtype of `fresh` \(torch\.float32\), not torch\.float16")
def in_half_precision(initial, fresh):
    return (fresh.abs() * initial.sign()).half()


@suite.wrong(r"dtype of `fresh` \(torch\.float32\), not torch\.bool")
def only_the_signs_as_bool(initial, fresh):
    return initial > 0


@suite.wrong(r"became 0")
def positive_as_zero_one(initial, fresh):
    return fresh.abs() * (initial > 0)


@suite.wrong(r"opposite")
def minus_sign(initial, fresh):
    return -fresh.abs() * initial.sign()


@suite.wrong(r"initial weight itself")
def times_initial(initial, fresh):
    return fresh.abs() * initial


@suite.wrong(r"returned None")
def forgets_to_return(initial, fresh):
    out = fresh.abs() * initial.sign()  # noqa: F841


@suite.wrong(r"return a tensor, not ndarray")
def through_numpy(initial, fresh):
    import numpy as np

    return np.abs(fresh.numpy()) * np.sign(initial.numpy())


@suite.wrong(r"shape \(6,\), not \(36,\)|one weight per position")
def outer_product_by_broadcasting(initial, fresh):
    return (fresh.abs().view(-1, 1) * initial.sign().view(1, -1)).flatten()


# --- right -------------------------------------------------------------------------------------------


@suite.right
def with_copysign(initial, fresh):
    return torch.copysign(fresh.abs(), initial)


@suite.right
def copysign_of_fresh(initial, fresh):
    return torch.copysign(fresh, initial)


@suite.right
def with_where(initial, fresh):
    return torch.where(initial < 0, -fresh.abs(), fresh.abs())


@suite.right
def element_by_element(initial, fresh):
    values = [math.copysign(abs(f), i) for i, f in zip(initial.flatten().tolist(), fresh.flatten().tolist())]
    return torch.tensor(values, dtype=fresh.dtype).view(fresh.shape)


@suite.right
def divides_by_the_magnitude(initial, fresh):
    return fresh.abs() * (initial / initial.abs())


@suite.right
def negates_a_copy(initial, fresh):
    out = fresh.abs().clone()
    out[initial < 0] *= -1
    return out
