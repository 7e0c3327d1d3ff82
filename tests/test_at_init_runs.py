"""Runs that prune at initialisation (``lthkit imp --method ...``): the same loop, rounds and
results.json as IMP, each round's mask found before training at IMP's sparsity of that round."""

import functools
import json

import pytest
import torch

from lthkit.cli import main
from lthkit.config import ConfigError, make_config
from lthkit.imp import RuleError, Rules, density_of_round, load_ticket, run_imp, ticket_costs
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.prune_at_init import prune_at_init, snip_scores
from lthkit.results import Results
from lthkit.seeds import generator


def config(**changes):
    settings = dict(dataset="mnist", model="lenet300", rounds=3, iterations=20, eval_every=10, subset=600,
                    seed=0, device="cpu", prune_rates={"fc": 0.5, "output": 0.3}, controls=())
    return make_config(**{**settings, **changes})


def masks(folder, rounds):
    return [Mask.from_state_dict(torch.load(folder / f"round_{r:02d}.pt", weights_only=True)["mask"])
            for r in rounds]


def snip_of(data, seed, n=100):
    """SNIP bound to the batch a run scores on: ``n`` training images in the seed's order."""
    picked = torch.randperm(len(data.train), generator=generator("score-images", seed))[:n]
    return functools.partial(snip_scores, images=data.train.x[picked], labels=data.train.y[picked])


@pytest.mark.parametrize("global_pruning", [False, True])
def test_the_sparsity_of_each_round_is_imps_per_layer_or_in_total(mnist_small, tmp_path, global_pruning):
    rates = {"fc": 0.5, "output": 0.5} if global_pruning else {"fc": 0.5, "output": 0.3}
    imp = config(global_pruning=global_pruning, prune_rates=rates)
    run_imp(imp, tmp_path / "imp", data=mnist_small, progress=False)
    snip = config(global_pruning=global_pruning, prune_rates=rates, method="snip")
    run_imp(snip, tmp_path / "snip", data=mnist_small, progress=False)
    model = build_model("lenet300", (1, 28, 28))
    for r, imp_mask, snip_mask in zip(range(1, 4), masks(tmp_path / "imp", range(1, 4)),
                                      masks(tmp_path / "snip", range(1, 4))):
        density = density_of_round(imp, model, r)
        if global_pruning:  # the same total, spread over the layers as each method's scores put it
            assert snip_mask.alive() == imp_mask.alive() == round(density * imp_mask.size())
            assert any(snip_mask.alive(n) != imp_mask.alive(n) for n in imp_mask)
        else:
            assert all(snip_mask.alive(n) == imp_mask.alive(n) == round(density[n] * imp_mask.size(n))
                       for n in imp_mask)
        assert snip_mask != imp_mask


def test_each_round_is_the_methods_mask_of_the_initial_weights_trained_from_them(mnist_small, tmp_path):
    run = config(method="snip", controls=("reinit", "random", "inverted"))
    results = run_imp(run, tmp_path, data=mnist_small, progress=False)
    model = build_model("lenet300", (1, 28, 28), seed=0)
    data = mnist_small.with_eval_size(None)
    for r, saved in zip(range(1, 4), masks(tmp_path, range(1, 4))):
        density = density_of_round(run, model, r)
        assert saved == prune_at_init(model, snip_of(data, 0), density, scope="layerwise")
        ticket = load_ticket(tmp_path, r)  # trained from the initial weights under that mask
        assert all(torch.equal(ticket.snapshot.state[n], p) for n, p in model.state_dict().items())
        inverted = prune_at_init(model, snip_of(data, 0), density, scope="layerwise", invert=True)
        scores = snip_of(data, 0)(model, mask=None)
        for n in saved:  # the inverted control keeps each layer's lowest scores instead of its highest
            assert inverted.alive(n) == saved.alive(n)
            assert scores[n][inverted[n] == 1].max() <= scores[n][inverted[n] == 0].min()
            assert scores[n][saved[n] == 0].max() <= scores[n][saved[n] == 1].min()
        assert set(results.rounds[r].arms) == {"ticket", "reinit", "random", "inverted"}
    assert [r.arms["ticket"].curve[0].iteration for r in results.rounds] == [0, 0, 0, 0]  # trained from 0


def test_a_collapsed_layer_is_reported_and_never_trained_and_synflow_avoids_it(mnist_small, tmp_path, monkeypatch):
    """Global magnitude pruning at initialisation to 0.05% of LeNet's weights leaves fc1, whose
    Glorot weights are the smallest, empty; 100 steps of SynFlow keep every layer alive."""
    collapsing = config(method="magnitude", global_pruning=True, prune_rates={"fc": 0.9995, "output": 0.9995},
                        rounds=1, controls=("reinit", "inverted"))
    results = run_imp(collapsing, tmp_path / "magnitude", data=mnist_small, progress=False)
    last = results.rounds[1]
    assert last.collapsed["ticket"] == last.collapsed["reinit"] == ["fc1.weight"] and "ticket" not in last.arms
    assert last.collapsed["inverted"] == ["fc3.weight"] and last.arms == {}  # the lowest magnitudes: fc1's
    assert not (tmp_path / "magnitude" / "round_01.pt").exists()
    recorded = json.loads((tmp_path / "magnitude" / "results.json").read_text())["rounds"]
    assert recorded[1]["collapsed"] == {"ticket": ["fc1.weight"], "reinit": ["fc1.weight"], "inverted": ["fc3.weight"]}
    assert "collapsed" not in recorded[0]
    assert "collapsed" in results.table().splitlines()[-1]

    import lthkit.imp_runs
    monkeypatch.setattr(lthkit.imp_runs, "train_together", lambda *a, **k: pytest.fail("a finished run trained again"))
    again = run_imp(collapsing, tmp_path / "magnitude", data=mnist_small, progress=False, resume=True)
    assert again.to_dict() == results.to_dict()
    monkeypatch.undo()

    synflow = make_config(**{**collapsing.to_dict(), "method": "synflow", "score_steps": 100, "controls": ()})
    survived = run_imp(synflow, tmp_path / "synflow", data=mnist_small, progress=False).rounds[1]
    assert survived.collapsed == {} and "ticket" in survived.arms
    assert all(v > 0 for v in survived.layer_weights_remaining.values())


def test_a_learners_score_gives_lthkits_masks_and_a_broken_one_is_named(mnist_small, tmp_path):
    def my_snip(model, images, labels, mask=None):
        weights = {n: p.detach().clone() for n, p in model.named_parameters()}
        for n, m in (mask or {}).items():
            weights[n] *= m
        for w in weights.values():
            w.requires_grad_()
        loss = torch.nn.functional.cross_entropy(torch.func.functional_call(model, weights, (images,)), labels)
        grads = dict(zip(weights, torch.autograd.grad(loss, list(weights.values()))))
        return {n: (grads[n] * weights[n]).abs() for n in dict(mask or {}) or [n for n in weights if "weight" in n]}

    run = config(method="snip", rounds=2)
    ours = run_imp(run, tmp_path / "ours", data=mnist_small, progress=False)
    theirs = run_imp(run, tmp_path / "theirs", data=mnist_small, progress=False, rules=Rules(score=my_snip))
    assert masks(tmp_path / "ours", [1, 2]) == masks(tmp_path / "theirs", [1, 2])
    assert ours.to_dict() == theirs.to_dict()
    with pytest.raises(RuleError, match="your score: scores_fn returned a score of shape"):
        run_imp(run, tmp_path / "broken", data=mnist_small, progress=False,
                rules=Rules(score=lambda model, images, labels, mask=None: {n: s.flatten() for n, s in
                                                                          my_snip(model, images, labels, mask).items()}))


def test_what_a_ticket_costs_is_every_round_up_to_it_for_imp_and_one_training_at_initialisation(mnist_small, tmp_path):
    run_imp(config(), tmp_path / "imp", data=mnist_small, progress=False)
    run_imp(config(method="synflow", score_steps=10), tmp_path / "synflow", data=mnist_small, progress=False)
    imp, synflow = ticket_costs(tmp_path / "imp"), ticket_costs(tmp_path / "synflow")
    assert [c["trainings"] for c in imp.values()] == [1, 2, 3, 4]
    assert [c["trainings"] for c in synflow.values()] == [1, 1, 1, 1]
    assert all(imp[r]["seconds"] > imp[r - 1]["seconds"] for r in (1, 2, 3))
    timings = json.loads((tmp_path / "synflow" / "timings.json").read_text())
    assert all(timings[f"round_{r:02d}"]["scoring"] > 0 for r in (1, 2, 3))
    assert synflow[2]["seconds"] == pytest.approx(timings["round_02"]["scoring"] + timings["round_02"]["ticket"],
                                                   abs=2e-3)


def test_settings_a_score_at_initialisation_cannot_use_are_refused():
    with pytest.raises(ConfigError, match="inverted control keeps a score's lowest weights"):
        config(controls=("inverted",))
    with pytest.raises(ConfigError, match="prunes at initialisation and trains from there"):
        config(method="grasp", rewind_iteration=5)
    with pytest.raises(ConfigError, match="unknown method 'snap'"):
        config(method="snap")
    assert config(method="synflow").score_steps == 100 and config(method="snip").score_steps == 1
    assert config(method="snip", score_steps=10).score_steps == 10
    assert set(config(method="snip").departures_from_paper()) >= {"method"}


def test_the_command_line_prunes_at_initialisation_into_the_same_results_shape(mnist_small, tmp_path, capsys):
    argv = ["imp", "--dataset", "mnist", "--subset", "600", "--iterations", "20", "--eval-every", "10",
            "--eval-images", "1000", "--rounds", "1", "--device", "cpu", "--quiet"]
    assert main(argv + ["--method", "grasp", "--controls", "random,inverted", "--out", str(tmp_path / "grasp")]) == 0
    assert main(argv + ["--out", str(tmp_path / "imp")]) == 0
    out = capsys.readouterr().out
    assert "cost of each ticket: round 0 1 training" in out
    grasp, imp = (Results.load(tmp_path / run / "results.json") for run in ("grasp", "imp"))
    assert grasp.config["method"] == "grasp" and imp.config["method"] == "imp"
    assert set(grasp.config) == set(imp.config) and len(grasp.rounds) == len(imp.rounds) == 2
    assert set(grasp.rounds[1].arms) == {"ticket", "random", "inverted"}
    assert grasp.rounds[1].layer_weights_remaining == imp.rounds[1].layer_weights_remaining
