"""Learners' rewind (notebook 03): the ticket, the initial weights under the mask."""

import copy

import torch
from torch.nn.utils import prune

from learners import Suite

suite = Suite("03.rewind", context=lambda get: {"data": get("mnist_small")})


def _mask_(model, mask):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"rewound to the trained weights")
def masks_the_trained_weights(model, initial, mask):
    return _mask_(model, mask)


@suite.wrong(r"fc1\.weight: pruned weights are not zero")
def forgets_the_mask(model, initial, mask):
    model.load_state_dict(initial)
    return model


@suite.wrong(r"fc1\.weight: pruned weights are not zero: after loading")
def masks_before_loading(model, initial, mask):
    _mask_(model, mask)
    model.load_state_dict(initial)
    return model


@suite.wrong(r"fc3\.weight: pruned weights are not zero")
def masks_the_hidden_layers_only(model, initial, mask):
    model.load_state_dict(initial)
    with torch.no_grad():
        model.fc1.weight.mul_(mask["fc1.weight"])
        model.fc2.weight.mul_(mask["fc2.weight"])
    return model


@suite.wrong(r"zeroed the survivors and kept the pruned weights")
def multiplies_by_the_inverse(model, initial, mask):
    model.load_state_dict(initial)
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(1 - m)
    return model


@suite.wrong(r"biases are not rewound.*trained values")
def rewinds_the_weights_only(model, initial, mask):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).copy_(initial[name] * m)
    return model


@suite.wrong(r"set the biases to zero")
def zeroes_the_biases(model, initial, mask):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in mask:
                p.copy_(initial[name] * mask[name])
            else:
                p.zero_()
    return model


@suite.wrong(r"changed `initial` in place")
def masks_initial_in_place(model, initial, mask):
    for name, m in mask.items():
        initial[name].mul_(m)
    model.load_state_dict(initial)
    return model


@suite.wrong(r"changed `initial` in place")
def loads_by_assignment(model, initial, mask):
    model.load_state_dict(initial, assign=True)  # the parameters now share initial's tensors
    return _mask_(model, mask)


@suite.wrong(r"changed `initial` in place")
def shares_the_data(model, initial, mask):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.data = initial[name]
            if name in mask:
                p.data.mul_(mask[name])
    return model


@suite.wrong(r"return the ticket \(the model\), not NoneType")
def returns_nothing(model, initial, mask):
    model.load_state_dict(initial)
    _mask_(model, mask)


@suite.wrong(r"return the ticket \(the model\), not dict")
def returns_the_state_dict(model, initial, mask):
    return {name: initial[name] * mask[name] if name in mask else initial[name].clone() for name in initial}


@suite.wrong(r"return the ticket \(the model\), not tuple")
def returns_the_model_and_mask(model, initial, mask):
    model.load_state_dict(initial)
    return _mask_(model, mask), mask


@suite.wrong(r"weight_orig and weight_mask.*prune\.remove")
def leaves_torch_prune_attached(model, initial, mask):
    model.load_state_dict(initial)
    for name, m in mask.items():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        prune.custom_from_mask(module, "weight", m)
    return model


@suite.wrong(r"survivors do not hold their initial values")
def draws_the_initialisation_again(model, initial, mask):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in mask:
                torch.nn.init.xavier_normal_(p)
                p.mul_(mask[name])
            else:
                p.copy_(initial[name])
    return model


@suite.wrong(r"close to their initial values but not equal bit for bit")
def undoes_what_training_changed(model, initial, mask):
    with torch.no_grad():
        for name, p in model.named_parameters():
            change = p - initial[name]
            p.sub_(change)  # trained - (trained - initial): initial up to rounding
            if name in mask:
                p.mul_(mask[name])
    return model


@suite.wrong(r"RuntimeError.*leaf Variable")
def multiplies_without_no_grad(model, initial, mask):
    model.load_state_dict(initial)
    for name, m in mask.items():
        model.get_parameter(name).mul_(m)
    return model


# --- right -------------------------------------------------------------------------------------------


@suite.right
def copies_every_tensor(model, initial, mask):
    with torch.no_grad():
        for name, value in model.state_dict().items():
            value.copy_(initial[name] * mask[name] if name in mask else initial[name])
    return model


@suite.right
def rewinds_a_copy(model, initial, mask):
    ticket = copy.deepcopy(model)
    ticket.load_state_dict({name: value.clone() for name, value in initial.items()})
    return _mask_(ticket, mask)


@suite.right
def with_torch_prune_made_permanent(model, initial, mask):
    model.load_state_dict(initial)
    for name, m in mask.items():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        prune.custom_from_mask(module, "weight", m)
        prune.remove(module, "weight")
    return model


@suite.right
def with_torch_where(model, initial, mask):
    state = {}
    for name, value in initial.items():
        if name in mask:
            state[name] = torch.where(mask[name].bool(), value, torch.zeros_like(value))
        else:
            state[name] = value
    model.load_state_dict(state)
    return model


@suite.right
def with_masked_fill_and_data(model, initial, mask):
    for name, p in model.named_parameters():
        p.data.copy_(initial[name])
        if name in mask:
            p.data.masked_fill_(mask[name] == 0, 0.0)
    return model
