"""Learners' transfer (notebook 11): the target's network given a ticket, its mask on its own initial weights."""

import copy

import torch
from torch.nn.utils import prune

from learners import Suite

suite = Suite("11.transfer", context=lambda get: {})


def _masked(model, mask):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"trained weights.*fine-tuning")
def loads_the_trained_weights(model, mask, initial, trained):
    model.load_state_dict(trained)
    return _masked(model, mask)


@suite.wrong(r"target network's own initial values.*reinit control")
def keeps_the_targets_initialisation(model, mask, initial, trained):
    return _masked(model, mask)


@suite.wrong(r"pruned weights are not zero: the mask was not applied")
def forgets_the_mask(model, mask, initial, trained):
    model.load_state_dict(initial)
    return model


@suite.wrong(r"kept the pruned weights and zeroed the survivors")
def inverts_the_mask(model, mask, initial, trained):
    model.load_state_dict(initial)
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(1 - m)
    return model


@suite.wrong(r"fc3\.weight: the pruned weights are not zero")
def forgets_the_output_layer(model, mask, initial, trained):
    model.load_state_dict(initial)
    return _masked(model, {n: m for n, m in mask.items() if n != "fc3.weight"})


@suite.wrong(r"bias holds the target's own values.*biases included")
def copies_only_the_masked_weights(model, mask, initial, trained):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).copy_(initial[name] * m)
    return model


@suite.wrong(r"read the mask from the trained weights' zeros")
def reads_the_mask_from_the_trained_weights(model, mask, initial, trained):
    model.load_state_dict(initial)
    return _masked(model, {n: (trained[n] != 0).float() for n in mask})


@suite.wrong(r"shares memory with `initial`")
def assigns_the_initial_tensors(model, mask, initial, trained):
    for name, param in model.named_parameters():
        param.data = initial[name] if name not in mask else initial[name] * mask[name]
    return model


@suite.wrong(r"initial weights times 2\.5.*no rescaling")
def rescales_like_dropout(model, mask, initial, trained):
    model.load_state_dict(initial)
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m / m.mean()) if name == "fc1.weight" else model.get_parameter(name).mul_(m)
    return model


@suite.wrong(r"still pruned with torch\.nn\.utils\.prune")
def leaves_torch_prune_on(model, mask, initial, trained):
    model.load_state_dict(initial)
    for name, m in mask.items():
        module, _, attr = name.rpartition(".")
        prune.custom_from_mask(model.get_submodule(module), attr, m)
    return model


@suite.wrong(r"return the model")
def forgets_to_return(model, mask, initial, trained):
    model.load_state_dict(initial)
    _masked(model, mask)


@suite.wrong(r"changed the `mask` you were given in place")
def turns_the_mask_to_booleans_in_place(model, mask, initial, trained):
    model.load_state_dict(initial)
    with torch.no_grad():
        for name in mask:
            mask[name] = mask[name].bool()
            model.get_parameter(name)[~mask[name]] = 0
    return model


@suite.wrong(r"changed the `initial` you were given in place")
def masks_initial_in_place(model, mask, initial, trained):
    for name, m in mask.items():
        initial[name].mul_(m)
    model.load_state_dict(initial)
    return model


@suite.wrong(r"float64")
def in_double_precision(model, mask, initial, trained):
    model.load_state_dict(initial)
    _masked(model, mask)
    return model.double()


# --- right -------------------------------------------------------------------------------------------


@suite.right
def loads_then_masks(model, mask, initial, trained):
    model.load_state_dict(initial)
    return _masked(model, mask)


@suite.right
def with_torch_where_on_a_copy(model, mask, initial, trained):
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for name, value in fresh.state_dict().items():
            kept = torch.where(mask[name].bool(), initial[name], torch.zeros(())) if name in mask else initial[name]
            value.copy_(kept)
    return fresh


@suite.right
def through_torch_prune_and_remove(model, mask, initial, trained):
    model.load_state_dict(initial)
    for name, m in mask.items():
        module, _, attr = name.rpartition(".")
        prune.custom_from_mask(model.get_submodule(module), attr, m)
        prune.remove(model.get_submodule(module), attr)
    return model


@suite.right
def with_lthkit_rewind(model, mask, initial, trained):
    from lthkit.masks import Mask
    from lthkit.rewind import rewind_to
    return rewind_to(model, initial, Mask(mask))
