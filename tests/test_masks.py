import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from lthkit.masks import (
    Mask,
    check_rate,
    count_to_prune,
    from_torch_prune,
    layer_rates,
    prune_by_magnitude,
    prune_globally,
    prune_layer,
    prune_randomly,
    random_mask_like,
    to_torch_prune,
)
from lthkit.models import build_model
from lthkit.seeds import generator
from lthkit.train import TrainConfig, train

PAPER = {"fc": 0.2, "output": 0.1}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def lenet(seed=0):
    return build_model("lenet300", (1, 28, 28), seed=seed)


def test_layerwise_pruning_removes_the_exact_fraction_of_the_alive_weights():
    model = lenet()
    mask = Mask.ones_like(model)
    rates = layer_rates(model, PAPER)
    expected = {"fc1.weight": 235200, "fc2.weight": 30000, "fc3.weight": 1000}
    for _ in range(5):
        mask = prune_by_magnitude(model, mask, rates)
        expected = {n: a - int(rates[n] * a + 0.5) for n, a in expected.items()}
        assert {n: mask.alive(n) for n in mask} == expected
    assert expected == {"fc1.weight": 77070, "fc2.weight": 9830, "fc3.weight": 590}
    assert mask.weights_remaining() == pytest.approx(sum(expected.values()) / 266200)
    report = mask.report()
    assert report["fc3.weight"] == {"alive": 590, "total": 1000, "weights_remaining": 0.59}


def test_pruning_takes_the_smallest_absolute_values_and_only_alive_weights():
    model = lenet()
    with torch.no_grad():
        w = model.fc3.weight
        w.copy_(torch.arange(1000, dtype=torch.float32).view(10, 100) - 500)  # -500 .. 499
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.0, "output": 0.1}))
    pruned = model.fc3.weight[mask["fc3.weight"] == 0]
    assert sorted(pruned.abs().tolist()) == sorted([abs(v) for v in range(-50, 50)])[:100]
    assert model.fc3.weight.min().item() == -500 and mask["fc3.weight"].flatten()[0] == 1  # big negatives live
    # A second round prunes among the survivors: already-pruned weights are not counted again.
    again = prune_by_magnitude(model, mask, layer_rates(model, {"fc": 0.0, "output": 0.1}))
    assert again.alive("fc3.weight") == 900 - 90
    assert bool((again["fc3.weight"] <= mask["fc3.weight"]).all())


def test_ties_are_broken_so_the_count_is_exact():
    model = lenet()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, PAPER))
    assert mask.alive("fc1.weight") == 235200 - 47040 and mask.alive("fc3.weight") == 900


def test_global_pruning_removes_the_smallest_alive_weights_across_layers_round_after_round():
    model = lenet()
    with torch.no_grad():
        model.fc3.weight.mul_(1e-9)  # make the output layer the smallest in magnitude
    params = dict(model.named_parameters())
    mask, alive = Mask.ones_like(model), 266200
    for _ in range(3):
        new = prune_globally(model, mask, 0.2)
        alive -= count_to_prune(0.2, alive)  # a fifth of the weights still alive, not of all weights
        assert new.alive() == alive
        assert all(bool((new[n] <= mask[n]).all()) for n in mask)  # nothing pruned comes back
        removed = torch.cat([params[n][(mask[n] == 1) & (new[n] == 0)].abs() for n in mask])
        kept = torch.cat([params[n][new[n] == 1].abs() for n in mask])
        assert removed.max() <= kept.min()
        mask = new
    assert alive == 136294 and mask.alive("fc3.weight") == 0
    # one threshold for all layers: fc1's smaller Glorot weights lose more than fc2's
    assert mask.alive("fc1.weight") / 235200 < mask.alive("fc2.weight") / 30000 < 1


def test_random_mask_like_keeps_each_layers_count():
    model = lenet()
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, PAPER))
    random = random_mask_like(mask, generator("t", 0))
    assert {n: random.alive(n) for n in random} == {n: mask.alive(n) for n in mask}
    assert random != mask
    assert random == random_mask_like(mask, generator("t", 0))


def test_prune_randomly_removes_the_exact_fraction():
    model = lenet()
    mask = prune_randomly(Mask.ones_like(model), layer_rates(model, PAPER), generator("r", 1))
    assert mask.alive("fc2.weight") == 24000 and mask.alive("fc3.weight") == 900


@pytest.mark.parametrize("rate", [1.5, 1.0, -0.1, float("nan"), "0.2", True])
def test_rates_outside_zero_one_are_refused_with_a_hint(rate):
    with pytest.raises(ValueError, match=r"outside \[0, 1\).*fraction of the weights still alive"):
        check_rate(rate)


def test_mask_rejects_values_other_than_zero_and_one():
    with pytest.raises(ValueError, match="other than 0 and 1"):
        Mask({"fc1.weight": torch.full((2, 2), 0.5)})


def test_pruned_weights_stay_zero_through_100_adam_steps(mnist_small):
    model = lenet()
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.9, "output": 0.5}))
    train(model, mnist_small, TrainConfig(iterations=100, eval_every=100, weight_decay=1e-3), mask=mask, progress=False)
    params = dict(model.named_parameters())
    moved = 0
    for name, m in mask.items():
        assert torch.count_nonzero(params[name][m == 0]) == 0
        moved += torch.count_nonzero(params[name][m == 1]).item()
    assert moved == mask.alive()


def test_adams_moments_of_pruned_weights_stay_zero(mnist_small, monkeypatch):
    import lthkit.train as train_module
    made = []
    real = train_module.make_optimizer
    monkeypatch.setattr(train_module, "make_optimizer", lambda params, config: made.append(real(params, config)) or made[-1])
    model = lenet()
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.5, "output": 0.5}))
    train(model, mnist_small, TrainConfig(iterations=30, eval_every=30), mask=mask, progress=False)
    state = made[0].state
    for name, p in model.named_parameters():
        if name in mask:
            assert torch.count_nonzero(state[p]["exp_avg"][mask[name] == 0]) == 0
            assert torch.count_nonzero(state[p]["exp_avg_sq"][mask[name] == 0]) == 0
            assert torch.count_nonzero(state[p]["exp_avg"][mask[name] == 1]) > 0


def test_apply_zeroes_exactly_the_pruned_weights_in_place():
    model = lenet()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, PAPER))
    assert mask.apply_(model) is model
    for name, p in model.named_parameters():
        expected = before[name] * mask[name] if name in mask else before[name]
        assert torch.equal(p, expected), name
    assert sum(torch.count_nonzero(p).item() for n, p in model.named_parameters() if n in mask) == mask.alive()


def test_alive_weights_are_counted_exactly_past_float32s_integers():
    big = Mask({"w": torch.ones(2**24 + 1)})  # a float32 sum of these ones stops at 2**24
    assert big.alive() == 2**24 + 1 and type(big.alive()) is int and big.weights_remaining() == 1.0
    pruned = prune_layer(torch.arange(2**24 + 1, dtype=torch.float32), big["w"], 0.5)
    assert torch.count_nonzero(pruned).item() == 2**24 + 1 - count_to_prune(0.5, 2**24 + 1) == 2**23


def test_to_torch_prune_puts_each_mask_on_its_weights_device():
    mask = prune_by_magnitude(lenet(), Mask.ones_like(lenet()), layer_rates(lenet(), PAPER))  # on the CPU
    model = to_torch_prune(lenet().to("meta"), mask)
    assert [getattr(model, f"fc{i}").weight_mask.device.type for i in (1, 2, 3)] == ["meta"] * 3
    assert model(torch.empty(2, 1, 28, 28, device="meta")).shape == (2, 10)


@cuda
def test_a_mask_on_the_cpu_prunes_a_model_on_the_gpu():
    cpu_model = lenet()
    mask = prune_by_magnitude(cpu_model, Mask.ones_like(cpu_model), layer_rates(cpu_model, PAPER))
    model = lenet().cuda()
    mask.apply_(model)
    assert model.fc1.weight.device.type == "cuda"
    assert torch.equal(model.fc1.weight.cpu(), cpu_model.fc1.weight * mask["fc1.weight"])
    model(torch.randn(4, 1, 28, 28, device="cuda")).sum().backward()
    mask.mask_grads_(model)
    assert torch.count_nonzero(model.fc1.weight.grad.cpu()[mask["fc1.weight"] == 0]) == 0
    to_torch_prune(model, mask)
    assert model.fc1.weight_mask.device.type == "cuda"
    out = model(torch.randn(4, 1, 28, 28, device="cuda"))
    assert out.device.type == "cuda" and from_torch_prune(model) == mask


def test_pruned_weights_stay_zero_with_sgd_momentum(mnist_small):
    model = lenet()
    mask = random_mask_like(prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, PAPER)), generator(1))
    train(model, mnist_small, TrainConfig(iterations=100, optimizer="sgd", lr=0.05), mask=mask, progress=False)
    for name, m in mask.items():
        assert torch.count_nonzero(dict(model.named_parameters())[name][m == 0]) == 0


def test_torch_prune_round_trip_keeps_masks_and_weights():
    model = lenet()
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, PAPER))
    mask.apply_(model)
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    to_torch_prune(model, mask)
    assert hasattr(model.fc1, "weight_orig") and torch.equal(model.fc1.weight_mask, mask["fc1.weight"])
    assert torch_prune.is_pruned(model)
    x = torch.randn(4, 1, 28, 28)
    out_pruned = model(x)
    back = from_torch_prune(model)
    assert back == mask
    assert not torch_prune.is_pruned(model)
    for n, p in model.named_parameters():
        assert torch.equal(p, expected[n])
    assert torch.equal(model(x), out_pruned)
    copy.deepcopy(model)  # a module still carrying prune's hooks cannot always be deep-copied


def test_from_torch_prune_reads_torchs_own_pruning():
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    torch_prune.l1_unstructured(model[0], "weight", amount=0.5)
    mask = from_torch_prune(model)
    assert mask.alive("0.weight") == 16 and torch.count_nonzero(model[0].weight) <= 16


def test_from_torch_prune_without_masks_says_so():
    with pytest.raises(ValueError, match="no torch.nn.utils.prune masks"):
        from_torch_prune(lenet())


def test_mask_save_and_load(tmp_path):
    model = lenet()
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, PAPER))
    mask.save(tmp_path / "m.pt")
    assert Mask.load(tmp_path / "m.pt") == mask
