"""Supermasks: the weights never change, the mask keeps what was asked, the gradient reaches the scores."""

import pytest
import torch

from lthkit.config import ConfigError
from lthkit.models import build_model
from lthkit.supermask import (SupermaskConfig, attach, finished, frozen_weights, mask_of, sampled_mask,
                              signed_constant_, supermasks, top_k_mask, train_supermask)
from lthkit.train import TrainConfig, train


def config(kind="top_k", density=0.3, **changes):
    training = changes.pop("training", TrainConfig(iterations=30, eval_every=15, optimizer="sgd", lr=0.1))
    return SupermaskConfig(kind=kind, density=density if kind == "top_k" else None, training=training, **changes)


def lenet(seed=0):
    return build_model("lenet300", (1, 28, 28), seed=seed)


def test_top_k_keeps_the_largest_absolute_scores_and_passes_the_gradient_through():
    scores = torch.tensor([0.3, -0.9, 0.1, 0.5, -0.2], requires_grad=True)
    mask = top_k_mask(scores, 0.4)
    assert torch.equal(mask.detach(), torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]))
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (mask * upstream).sum().backward()
    assert torch.equal(scores.grad, upstream * scores.detach().sign())


def test_sampled_mask_is_zero_or_one_kept_with_probability_sigmoid_of_the_score():
    torch.manual_seed(0)
    scores = torch.full((200_000,), 1.0, requires_grad=True)
    mask = sampled_mask(scores)
    assert set(mask.detach().unique().tolist()) == {0.0, 1.0}
    assert abs(float(mask.detach().mean()) - float(torch.sigmoid(torch.tensor(1.0)))) < 0.005
    mask.sum().backward()
    p = torch.sigmoid(torch.tensor(1.0))
    assert torch.allclose(scores.grad, torch.full_like(scores, float(p * (1 - p))))


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.9])
def test_a_top_k_supermask_keeps_exactly_the_fraction_asked_in_each_layer(density):
    model = attach(lenet(), config(density=density))
    mask = mask_of(model)
    for name in mask:
        assert mask.alive(name) == round(density * mask.size(name))


@pytest.mark.parametrize("optimizer,weight_decay", [("sgd", 5e-4), ("adam", 1e-2)])
@pytest.mark.parametrize("kind", ["top_k", "sampled"])
def test_training_a_supermask_never_changes_a_weight_and_keeps_the_sparsity(mnist_small, kind, optimizer,
                                                                             weight_decay):
    training = TrainConfig(iterations=30, eval_every=15, optimizer=optimizer, lr=0.1, weight_decay=weight_decay)
    model = attach(lenet(), config(kind, training=training))
    weights = frozen_weights(model)
    biases = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("bias")}
    scores = {n: s.scores.detach().clone() for n, s in supermasks(model).items()}
    train(model, mnist_small, training, progress=False)
    after = frozen_weights(model)
    assert all(torch.equal(after[n], weights[n]) for n in weights)
    assert all(torch.equal(p, biases[n]) for n, p in model.named_parameters() if n.endswith("bias"))
    assert all(not torch.equal(s.scores, scores[n]) for n, s in supermasks(model).items())
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        f"{layer}.parametrizations.weight.0.scores" for layer in ("fc1", "fc2", "fc3")]
    if kind == "top_k":
        mask = mask_of(model)
        assert all(mask.alive(n) == round(0.3 * mask.size(n)) for n in mask)


def test_a_conv_nets_supermask_trains_in_the_cpu_loops_channels_last_layout(cifar10):
    training = TrainConfig(iterations=4, eval_every=2, optimizer="sgd", lr=0.1, batch_size=8)
    model = attach(build_model("conv2", (3, 32, 32)), config(density=0.25, training=training))
    weights = frozen_weights(model)
    train(model, cifar10.with_eval_size(100), training, progress=False)
    assert supermasks(model)["features.0.weight"].scores.is_contiguous(memory_format=torch.channels_last)
    mask = mask_of(model)
    assert all(mask.alive(n) == round(0.25 * mask.size(n)) for n in mask)
    assert all(torch.equal(frozen_weights(model)[n], w) for n, w in weights.items())


@pytest.mark.parametrize("kind", ["top_k", "sampled"])
def test_a_supermask_learns(mnist_small, kind):
    from lthkit.supermask import make_supermask_config

    run = train_supermask(make_supermask_config(kind, 150, density=0.5 if kind == "top_k" else None,
                                                eval_every=50), mnist_small)
    assert run.accuracy > 0.6 and run.run.result.curve[-1].val_loss < run.run.result.curve[1].val_loss
    assert run.accuracy == run.run.result.curve[-1].test_accuracy


def test_the_network_computes_with_the_frozen_weights_under_the_mask():
    model = attach(lenet(), config()).eval()
    mask, weights = mask_of(model), frozen_weights(model)
    assert torch.equal(model.fc1.weight, weights["fc1.weight"] * mask["fc1.weight"])
    x = torch.randn(8, 1, 28, 28)
    plain = lenet()
    plain.load_state_dict({n: (weights[n] * mask[n] if n in mask else p) for n, p in plain.state_dict().items()})
    assert torch.equal(model(x), plain(x))


def test_finished_leaves_a_plain_pruned_network_computing_the_same():
    model = attach(lenet(), config("sampled")).eval()
    x = torch.randn(8, 1, 28, 28)
    before, mask, weights = model(x), mask_of(model), frozen_weights(model)
    plain = finished(model)
    assert sorted(n for n, _ in plain.named_parameters()) == [f"fc{i}.{k}" for i in (1, 2, 3) for k in ("bias", "weight")]
    assert all(p.requires_grad for p in plain.parameters())
    assert torch.equal(plain.fc2.weight, weights["fc2.weight"] * mask["fc2.weight"])
    assert torch.equal(plain(x), before)


def test_the_sampled_mask_in_evaluation_is_one_fixed_sample():
    model = attach(lenet(), config("sampled", score_init=0.5)).eval()
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(model(x), model(x)) and mask_of(model) == mask_of(model)
    fraction = mask_of(model).weights_remaining()
    assert abs(fraction - float(torch.sigmoid(torch.tensor(0.5)))) < 0.01
    model.train()
    assert not torch.equal(model(x), model(x))


def test_signed_constant_keeps_each_sign_at_the_layers_standard_deviation():
    model, original = lenet(), lenet()
    signed_constant_(model)
    for name in ("fc1.weight", "fc2.weight", "fc3.weight"):
        w, w0 = model.get_parameter(name), original.get_parameter(name)
        assert torch.equal(w.sign(), w0.sign())
        assert torch.equal(w.abs().unique(), w0.std().reshape(1))


@pytest.mark.parametrize("kind", ["top_k", "sampled"])
def test_a_supermask_survives_save_and_load(tmp_path, kind):
    model = attach(lenet(), config(kind))
    with torch.no_grad():
        for s in supermasks(model).values():
            s.scores.normal_()
    torch.save(model.state_dict(), tmp_path / "supermask.pt")
    again = attach(lenet(seed=1), config(kind, seed=1))
    again.load_state_dict(torch.load(tmp_path / "supermask.pt", weights_only=True))
    assert mask_of(again) == mask_of(model)
    assert all(torch.equal(frozen_weights(again)[n], w) for n, w in frozen_weights(model).items())


@pytest.mark.parametrize("kind", ["top_k", "sampled"])
def test_the_same_config_gives_the_same_supermask(mnist_small, kind):
    a = train_supermask(config(kind), mnist_small)
    b = train_supermask(config(kind), mnist_small)
    assert a.mask == b.mask and a.run.result == b.run.result
    c = train_supermask(config(kind, seed=1), mnist_small)
    assert c.mask != a.mask


def test_a_learners_mask_function_is_used_in_training_and_evaluation(mnist_small):
    calls = []

    def mine(scores, density):
        calls.append(density)
        return top_k_mask(scores, density)

    ours = train_supermask(config(), mnist_small)
    theirs = train_supermask(config(), mnist_small, mask_fn=mine)
    assert theirs.mask == ours.mask and theirs.run.result == ours.run.result
    assert len(calls) > 30 and set(calls) == {0.3}


def test_a_density_that_would_empty_a_layer_is_refused_before_anything_changes():
    model = lenet()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    with pytest.raises(ConfigError, match="keeps no weight of fc3.weight: layer collapse.*at least 0.001"):
        attach(model, config(density=0.0004))
    assert all(torch.equal(p, before[n]) for n, p in model.state_dict().items())
    assert mask_of(attach(model, config(density=0.0006))).alive("fc3.weight") == 1


@pytest.mark.parametrize("changes,message", [
    ({"kind": "top_k", "density": None}, "give density in"),
    ({"kind": "top_k", "density": 1.5}, "give density in"),
    ({"kind": "sampled", "density": 0.5}, "learns its own density"),
    ({"kind": "edge", "density": 0.5}, "kind"),
    ({"kind": "top_k", "density": 0.5, "weights": "kaiming"}, "weights"),
])
def test_bad_settings_are_refused_with_what_to_give(changes, message):
    with pytest.raises(ConfigError, match=message):
        SupermaskConfig(training=TrainConfig(iterations=10), **changes)
