"""03.masked-step: one optimiser step that keeps pruned weights at zero, as learners write it."""

import torch

from learner_solutions import masked_step_right
from learners import Suite

suite = Suite("03.masked-step")
suite.right(masked_step_right)  # the plain one: gradients masked, step, weights masked


@suite.right
def with_boolean_indexing(model, mask, optimizer, loss):
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    params = dict(model.named_parameters())
    for name, m in mask.items():
        params[name].grad[m == 0] = 0
    optimizer.step()
    for name, m in mask.items():
        params[name].data[m == 0] = 0


@suite.right
def with_gradient_hooks(model, mask, optimizer, loss):
    """Hooks registered before backward mask the gradient as it is computed; removed afterwards."""
    optimizer.zero_grad()
    handles = [model.get_parameter(n).register_hook(lambda g, m=m: g * m) for n, m in mask.items()]
    loss.backward()
    for h in handles:
        h.remove()
    optimizer.step()
    with torch.no_grad():
        for n, m in mask.items():
            model.get_parameter(n).copy_(torch.where(m.bool(), model.get_parameter(n), torch.zeros(())))


@suite.right
def masks_weights_before_and_after(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        for name, m in mask.items():
            p = model.get_parameter(name)
            p.grad *= m
            p *= m
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).data = model.get_parameter(name).data * m


@suite.wrong(r"revived")
def no_masking_at_all(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@suite.wrong(r"keeps moments for pruned weights")
def masks_the_weights_only(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)


@suite.wrong(r"masking the gradient alone")
def masks_the_gradients_only(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    optimizer.step()


@suite.wrong(r"revived")
def masks_the_weights_before_the_step(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    optimizer.step()


@suite.wrong(r"revived")
def rebinds_a_local_name(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for name, m in mask.items():
        p = model.get_parameter(name)
        p = p * m  # noqa: F841  (the classic no-op: a new tensor, the parameter untouched)


@suite.wrong(r"gradients add up across steps|zero them")
def never_zeroes_the_gradients(model, mask, optimizer, loss):
    loss.backward()
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)


@suite.wrong(r"have not moved")
def zeroes_the_gradients_after_backward(model, mask, optimizer, loss):
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)


@suite.wrong(r"have not moved")
def forgets_the_step(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).grad.mul_(m)
            model.get_parameter(name).mul_(m)


@suite.wrong(r"changed the mask you were given in place")
def edits_the_mask(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        pruned = m  # an alias, not a copy
        pruned -= 1  # -1 where pruned, 0 where kept
        model.get_parameter(name).grad[pruned != 0] = 0
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m + 1)


@suite.wrong(r"RuntimeError.*leaf Variable|in-place operation")
def in_place_without_no_grad(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    optimizer.step()
    for name, m in mask.items():
        model.get_parameter(name).mul_(m)


@suite.wrong(r"revived")
def masks_only_the_first_layer(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    first = next(iter(mask))
    model.get_parameter(first).grad.mul_(mask[first])
    optimizer.step()
    with torch.no_grad():
        model.get_parameter(first).mul_(mask[first])


@suite.wrong(r"revived")
def masks_a_copy_of_the_gradient(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        g = model.get_parameter(name).grad
        g = g * m  # noqa: F841
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            w = model.get_parameter(name).clone()
            w.mul_(m)


@suite.wrong(r"None until loss.backward\(\) computes it")
def masks_the_gradient_before_backward(model, mask, optimizer, loss):
    optimizer.zero_grad(set_to_none=False)
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)


@suite.wrong(r"moves the surviving weights differently|move differently")
def steps_twice(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    optimizer.step()
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
