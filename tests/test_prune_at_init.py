import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lthkit.masks import Mask, prune_globally
from lthkit.models import build_model
from lthkit.prune_at_init import (
    LayerCollapse,
    check_no_collapse,
    collapsed_layers,
    grasp_scores,
    magnitude_scores,
    prune_at_init,
    random_scores,
    snip_scores,
    synflow_scores,
)
from lthkit.seeds import generator

LENET_SIZES = {"fc1.weight": 235200, "fc2.weight": 30000, "fc3.weight": 1000}
LENET_TOTAL = 266200


def lenet(seed=0):
    return build_model("lenet300", (1, 28, 28), seed=seed)


def tiny(widths=(4, 5, 3), bias=True, seed=0):
    """A small float64 MLP (Linear, ReLU, ..., Linear) whose weights a test can compute with by hand."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += [nn.Linear(a, b, bias=bias)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def tiny_forward(x, weights, biases):
    """The same MLP written out by hand: the reference the scores are checked against."""
    for i, (w, b) in enumerate(zip(weights, biases)):
        x = x @ w.T + (0 if b is None else b)
        if i < len(weights) - 1:
            x = torch.relu(x)
    return x


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def some_pruned(model, seed=0):
    """A mask with about a third of each layer pruned, not applied to the model's weights."""
    g = generator("test-mask", seed)
    return Mask({n: (torch.rand(t.shape, generator=g) > 0.33).float() for n, t in Mask.ones_like(model).items()})


def constant(value):
    return lambda model, mask: {n: torch.full(m.shape, float(value)) for n, m in mask.items()}


# Scores against hand computations


def test_magnitude_scores_are_the_absolute_masked_weights_and_one_shot_equals_global_imp():
    model = tiny()
    mask = some_pruned(model)
    scores = magnitude_scores(model, mask=mask)
    for name, w in model.named_parameters():
        if name in mask:
            assert torch.equal(scores[name], (w * mask[name].double()).abs())
    big = lenet()
    ones = Mask.ones_like(big)
    assert prune_at_init(big, magnitude_scores, 0.2) == prune_globally(big, ones, 0.8)


def test_snip_is_the_gradient_of_the_mean_loss_times_the_masked_weight(mnist_small):
    model = lenet(seed=3)
    mask = some_pruned(model)
    images, labels = mnist_small.train.x[:100], mnist_small.train.y[:100]
    params = dict(model.named_parameters())
    weights = [(params[f"fc{i}.weight"] * mask[f"fc{i}.weight"]).detach().requires_grad_() for i in (1, 2, 3)]
    biases = [params[f"fc{i}.bias"].detach() for i in (1, 2, 3)]
    loss = F.cross_entropy(tiny_forward(images.flatten(1), weights, biases), labels)
    grads = torch.autograd.grad(loss, weights)
    scores = snip_scores(model, images, labels, mask=mask)
    for i, (w, g) in enumerate(zip(weights, grads), start=1):
        expected = (g * w).abs()
        assert torch.allclose(scores[f"fc{i}.weight"], expected, rtol=1e-4, atol=1e-6 * expected.max().item())
        pruned = mask[f"fc{i}.weight"] == 0
        assert bool(pruned.any()) and torch.count_nonzero(scores[f"fc{i}.weight"][pruned]) == 0
        assert torch.count_nonzero(params[f"fc{i}.weight"][pruned]) > 0  # the model itself was left unpruned


def grasp_reference(model, mask, x, y, temperature):
    """``w * Hg`` with the full Hessian of the tempered loss over the flattened prunable weights."""
    shapes = [m.weight.shape for m in linears(model)]
    biases = [m.bias.detach() for m in linears(model)]
    flat = torch.cat([(m.weight * mask[f"{i}.weight"].double()).detach().flatten()
                      for i, m in zip((0, 2), linears(model))])

    def loss(flat):
        weights, start = [], 0
        for shape in shapes:
            weights.append(flat[start:start + math.prod(shape)].view(shape))
            start += math.prod(shape)
        return F.cross_entropy(tiny_forward(x, weights, biases) / temperature, y)

    g = torch.autograd.functional.jacobian(loss, flat)
    hessian = torch.autograd.functional.hessian(loss, flat)
    return flat * (hessian @ g)


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_is_the_weight_times_the_hessian_gradient_product(temperature):
    model = tiny(seed=1)
    mask = some_pruned(model, seed=1)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    scores = grasp_scores(model, x, y, temperature=temperature, mask=mask)
    got = torch.cat([scores["0.weight"].flatten(), scores["2.weight"].flatten()])
    expected = grasp_reference(model, mask, x, y, temperature)
    assert got.dtype == torch.float64 and (got < 0).any() and (got > 0).any()  # signed, not absolute
    assert torch.allclose(got, expected, rtol=1e-8, atol=1e-12 * expected.abs().max().item())


def test_grasp_removes_the_weight_whose_removal_raises_the_gradient_norm_most():
    """Wang et al. remove the highest ``-w * Hg``: the weight whose removal, to first order, makes the
    gradient norm grow the most. Measured here without any Hessian: finite differences of the
    squared gradient norm along each weight's removal direction."""
    model = tiny(seed=2)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    temperature = 2.0
    weights = [m.weight.detach() for m in linears(model)]
    biases = [m.bias.detach() for m in linears(model)]

    def grad_norm(ws):
        ws = [w.clone().requires_grad_() for w in ws]
        loss = F.cross_entropy(tiny_forward(x, ws, biases) / temperature, y)
        return sum(g.pow(2).sum() for g in torch.autograd.grad(loss, ws)).item()

    eps, rise = 1e-5, []
    for layer, w in enumerate(weights):
        for q in range(w.numel()):
            def moved(t, layer=layer, q=q):
                ws = [v.clone() for v in weights]
                ws[layer].view(-1)[q] -= t * weights[layer].view(-1)[q]  # t = 1 removes the weight
                return ws
            rise.append((grad_norm(moved(eps)) - grad_norm(moved(-eps))) / (2 * eps))
    rise = torch.tensor(rise, dtype=torch.float64)
    scores = grasp_scores(model, x, y, temperature=temperature)
    flat = torch.cat([scores["0.weight"].flatten(), scores["2.weight"].flatten()])
    assert torch.allclose(rise, -2 * flat, rtol=1e-5, atol=1e-9)
    n = flat.numel()
    mask = prune_at_init(model, functools.partial(grasp_scores, images=x, labels=y, temperature=temperature),
                         (n - 1) / n)
    removed = torch.cat([mask["0.weight"].flatten(), mask["2.weight"].flatten()]) == 0
    assert removed.nonzero().flatten().tolist() == [int(rise.argmax())]


def test_synflow_is_the_all_ones_hand_computation_and_ignores_signs_and_data():
    """SynFlow takes no data: the scores are those of one all-ones input through |W| and |b|."""
    model = tiny(widths=(4, 6, 5, 3), seed=3)
    a = [m.weight.detach().abs() for m in linears(model)]
    c = [m.bias.detach().abs() for m in linears(model)]
    h = [torch.ones(4, dtype=torch.float64)]
    for w, b in zip(a, c):
        h.append(w @ h[-1] + b)
    back = [torch.ones(3, dtype=torch.float64)]  # dR/d(output of each layer), last layer first
    for w in reversed(a[1:]):
        back.insert(0, w.T @ back[0])
    expected = [back[i][:, None] * a[i] * h[i][None, :] for i in range(3)]
    scores = synflow_scores(model, (4,))
    for name, e in zip(("0.weight", "2.weight", "4.weight"), expected):
        assert scores[name].dtype == torch.float64
        assert torch.allclose(scores[name], e, rtol=1e-12)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.randint(0, 2, p.shape, dtype=torch.float64) * 2 - 1)
    flipped = synflow_scores(model, (4,))
    assert all(torch.equal(flipped[n], scores[n]) for n in scores)


def test_synflow_conserves_flow_in_every_layer_and_at_every_hidden_neuron():
    """Tanaka et al.'s theorem, for networks without biases: each layer's scores sum to R, and at each
    hidden neuron the scores coming in equal the scores going out."""
    model = tiny(widths=(4, 6, 5, 3), bias=False, seed=4)
    a = [m.weight.detach().abs() for m in linears(model)]
    flow = (a[2] @ a[1] @ a[0] @ torch.ones(4, dtype=torch.float64)).sum()
    scores = synflow_scores(model, (4,))
    names = ["0.weight", "2.weight", "4.weight"]
    for name in names:
        assert scores[name].sum().item() == pytest.approx(flow.item(), rel=1e-12)
    for incoming, outgoing in zip(names, names[1:]):
        assert torch.allclose(scores[incoming].sum(1), scores[outgoing].sum(0), rtol=1e-12)
    # LeNet-300-100 at initialisation has zero biases, so the law holds there too, in float64.
    big = lenet()
    w = [big.get_submodule(f"fc{i}").weight.detach().double().abs() for i in (1, 2, 3)]
    flow = (w[2] @ (w[1] @ (w[0] @ torch.ones(784, dtype=torch.float64)))).sum().item()
    for s in synflow_scores(big, (1, 28, 28)).values():
        assert s.sum().item() == pytest.approx(flow, rel=1e-10)


def small_bn_net():
    """Convolutions with batch norm (whose running statistics a careless score would move), a nested
    block that can be put in its own mode, and a linear output layer."""
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    with torch.no_grad():
        for bn in (model[1], model[3][1]):
            bn.weight.normal_(), bn.bias.normal_(), bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2)
    return model


def test_scores_leave_weights_buffers_modes_and_grads_as_they_were():
    model = small_bn_net()
    model.train()
    model[3].eval()  # a mixed mode must come back mixed
    model[5].bias.requires_grad_(False)
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    assert all(bool((state[n] < 0).any()) for n in ("0.weight", "3.0.weight", "5.weight", "1.weight"))
    mask = some_pruned(model)
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 10, (8,))
    for score in (magnitude_scores(model, mask=mask), random_scores(model, generator("r", 0), mask=mask),
                  snip_scores(model, x, y, mask=mask), grasp_scores(model, x, y, mask=mask),
                  synflow_scores(model, (1, 6, 6), mask=mask)):
        assert {n: s.shape for n, s in score.items()} == {n: m.shape for n, m in mask.items()}
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())  # weights, signs, BN running statistics
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 7.0))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "0.weight")
    # SynFlow always runs batch norm in eval mode, and SNIP in train mode, whatever mode the caller left.
    synflow, snip = synflow_scores(model, (1, 6, 6)), snip_scores(model, x, y)
    model.eval()
    assert all(torch.equal(synflow_scores(model, (1, 6, 6))[n], s) for n, s in synflow.items())
    assert all(torch.equal(snip_scores(model, x, y)[n], s) for n, s in snip.items())


# Layer collapse


def test_iterative_synflow_avoids_the_layer_collapse_of_one_shot_pruning_on_lenet():
    model = lenet()
    density = 5e-4  # 133 weights of 266,200
    keep = round(density * LENET_TOTAL)
    synflow = functools.partial(synflow_scores, input_shape=(1, 28, 28))
    magnitude = prune_at_init(model, magnitude_scores, density)
    assert collapsed_layers(magnitude) == ["fc1.weight"]  # fc1's Glorot weights are the smallest
    assert collapsed_layers(prune_at_init(model, synflow, density)) != []  # one shot is not enough
    iterative = prune_at_init(model, synflow, density, steps=100)
    assert collapsed_layers(iterative) == [] and iterative.alive() == keep == magnitude.alive()
    check_no_collapse(iterative)
    with pytest.raises(LayerCollapse, match="fc1.weight"):
        check_no_collapse(magnitude)


def test_collapse_is_reported_with_the_layers_named_and_what_to_do():
    mask = Mask.ones_like(lenet())
    assert collapsed_layers(mask) == []
    check_no_collapse(mask)
    mask = Mask({n: (torch.zeros_like(m) if n != "fc1.weight" else m) for n, m in mask.items()})
    assert collapsed_layers(mask) == ["fc2.weight", "fc3.weight"]
    with pytest.raises(ValueError) as err:
        check_no_collapse(mask)
    assert isinstance(err.value, LayerCollapse) and err.value.layers == ["fc2.weight", "fc3.weight"]
    message = str(err.value)
    assert "fc2.weight, fc3.weight" in message and "fc1.weight" not in message
    assert all(advice in message for advice in ("lower the sparsity", "layerwise", "SynFlow"))


# Counts, schedule, inversion, determinism


@pytest.mark.parametrize("density", [1.0, 0.5, 0.2, 0.013, 1e-3, 1e-5, 3.7e-6])
def test_global_and_layerwise_keep_exact_counts(density):
    model = lenet()
    scores = functools.partial(random_scores, generator=generator("counts", density))
    global_mask = prune_at_init(model, scores, density)
    assert global_mask.alive() == math.floor(density * LENET_TOTAL + 0.5)
    layerwise = prune_at_init(model, scores, density, scope="layerwise")
    assert {n: layerwise.alive(n) for n in layerwise} == {
        n: math.floor(density * size + 0.5) for n, size in LENET_SIZES.items()}


def test_ties_are_broken_by_position_so_counts_stay_exact():
    model = tiny(widths=(4, 5, 3))
    mask = prune_at_init(model, constant(1.0), 0.5, scope="layerwise")
    assert mask["0.weight"].flatten().tolist() == [0.0] * 10 + [1.0] * 10  # the first positions go first
    assert mask["2.weight"].flatten().tolist() == [0.0] * 7 + [1.0] * 8  # 7.5 rounds up to 8 kept
    assert prune_at_init(model, constant(1.0), 0.5).alive() == 18  # 35 / 2 = 17.5, halves up


def recording(scores_fn, log):
    def record(model, mask):
        log.append(mask)
        return scores_fn(model, mask=mask)
    return record


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_iterative_schedule_is_exponential_nested_and_ends_exactly_at_the_target(scope):
    model, density, steps, seen = lenet(), 0.01, 7, []
    mask = prune_at_init(model, recording(magnitude_scores, seen), density, scope=scope, steps=steps)
    assert len(seen) == steps and seen[0] == Mask.ones_like(model)
    groups = {"all": list(LENET_SIZES)} if scope == "global" else {n: [n] for n in LENET_SIZES}
    for names in groups.values():
        size = sum(LENET_SIZES[n] for n in names)
        alive = [sum(m.alive(n) for n in names) for m in seen + [mask]]
        assert alive == [math.floor(density ** (k / steps) * size + 0.5) for k in range(steps)] + [
            math.floor(density * size + 0.5)]
    for before, after in zip(seen, seen[1:] + [mask]):
        assert all(bool((after[n] <= before[n]).all()) for n in mask)


def test_pruned_weights_are_never_revived_whatever_they_score():
    model = lenet()
    start = prune_at_init(model, functools.partial(random_scores, generator=generator("start", 0)), 0.3)

    def dead_score_highest(model, mask):
        g = generator("revive", mask.alive())
        return {n: torch.where(m == 0, torch.tensor(1e30), torch.rand(m.shape, generator=g)) for n, m in mask.items()}
    mask = prune_at_init(model, dead_score_highest, 0.05, mask=start, steps=4)
    assert mask.alive() == math.floor(0.05 * LENET_TOTAL + 0.5)
    assert all(bool((mask[n] <= start[n]).all()) for n in mask)
    with pytest.raises(ValueError, match="at most 0.3"):
        prune_at_init(model, magnitude_scores, 0.31, mask=start)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_invert_keeps_the_lowest_scores_the_complement_of_the_normal_ranking(scope):
    model = lenet()
    scores = lambda model, mask: random_scores(model, generator("invert", 0), mask=mask)  # noqa: E731
    kept = prune_at_init(model, scores, 0.25, scope=scope)
    inverted = prune_at_init(model, scores, 0.75, scope=scope, invert=True)
    assert all(torch.equal(inverted[n], 1 - kept[n]) for n in kept)
    lowest = prune_at_init(model, magnitude_scores, 0.1, invert=True)
    params = dict(model.named_parameters())
    kept_max = max(params[n].abs()[lowest[n] == 1].max().item() for n in lowest if lowest.alive(n))
    pruned_min = min(params[n].abs()[lowest[n] == 0].min().item() for n in lowest)
    assert kept_max <= pruned_min


def test_same_inputs_give_the_same_mask(mnist_small):
    images, labels = mnist_small.train.x[:100], mnist_small.train.y[:100]
    snip = functools.partial(snip_scores, images=images, labels=labels)
    first = prune_at_init(lenet(seed=4), snip, 0.05, steps=3)
    assert first.alive() == math.floor(0.05 * LENET_TOTAL + 0.5)
    assert prune_at_init(lenet(seed=4), snip, 0.05, steps=3) == first
    rand = lambda seed: functools.partial(random_scores, generator=generator("arm", seed))  # noqa: E731
    assert prune_at_init(lenet(), rand(0), 0.1) == prune_at_init(lenet(), rand(0), 0.1)
    assert prune_at_init(lenet(), rand(0), 0.1) != prune_at_init(lenet(), rand(1), 0.1)


# Arguments


@pytest.mark.parametrize("density", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_a_density_outside_0_1_is_refused_with_its_meaning(density):
    with pytest.raises(ValueError, match=r"outside \(0, 1\].*fraction of prunable weights to keep"):
        prune_at_init(tiny(), magnitude_scores, density)


def test_bad_scope_steps_mask_and_scores_are_refused_with_what_to_give():
    model = tiny()
    with pytest.raises(ValueError, match="'global'.*'layerwise'"):
        prune_at_init(model, magnitude_scores, 0.5, scope="local")
    for steps in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="at least 1"):
            prune_at_init(model, magnitude_scores, 0.5, steps=steps)
    with pytest.raises(ValueError, match=r"Mask.ones_like\(model\)"):
        prune_at_init(model, magnitude_scores, 0.5, mask=Mask.ones_like(lenet()))
    wrong_shape = lambda model, mask: {n: torch.ones(m.numel()) for n, m in mask.items()}  # noqa: E731
    with pytest.raises(ValueError, match=r"0.weight.*weight's shape \(5, 4\)"):
        prune_at_init(model, wrong_shape, 0.5)
    missing = lambda model, mask: {"0.weight": torch.ones(5, 4)}  # noqa: E731
    with pytest.raises(ValueError, match="exactly the prunable weights"):
        prune_at_init(model, missing, 0.5)
    nan = lambda model, mask: {n: torch.full(m.shape, float("nan")) for n, m in mask.items()}  # noqa: E731
    with pytest.raises(ValueError, match="NaN"):
        prune_at_init(model, nan, 0.5)
