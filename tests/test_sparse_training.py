"""Dynamic sparse training (lthkit.dynamic_masks, lthkit.sparse_training): per-layer densities, the update
schedule, each update's drop-and-grow, the loop's invariants over a real training, and the run saved as a round."""

import json
import math

import pytest
import torch

from lthkit.cli import main
from lthkit.config import make_config
from lthkit.dynamic_masks import (drop_and_grow, layer_counts, layer_densities, moved_count, rigl_update, set_update,
                                  update_fraction, update_iterations)
from lthkit.export import export_run
from lthkit.imp import load_ticket, load_trained, ticket_costs
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.results import Results
from lthkit.sparse_training import (SparseConfig, SparseUpdateError, load_sparse_run, run_sparse, train_sparse)
from lthkit.train import TrainConfig, evaluate

SIZES = {"fc1.weight": 784 * 300, "fc2.weight": 300 * 100, "fc3.weight": 100 * 10}


def lenet(seed=0):
    return build_model("lenet300", (1, 28, 28), seed=seed)


# --- per-layer densities --------------------------------------------------------------------------------


def test_erk_gives_each_layer_a_density_proportional_to_its_fan_sum_over_its_size():
    densities = layer_densities(lenet(), 0.05, "erk")
    raw = {"fc1.weight": (784 + 300) / SIZES["fc1.weight"], "fc2.weight": 400 / SIZES["fc2.weight"],
           "fc3.weight": 110 / SIZES["fc3.weight"]}
    ratios = {n: densities[n] / raw[n] for n in raw}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))
    assert sum(densities[n] * SIZES[n] for n in SIZES) == pytest.approx(0.05 * sum(SIZES.values()))
    assert densities["fc1.weight"] < densities["fc2.weight"] < densities["fc3.weight"]


def test_erk_makes_a_layer_that_would_pass_density_one_dense_and_rescales_the_rest():
    densities = layer_densities(lenet(), 0.5, "erk")
    assert densities["fc3.weight"] == 1.0 and densities["fc2.weight"] <= 1.0
    assert sum(densities[n] * SIZES[n] for n in SIZES) == pytest.approx(0.5 * sum(SIZES.values()))


def test_uniform_keeps_the_same_fraction_of_every_layer_and_counts_round_halves_up():
    assert set(layer_densities(lenet(), 0.1, "uniform").values()) == {0.1}
    counts = layer_counts(lenet(), 0.0025, "uniform")
    assert counts == {"fc1.weight": 588, "fc2.weight": 75, "fc3.weight": 3}  # 2.5 rounds to 3


# --- the schedule ---------------------------------------------------------------------------------------


def test_the_update_fraction_decays_on_a_cosine_and_stops_at_the_end():
    assert update_fraction(0, 0.3, 750) == pytest.approx(0.3)
    assert update_fraction(375, 0.3, 750) == pytest.approx(0.15)
    assert update_fraction(250, 0.3, 750) == pytest.approx(0.15 * (1 + math.cos(math.pi / 3)))
    assert update_fraction(750, 0.3, 750) == 0.0 and update_fraction(900, 0.3, 750) == 0.0


def test_updates_come_every_delta_t_steps_and_none_from_the_end_fraction_on():
    assert update_iterations(1000, 100, 0.75) == [100, 200, 300, 400, 500, 600, 700]
    assert update_iterations(1000, 100, 1.0) == [100, 200, 300, 400, 500, 600, 700, 800, 900]


def test_no_more_connections_move_than_there_are_dead_positions():
    assert moved_count(0.3, 10, 100) == 3 and moved_count(0.25, 10, 100) == 3  # 2.5 rounds up
    assert moved_count(0.3, 95, 100) == 5


# --- one layer's drop and grow ---------------------------------------------------------------------------


def layer_case():
    """A layer whose largest gradients sit on alive weights and on the weights to be dropped: an update that
    grows among them, or ranks the signed gradient, picks other positions than RigL."""
    weight = torch.tensor([[0.5, -0.01, 0.0, 0.0], [0.0, 0.3, -0.02, 0.0], [0.0, 0.0, 0.0, 0.7]])
    mask = (weight != 0).float()
    grad = torch.tensor([[9.0, 8.0, 0.1, -5.0], [0.2, 7.0, 6.0, 0.3], [-4.0, 0.4, 3.0, 9.5]])
    state = {"step": torch.tensor(10.0), "exp_avg": torch.full((3, 4), 0.5), "exp_avg_sq": torch.full((3, 4), 0.25)}
    return weight, grad, mask, state


def test_rigl_drops_the_smallest_magnitudes_and_grows_the_largest_absolute_gradients_among_dead_positions():
    weight, grad, mask, state = layer_case()
    old = mask.clone()
    new = rigl_update(weight, grad, mask, 2, state)
    assert torch.equal(mask, old), "the given mask is left as it is"
    dropped, grown = (old == 1) & (new == 0), (old == 0) & (new == 1)
    assert dropped.nonzero().tolist() == [[0, 1], [1, 2]]
    assert grown.nonzero().tolist() == [[0, 3], [2, 0]]  # |-5| and |-4|: the sign does not matter
    assert int(new.sum()) == int(old.sum())
    assert not bool((dropped & grown).any())


def test_grown_weights_start_at_zero_with_their_optimiser_state_reset_and_the_rest_kept():
    weight, grad, mask, state = layer_case()
    weight = weight.clone()
    weight[0, 3] = 0.123  # a dead position holding a stale value: growing must zero it
    before = weight.clone()
    new = rigl_update(weight, grad, mask, 2, state)
    grown = (mask == 0) & (new == 1)
    kept = (mask == 1) & (new == 1)
    assert bool((weight[grown] == 0).all()) and bool((weight[(mask == 1) & (new == 0)] == 0).all())
    assert torch.equal(weight[kept], before[kept])
    for key in ("exp_avg", "exp_avg_sq"):
        assert bool((state[key][grown] == 0).all()) and bool((state[key][~grown] != 0).all())
    assert state["step"] == 10.0


def test_a_just_dropped_connection_is_never_grown_back_in_the_same_update():
    weight = torch.tensor([0.01, 0.5, 0.0, 0.0])
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])
    grad = torch.tensor([100.0, 0.0, 1.0, 2.0])  # the dropped weight has the largest gradient
    new = rigl_update(weight, grad, mask, 1, {})
    assert new.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_set_grows_at_random_among_dead_positions_and_the_same_generator_grows_the_same():
    weight, grad, mask, _ = layer_case()
    grown = []
    for seed in (0, 0, 1):
        new = set_update(weight.clone(), mask, 3, {}, torch.Generator().manual_seed(seed))
        assert int(new.sum()) == int(mask.sum()) and not bool(((mask == 1) & (new == 1) & (weight.abs() < 0.05)).any())
        grown.append(((mask == 0) & (new == 1)).nonzero().tolist())
    assert grown[0] == grown[1] != grown[2]


def test_drop_and_grow_refuses_to_move_more_than_a_layer_can():
    with pytest.raises(ValueError, match="cannot move"):
        drop_and_grow(torch.ones(4), torch.ones(4), torch.tensor([1.0, 1.0, 1.0, 0.0]), 2, {})


# --- a real training ---------------------------------------------------------------------------------------


TRAINING = TrainConfig(iterations=120, eval_every=40, batch_size=60)


def watched(method, mnist_small, seed=0, **sparse):
    """A training of ``method`` with every update's masks, weights and Adam state recorded."""
    seen = []

    def on_update(it, model, old, new, optimizer):
        params = dict(model.named_parameters())
        seen.append({"iteration": it, "old": {n: m.clone() for n, m in old.items()},
                     "new": {n: m.clone() for n, m in new.items()},
                     "weights": {n: params[n].detach().clone() for n in new},
                     "grads": {n: params[n].grad.detach().clone() for n in new},
                     "state": {n: {k: v.clone() for k, v in optimizer.state[params[n]].items()} for n in new}})

    config = SparseConfig(method=method, density=0.05, update_every=20, **sparse)
    run = train_sparse(lenet(seed), mnist_small, TRAINING, config, seed=seed, on_update=on_update)
    return run, seen


@pytest.fixture(scope="module")
def rigl_run(mnist_small):
    return watched("rigl", mnist_small)


def test_every_update_keeps_each_layers_count_exactly_and_moves_what_the_cosine_asks(rigl_run):
    run, seen = rigl_run
    counts = layer_counts(lenet(), 0.05, "erk")
    assert [u["iteration"] for u in seen] == [u.iteration for u in run.updates] == [20, 40, 60, 80]
    for update, record in zip(seen, run.updates):
        fraction = update_fraction(update["iteration"], 0.3, 0.75 * 120)
        assert record.fraction == pytest.approx(fraction)
        for name, m in update["new"].items():
            assert int(m.sum()) == counts[name]
            grown = (update["old"][name] == 0) & (m == 1)
            assert int(grown.sum()) == record.moved[name] == moved_count(fraction, counts[name], m.numel()) > 0
    assert {n: run.mask.alive(n) for n in counts} == counts == {n: run.initial_mask.alive(n) for n in counts}


def test_in_training_grown_weights_are_zero_with_zero_moments_and_dropped_and_grown_are_disjoint(rigl_run):
    _, seen = rigl_run
    for update in seen:
        for name, new in update["new"].items():
            old = update["old"][name]
            grown, dropped = (old == 0) & (new == 1), (old == 1) & (new == 0)
            assert int(grown.sum()) > 0 and not bool((grown & dropped).any())
            assert bool((update["weights"][name][grown] == 0).all())
            for key in ("exp_avg", "exp_avg_sq"):
                assert bool((update["state"][name][key][grown] == 0).all())
                assert bool((update["state"][name][key][(old == 1) & (new == 1)] != 0).any())


def test_the_mask_stops_moving_at_the_end_fraction_and_dead_weights_stay_zero(rigl_run):
    run, seen = rigl_run
    assert max(u.iteration for u in run.updates) < 0.75 * 120
    assert run.mask == Mask({n: m.cpu() for n, m in seen[-1]["new"].items()})
    params = dict(run.model.named_parameters())
    for name, m in run.mask.items():
        assert bool((params[name].detach().cpu()[m == 0] == 0).all())


def test_the_same_seed_gives_the_same_masks_and_curve_and_another_seed_does_not(mnist_small, rigl_run):
    run, seen = rigl_run
    again, seen_again = watched("rigl", mnist_small)
    assert again.result == run.result and again.mask == run.mask and again.initial_mask == run.initial_mask
    assert all(torch.equal(a["new"][n], b["new"][n]) for a, b in zip(seen, seen_again) for n in a["new"])
    other, _ = watched("rigl", mnist_small, seed=1)
    assert other.initial_mask != run.initial_mask and other.result.curve != run.result.curve


def test_rigl_grows_where_the_dense_gradient_is_largest_and_set_does_not(mnist_small, rigl_run):
    _, seen = rigl_run
    _, set_seen = watched("set", mnist_small)
    for rigl, set_ in zip(seen, set_seen):
        for name in ("fc1.weight", "fc2.weight"):
            dead = rigl["old"][name] == 0
            grown = dead & (rigl["new"][name] == 1)
            score = rigl["grads"][name].abs()
            assert float(score[grown].min()) >= float(score[dead & ~grown].max())
            assert float(rigl["grads"][name][grown].min()) < 0 < float(rigl["grads"][name][grown].max())
            set_grown = (set_["old"][name] == 0) & (set_["new"][name] == 1)
            assert float(set_["grads"][name].abs()[set_grown].mean()) < float(score[grown].mean()) / 2


def test_static_never_moves_and_set_moves_as_many_as_rigl(mnist_small, rigl_run):
    static, seen = watched("static", mnist_small)
    assert static.updates == [] and seen == [] and static.mask == static.initial_mask == rigl_run[0].initial_mask
    set_run, _ = watched("set", mnist_small)
    assert [u.moved for u in set_run.updates] == [u.moved for u in rigl_run[0].updates]
    assert set_run.mask != rigl_run[0].mask


def test_a_learners_update_that_breaks_an_invariant_stops_the_run_with_its_name(mnist_small):
    def grows_alive(weight, grad, mask, count, state):
        return mask.clone()  # moves nothing

    def grows_at_the_gradient_step(weight, grad, mask, count, state):
        new = rigl_update(weight, grad, mask, count, state)
        weight[(mask == 0) & (new == 1)] = -1e-3 * grad[(mask == 0) & (new == 1)]
        return new

    def flattened(weight, grad, mask, count, state):
        return rigl_update(weight, grad, mask, count, state).flatten()

    config = SparseConfig(density=0.05, update_every=20)
    for rule, said in ((grows_alive, "move exactly"), (grows_at_the_gradient_step, "grown weights .* non-zero"),
                       (flattened, "not a mask of shape")):
        with pytest.raises(SparseUpdateError, match=said):
            train_sparse(lenet(), mnist_small, TrainConfig(iterations=40, eval_every=40), config, seed=0, update=rule)


# --- saved as a round ------------------------------------------------------------------------------------------


def test_a_run_is_saved_as_a_round_that_load_trained_export_and_ticket_costs_read(mnist_small, tmp_path):
    config = make_config(model="lenet300", iterations=60, eval_every=30, subset=600, eval_images=1000, device="cpu")
    sparse = SparseConfig(density=0.05, update_every=20)
    run = run_sparse(config, sparse, tmp_path / "rigl", data=mnist_small, progress=False)
    results = Results.load(tmp_path / "rigl" / "results.json")
    assert results.config["method"] == "rigl" and results.config["density"] == 0.05
    assert len(results.rounds) == 1 and results.rounds[0].arms["ticket"] == run.result
    assert results.rounds[0].weights_remaining == pytest.approx(run.mask.weights_remaining())
    trained = load_trained(tmp_path / "rigl", 0)
    assert evaluate(trained, mnist_small.test)[1] == run.result.test_accuracy
    ticket = load_ticket(tmp_path / "rigl", 0)
    assert ticket.mask == run.mask
    report = export_run(tmp_path / "rigl", 0, tmp_path / "rigl.pt", data=mnist_small)
    assert report["kept_weights"] == run.mask.alive() and report["test_accuracy"] == run.result.test_accuracy
    assert ticket_costs(tmp_path / "rigl")[0]["trainings"] == 1
    again = load_sparse_run(tmp_path / "rigl")
    assert again.updates == run.updates and again.initial_mask == run.initial_mask and again.result == run.result
    with pytest.raises(Exception, match="already holds this run"):
        run_sparse(config, sparse, tmp_path / "rigl", data=mnist_small, progress=False)
    assert run_sparse(config, sparse, tmp_path / "rigl", data=mnist_small, resume=True).result == run.result


def test_lthkit_train_sparse_runs_from_the_command_line_and_lthkit_export_takes_it(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["train", "--sparse", "set", "--density", "0.05", "--iterations", "40", "--eval-every", "20",
                 "--subset", "600", "--eval-images", "1000", "--update-every", "10", "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "set at 5.00% of the weights" in printed and "mask updates moved" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["method"] == "set" and saved["config"]["update_every"] == 10
    assert len(json.loads((out / "mask_updates.json").read_text())) == 2  # steps 10 and 20, before 0.75 * 40
    assert main(["export", str(out), "--round", "0", "--out", str(tmp_path / "set.pt"), "--no-accuracy"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--sparse", "rigl", "--density", "1.5", "--out", str(tmp_path / "bad")])


def test_each_update_records_how_much_of_the_initial_mask_is_left_and_how_many_positions_were_ever_alive(rigl_run):
    run, seen = rigl_run
    total = run.initial_mask.alive()
    ever = {n: m.clone() for n, m in run.initial_mask.items()}
    for record, update in zip(run.updates, seen):
        for n, m in update["new"].items():
            ever[n] = torch.maximum(ever[n], m.cpu())
        assert record.from_start == sum(int((m.cpu() * run.initial_mask[n]).sum()) for n, m in update["new"].items())
        assert record.ever_alive == sum(int(e.sum()) for e in ever.values())
    assert total > run.updates[0].from_start >= run.updates[-1].from_start
    assert run.updates[-1].ever_alive > total
