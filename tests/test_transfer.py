"""lthkit.transfer: a ticket trained on another dataset or with another optimiser, beside the target's own
ticket, a random mask on the ticket's initial weights and its mask on fresh weights."""

import pytest
import torch

from conftest import _load
from lthkit.config import ConfigError, make_config
from lthkit.imp import load_ticket, load_trained, run_imp
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.results import Results
from lthkit.run_folder import RunFolder
from lthkit.seeds import generator
from lthkit.train import train
from lthkit.transfer import fit_ticket, parse_ticket_from, run_transfer


def config(**changes):
    settings = dict(dataset="mnist", model="lenet300", rounds=2, iterations=40, eval_every=20, subset=600, seed=0,
                    device="cpu", prune_rates={"fc": 0.5, "output": 0.3}, controls=())
    return make_config(**{**settings, **changes})


@pytest.fixture(scope="module")
def fashion_small():
    return _load("fashion-mnist", subset=600).with_eval_size(1000)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_small, fashion_small):
    """A source run on MNIST (seed 3) and the target's own run on Fashion-MNIST (seed 0)."""
    root = tmp_path_factory.mktemp("runs")
    run_imp(config(seed=3), root / "mnist", data=mnist_small, progress=False)
    run_imp(config(dataset="fashion-mnist"), root / "fashion", data=fashion_small, progress=False)
    return root


def test_the_transferred_ticket_is_the_source_mask_on_the_source_rewind_point(runs, fashion_small, tmp_path):
    target = config(dataset="fashion-mnist", controls=("random", "reinit"))
    results = run_transfer(target, runs / "mnist", runs / "fashion", tmp_path, data=fashion_small, progress=False)
    assert [r.round for r in results.rounds] == [0, 1, 2]
    assert list(results.rounds[0].arms) == ["ticket"]
    assert all(set(r.arms) == {"ticket", "own", "random", "reinit"} for r in results.rounds[1:])
    own = Results.load(runs / "fashion" / "results.json")
    assert results.rounds[0].arms["ticket"] == own.rounds[0].arms["ticket"]  # shared, not trained again
    assert results.rounds[2].arms["own"] == own.rounds[2].arms["ticket"]
    for r in (1, 2):
        moved, source = load_ticket(tmp_path, r), load_ticket(runs / "mnist", r)
        assert moved.mask == source.mask
        assert all(torch.equal(moved.snapshot.state[n], source.snapshot.state[n]) for n in source.snapshot.state)
    target_init = build_model("lenet300", (1, 28, 28), seed=0).state_dict()
    assert not torch.equal(load_ticket(tmp_path, 1).snapshot.state["fc1.weight"], target_init["fc1.weight"])
    assert Results.load(tmp_path / "results.json").to_dict() == results.to_dict()
    assert load_trained(tmp_path, 2).fc1.weight[source.mask["fc1.weight"] == 0].abs().sum() == 0
    alone = train(source.to_model(), fashion_small, target.training, mask=source.mask, progress=False)
    assert results.rounds[2].arms["ticket"] == alone.result  # it trained from the source's rewind point


def test_controls_keep_each_layers_count_and_the_initial_weights(runs, fashion_small, tmp_path):
    seen = {}

    def spy(model, mask, initial, trained):
        seen.update(mask=mask, initial=initial, trained=trained)
        from lthkit.transfer import transfer_ticket
        return transfer_ticket(model, mask, initial, trained)

    target = config(dataset="fashion-mnist", controls=("random", "reinit"))
    run_transfer(target, runs / "mnist", runs / "fashion", tmp_path, data=fashion_small, progress=False,
                 rounds=[2], transfer=spy)
    source = load_ticket(runs / "mnist", 2)
    trained = RunFolder(runs / "mnist").load_round(2)["trained"]
    assert Mask(seen["mask"]) == source.mask
    assert all(torch.equal(seen["initial"][n], source.snapshot.state[n]) for n in source.snapshot.state)
    assert all(torch.equal(seen["trained"][n], trained[n]) for n in trained)
    from lthkit.masks import random_mask_like
    random = random_mask_like(source.mask, generator("random-mask", 0, 2))
    assert all(random.alive(n) == source.mask.alive(n) for n in random) and random != source.mask


def test_a_ticket_moved_onto_its_own_run_trains_bit_for_bit_as_its_own(runs, mnist_small, tmp_path):
    results = run_transfer(config(seed=3), runs / "mnist", runs / "mnist", tmp_path, data=mnist_small,
                           progress=False)
    for r in (1, 2):
        assert results.rounds[r].arms["ticket"] == results.rounds[r].arms["own"]


def test_the_optimiser_can_differ(runs, mnist_small, tmp_path):
    own = tmp_path / "sgd"
    sgd = config(optimizer="sgd", lr=0.05)
    run_imp(sgd, own, data=mnist_small, progress=False)
    results = run_transfer(sgd, runs / "mnist", own, tmp_path / "t", data=mnist_small, progress=False)
    assert results.config["optimizer"] == "sgd"
    assert results.rounds[1].arms["ticket"] != results.rounds[1].arms["own"]


def test_resume_skips_finished_rounds_and_refuses_another_source(runs, fashion_small, tmp_path):
    target = config(dataset="fashion-mnist")
    first = run_transfer(target, runs / "mnist", runs / "fashion", tmp_path, data=fashion_small, progress=False,
                         rounds=[1])
    again = run_transfer(target, runs / "mnist", runs / "fashion", tmp_path, data=fashion_small, progress=False,
                         rounds=[1], resume=True)
    assert again.to_dict() == first.to_dict()
    with pytest.raises(ConfigError, match="another ticket"):
        run_transfer(target, runs / "fashion", runs / "fashion", tmp_path, data=fashion_small, progress=False,
                     rounds=[1], resume=True)
    with pytest.raises(ConfigError, match="already holds a run"):
        run_transfer(target, runs / "mnist", runs / "fashion", tmp_path, data=fashion_small, progress=False)


def test_a_ticket_that_does_not_fit_is_refused_naming_the_layer_and_both_shapes():
    ticket = build_model("lenet300", (1, 28, 28), seed=0)
    target = build_model("lenet300", (3, 32, 32), seed=1)
    with pytest.raises(ConfigError, match=r"fc1\.weight is \(300, 784\) in the ticket and \(300, 3072\) in the target"):
        fit_ticket(Mask.ones_like(ticket), ticket.state_dict(), target, generator("t"))


def test_an_output_layer_of_other_classes_takes_the_targets_own_weights_at_the_tickets_density():
    source = build_model("lenet300", (1, 28, 28), 10, seed=0)
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: (torch.rand(p.shape, generator=g) < 0.3).float() for n, p in source.named_parameters()
                 if n.endswith("weight")})
    target = build_model("lenet300", (1, 28, 28), 5, seed=1)
    fitted, state = fit_ticket(mask, source.state_dict(), target, generator("t"))
    for name in ("fc1.weight", "fc2.weight", "fc1.bias"):
        assert torch.equal(state[name], source.state_dict()[name])
    assert fitted["fc1.weight"].equal(mask["fc1.weight"])
    assert fitted["fc3.weight"].shape == (5, 100)
    assert fitted.alive("fc3.weight") == round(mask.alive("fc3.weight") / 1000 * 500)
    assert torch.equal(state["fc3.weight"], target.state_dict()["fc3.weight"])
    assert torch.equal(state["fc3.bias"], target.state_dict()["fc3.bias"])


def test_refusals_name_what_to_do(runs, fashion_small, tmp_path):
    with pytest.raises(ConfigError, match="holds no round 5"):
        run_transfer(config(dataset="fashion-mnist"), runs / "mnist", runs / "fashion", data=fashion_small,
                     rounds=[5], progress=False)
    with pytest.raises(ConfigError, match="trained with other settings"):
        run_transfer(config(dataset="fashion-mnist", iterations=60), runs / "mnist", runs / "fashion",
                     data=fashion_small, progress=False)
    with pytest.raises(ConfigError, match="keeps .* weights, the target's own ticket"):
        other = tmp_path / "other-rates"
        run_imp(config(dataset="fashion-mnist", prune_rates={"fc": 0.2, "output": 0.1}), other, data=fashion_small,
                progress=False)
        run_transfer(config(dataset="fashion-mnist", prune_rates={"fc": 0.2, "output": 0.1}), runs / "mnist", other,
                     data=fashion_small, progress=False)
    with pytest.raises(ConfigError, match="rewinds to iteration 0, the target to 10"):
        run_transfer(config(dataset="fashion-mnist", rewind_iteration=10), runs / "mnist", runs / "fashion",
                     data=fashion_small, progress=False)


def test_ticket_from_reads_a_run_and_an_optional_round():
    assert parse_ticket_from("runs/a") == (parse_ticket_from("runs/a")[0], None)
    path, r = parse_ticket_from("runs/a:7")
    assert (str(path), r) == ("runs/a", 7)


def test_the_command_line_trains_a_round_of_another_run(tmp_path, capsys):
    from lthkit.cli import main

    common = ["--subset", "600", "--iterations", "40", "--eval-every", "20", "--rounds", "2", "--eval-images", "1000",
              "--prune-rate", "fc=0.5,output=0.3", "--controls", "", "--quiet"]
    assert main(["imp", "--dataset", "mnist", "--seed", "3", "--out", str(tmp_path / "src"), *common]) == 0
    assert main(["imp", "--dataset", "fashion-mnist", "--seed", "0", "--out", str(tmp_path / "own"), *common]) == 0
    with pytest.raises(SystemExit):
        main(["imp", "--dataset", "fashion-mnist", "--ticket-from", str(tmp_path / "src"), "--out",
              str(tmp_path / "t"), *common])
    assert "--ticket-from needs --dense-from" in capsys.readouterr().err
    moved = ["imp", "--dataset", "fashion-mnist", "--seed", "0", "--ticket-from", f"{tmp_path / 'src'}:2",
             "--dense-from", str(tmp_path / "own"), "--out", str(tmp_path / "t"), *common[:-3], "--controls", "random",
             "--quiet"]
    assert main(moved) == 0
    results = Results.load(tmp_path / "t" / "results.json")
    assert [r.round for r in results.rounds] == [0, 2]
    assert set(results.rounds[1].arms) == {"ticket", "random", "own"}
    assert load_ticket(tmp_path / "t", 2).mask == load_ticket(tmp_path / "src", 2).mask
