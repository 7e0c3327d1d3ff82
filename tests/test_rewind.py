import torch

from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.rewind import Snapshot, Ticket, reinitialize, rewind_to
from lthkit.train import TrainConfig, train


def test_rewound_weights_equal_the_saved_ones_bit_for_bit(mnist_small, tmp_path):
    model = build_model("lenet300", (1, 28, 28), seed=5)
    init = Snapshot.of(model)
    init.save(tmp_path / "init.pt")
    train(model, mnist_small, TrainConfig(iterations=50), progress=False)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.2, "output": 0.1}))
    rewind_to(model, Snapshot.load(tmp_path / "init.pt"), mask)
    for name, p in model.named_parameters():
        saved = init.state[name]
        if name in mask:
            assert torch.equal(p[mask[name] == 1], saved[mask[name] == 1])
            assert torch.count_nonzero(p[mask[name] == 0]) == 0
        else:
            assert torch.equal(p, saved)


def test_snapshot_at_iteration_k_equals_training_stopped_at_k(mnist_small):
    a = build_model("lenet300", (1, 28, 28), seed=1)
    run = train(a, mnist_small, TrainConfig(iterations=40, eval_every=20), snapshot_at=15, progress=False)
    b = build_model("lenet300", (1, 28, 28), seed=1)
    train(b, mnist_small, TrainConfig(iterations=15, eval_every=15), progress=False)
    assert run.snapshot.iteration == 15
    for name, p in b.state_dict().items():
        assert torch.equal(run.snapshot.state[name], p)


def test_no_optimiser_state_survives_a_rewind(mnist_small):
    """Training a rewound net gives what training a fresh copy gives: no Adam moments carried over."""
    model = build_model("lenet300", (1, 28, 28), seed=2)
    init = Snapshot.of(model)
    first = train(model, mnist_small, TrainConfig(iterations=30, eval_every=30), progress=False)
    rewind_to(model, init)
    second = train(model, mnist_small, TrainConfig(iterations=30, eval_every=30), progress=False)
    assert first.result == second.result


def test_reinitialize_keeps_the_mask_and_draws_new_weights():
    model = build_model("lenet300", (1, 28, 28), seed=0)
    init = Snapshot.of(model)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.5, "output": 0.5}))
    reinitialize(model, mask, seed=99)
    w = model.fc1.weight
    assert torch.count_nonzero(w[mask["fc1.weight"] == 0]) == 0
    assert not torch.equal(w[mask["fc1.weight"] == 1], init.state["fc1.weight"][mask["fc1.weight"] == 1])
    other = build_model("lenet300", (1, 28, 28), seed=99)
    assert torch.equal(w, other.fc1.weight * mask["fc1.weight"])


def test_ticket_save_load_rebuild_and_sparse_export(tmp_path):
    model = build_model("lenet300", (1, 28, 28), seed=3)
    init = Snapshot.of(model)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.9, "output": 0.5}))
    ticket = Ticket("lenet300", (1, 28, 28), 10, mask, init)
    ticket.save(tmp_path / "ticket.pt")
    loaded = Ticket.load(tmp_path / "ticket.pt")
    rebuilt = loaded.to_model()
    assert loaded.mask == mask
    assert torch.equal(rebuilt.fc1.weight, init.state["fc1.weight"] * mask["fc1.weight"])
    sparse = loaded.sparse_state_dict()
    assert sparse["fc1.weight"].is_sparse and sparse["fc1.weight"]._nnz() == mask.alive("fc1.weight")
    assert torch.equal(sparse["fc1.weight"].to_dense(), rebuilt.fc1.weight)
    pruned = loaded.to_torch_prune()
    assert torch.equal(pruned.fc1.weight_mask, mask["fc1.weight"])


def test_keep_signs_takes_fresh_magnitudes_and_initial_signs():
    from lthkit.rewind import keep_signs

    initial = torch.tensor([0.5, -0.2, 0.1, -0.7])
    fresh = torch.tensor([-0.3, -0.4, 0.6, 0.8])
    assert torch.equal(keep_signs(initial, fresh), torch.tensor([0.3, -0.4, 0.6, -0.8]))


def test_reinitialize_keeping_signs_is_reinit_with_the_initial_signs():
    from lthkit.rewind import reinitialize_keeping_signs

    model = build_model("lenet300", (1, 28, 28), seed=0)
    init = Snapshot.of(model)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.5, "output": 0.5}))
    signed = reinitialize_keeping_signs(build_model("lenet300", (1, 28, 28), seed=0), init.state, mask, seed=99)
    plain = reinitialize(build_model("lenet300", (1, 28, 28), seed=0), mask, seed=99)
    for name in mask:
        kept = mask[name] == 1
        w, r = signed.get_parameter(name).detach(), plain.get_parameter(name).detach()
        assert torch.count_nonzero(w[~kept]) == 0
        assert torch.equal(w[kept].abs(), r[kept].abs())
        assert torch.equal(w[kept].sign(), init.state[name][kept].sign())
        assert 0.4 < float((r[kept].sign() != w[kept].sign()).float().mean()) < 0.6
    assert torch.equal(signed.fc1.bias, plain.fc1.bias)
