"""Part 2 of the course: learning-rate schedules, augmentation, ResNet-20, the three ways to
retrain after pruning, and instability analysis."""

import copy

import pytest
import torch

import lthkit.imp_runs
import lthkit.stability
from lthkit.cli import build_parser, config_from_args
from lthkit.config import ConfigError, make_config
from lthkit.data import augment
from lthkit.determinism import use_deterministic
from lthkit.imp import load_ticket, run_imp
from lthkit.masks import Mask, prune_globally
from lthkit.models import build_model, prunable_layers
from lthkit.rewind import Snapshot
from lthkit.stability import (
    copy_data_seeds,
    error_along_line,
    errors_by_rewind_point,
    instability,
    interpolate,
    train_copies,
)
from lthkit.train import TrainConfig, evaluate, train


def test_learning_rate_schedule_warms_up_then_drops_at_each_milestone():
    config = TrainConfig(iterations=100, lr=0.1, optimizer="sgd", warmup=10, milestones=(50, 80))
    assert config.lr_at(0) == pytest.approx(0.01) and config.lr_at(4) == pytest.approx(0.05)
    assert config.lr_at(9) == config.lr_at(49) == pytest.approx(0.1)
    assert config.lr_at(50) == pytest.approx(0.01) and config.lr_at(99) == pytest.approx(0.001)
    assert TrainConfig(iterations=10, lr=0.3).lr_at(7) == 0.3
    with pytest.raises(ValueError, match="milestones must be increasing"):
        TrainConfig(iterations=10, milestones=(5, 3))


def test_the_schedule_reaches_the_optimiser_every_step(mnist_small):
    """With the learning rate dropped to zero after step 0, five more steps change nothing."""
    one, six = build_model("lenet300", (1, 28, 28), seed=3), build_model("lenet300", (1, 28, 28), seed=3)
    train(one, mnist_small, TrainConfig(iterations=1, eval_every=1), progress=False)
    train(six, mnist_small, TrainConfig(iterations=6, eval_every=6, milestones=(1,), gamma=0.0), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(one.parameters(), six.parameters()))
    assert not torch.equal(one.fc1.weight, build_model("lenet300", (1, 28, 28), seed=3).fc1.weight)


def test_augmentation_crops_and_flips_each_image_reproducibly():
    x = torch.randn(16, 3, 8, 8)
    same = augment(x, torch.Generator().manual_seed(1), pad=0)
    assert all(torch.equal(same[i], x[i]) or torch.equal(same[i], x[i].flip(-1)) for i in range(16))
    assert any(torch.equal(same[i], x[i].flip(-1)) for i in range(16)) and any(torch.equal(same[i], x[i]) for i in range(16))
    a = augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(2)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        crops = [padded[i, :, r:r + 8, c:c + 8] for r in range(9) for c in range(9)]
        assert any(torch.equal(a[i], crop) or torch.equal(a[i], crop.flip(-1)) for crop in crops)


def test_resnet20_is_the_cifar_resnet_and_only_its_weights_are_pruned():
    model = build_model("resnet20", (3, 32, 32))
    kinds = prunable_layers(model)
    assert sum(p.numel() for p in model.parameters()) == 272_474
    assert len(kinds) == 22 and kinds["fc.weight"] == "output"
    assert all(n.endswith(".weight") and "bn" not in n and "shortcut.1" not in n for n in kinds)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    config = make_config(model="resnet20")
    assert (config.training.optimizer, config.training.lr, config.training.batch_size, config.training.iterations) == ("sgd", 0.1, 128, 63_000)
    assert config.global_pruning and config.training.weight_decay == 1e-4 and config.training.milestones == (32_000, 48_000)
    assert config.training.augment and config.departures_from_paper() == {}


def test_a_shorter_run_scales_the_schedule_and_says_so():
    config = make_config(model="resnet20", iterations=6300)
    assert config.training.milestones == (3200, 4800)
    assert make_config(model="resnet20", iterations=3).training.milestones == (2,)  # one drop, not the same drop twice
    assert config.departures_from_paper()["milestones"] == ((3200, 4800), (32_000, 48_000))
    assert make_config(model="resnet20", iterations=6300, milestones=(100,)).training.milestones == (100,)
    with pytest.raises(ConfigError, match="milestones must be increasing"):
        make_config(model="resnet20", milestones=(5, 5))
    with pytest.raises(ConfigError, match="need retrain 'rewind'"):
        make_config(retrain="finetune")
    with pytest.raises(ConfigError, match="unknown retrain 'rewnd'"):
        make_config(retrain="rewnd", controls=())


def test_imp_on_resnet20_keeps_batch_norm_in_the_rewind_point(mnist_small, tmp_path):
    config = make_config(model="resnet20", dataset="mnist", rounds=1, iterations=6, eval_every=6, subset=600,
                         rewind_iteration=3, controls=(), device="cpu", batch_size=32)
    results = run_imp(config, tmp_path, data=mnist_small, progress=False)
    assert results.rounds[1].weights_remaining == pytest.approx(0.8, abs=1e-3)
    point = Snapshot.load(tmp_path / "rewind_point.pt")
    assert point.iteration == 3 and "bn.running_mean" in point.state
    assert not torch.equal(point.state["bn.running_mean"], torch.zeros(16))
    mask = ticket_mask(tmp_path)
    assert load_ticket(tmp_path, 1).mask == mask
    trained = torch.load(tmp_path / "round_01.pt", weights_only=True)["trained"]  # what round 1 trained
    for name, m in mask.items():
        assert torch.count_nonzero(trained[name][m == 0]) == 0, name
        assert torch.count_nonzero(trained[name][m == 1]) == m.sum(), name


def ticket_mask(folder):
    return Mask.from_state_dict(torch.load(folder / "round_01.pt", weights_only=True)["mask"])


@pytest.mark.parametrize("retrain", ["lr-rewind", "finetune"])
def test_lr_rewinding_and_fine_tuning_start_from_the_trained_weights(retrain, mnist_small, tmp_path, monkeypatch):
    starts = []
    real = lthkit.imp_runs.train_together

    def recording(models, data, config, *, masks, start_iteration=0, **kwargs):
        starts.append((models[0].state_dict(keep_vars=False), masks[0], config, start_iteration))
        starts[-1] = ({k: v.clone() for k, v in starts[-1][0].items()},) + starts[-1][1:]
        return real(models, data, config, masks=masks, start_iteration=start_iteration, **kwargs)

    monkeypatch.setattr(lthkit.imp_runs, "train_together", recording)
    config = make_config(rounds=1, iterations=40, eval_every=20, subset=600, controls=(), rewind_iteration=10,
                         milestones=(30,), retrain=retrain, device="cpu")
    run_imp(config, tmp_path, data=mnist_small, progress=False)
    (_, _, first, _), (start, mask, second, k) = starts
    trained = torch.load(tmp_path / "round_00.pt", weights_only=True)["trained"]
    assert k == 10
    for name in start:
        expected = trained[name] * mask[name] if name in mask else trained[name]
        assert torch.equal(start[name], expected), name
    if retrain == "lr-rewind":
        assert second == first
    else:
        assert second.milestones == () and second.lr == pytest.approx(first.lr_at(39)) == pytest.approx(1.2e-4)


def test_a_run_sharing_another_runs_dense_round_ends_bit_for_bit_where_training_it_would(mnist_small, tmp_path):
    base = dict(rounds=2, iterations=30, eval_every=10, subset=600, rewind_iteration=5, device="cpu")
    run_imp(make_config(controls=("reinit",), **base), tmp_path / "ticket", data=mnist_small, progress=False)
    lr_rewind = make_config(controls=(), retrain="lr-rewind", **base)
    shared = run_imp(lr_rewind, tmp_path / "shared", data=mnist_small, progress=False, dense_from=tmp_path / "ticket")
    alone = run_imp(lr_rewind, tmp_path / "alone", data=mnist_small, progress=False)
    assert shared.to_dict() == alone.to_dict()
    for name in ("rewind_point.pt", "round_00.pt", "round_02.pt"):
        a, b = (torch.load(tmp_path / run / name, weights_only=True) for run in ("shared", "alone"))
        state_a, state_b = (x["state"] if "state" in x else x["trained"] for x in (a, b))
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_b), name
    resumed = run_imp(lr_rewind, tmp_path / "shared", data=mnist_small, progress=False, resume=True,
                      dense_from=tmp_path / "ticket")
    assert resumed.to_dict() == alone.to_dict()
    to_zero = make_config(controls=(), **{**base, "rewind_iteration": 0})
    k0_shared = run_imp(to_zero, tmp_path / "k0", data=mnist_small, progress=False, dense_from=tmp_path / "ticket")
    assert k0_shared.to_dict() == run_imp(to_zero, tmp_path / "k0-alone", data=mnist_small, progress=False).to_dict()


@pytest.mark.parametrize("changes,message", [
    ({"seed": 1}, "seed: 1 here, 0 there"),
    ({"rewind_iteration": 4}, "rewind_iteration: 4 here, 5 there"),
    ({"lr": 1e-3}, "lr: 0.001 here, 0.0012 there"),
])
def test_a_dense_round_trained_otherwise_is_refused(mnist_small, tmp_path, changes, message):
    base = dict(rounds=1, iterations=20, eval_every=10, subset=600, rewind_iteration=5, controls=(), device="cpu")
    run_imp(make_config(**base), tmp_path / "first", data=mnist_small, progress=False)
    with pytest.raises(ConfigError, match=f"trained with other settings \\({message}"):
        run_imp(make_config(**{**base, **changes}), tmp_path / "second", data=mnist_small, progress=False,
                dense_from=tmp_path / "first")
    with pytest.raises(ConfigError, match="holds no finished round 0"):
        run_imp(make_config(**base), tmp_path / "third", data=mnist_small, progress=False, dense_from=tmp_path / "none")


def test_the_line_between_two_networks_starts_and_ends_at_them(mnist_small):
    a, b = build_model("lenet300", (1, 28, 28), seed=1), build_model("lenet300", (1, 28, 28), seed=2)
    mid = interpolate(a.state_dict(), b.state_dict(), 0.5)
    assert torch.allclose(mid["fc1.weight"], (a.fc1.weight + b.fc1.weight) / 2)
    errors = error_along_line(a, b, mnist_small.val, points=5)
    assert len(errors) == 5
    assert errors[0] == pytest.approx(1 - evaluate(a, mnist_small.val)[1])
    assert errors[-1] == pytest.approx(1 - evaluate(b, mnist_small.val)[1])
    assert instability([0.1, 0.3, 0.12]) == pytest.approx(0.19) and instability([0.1, 0.1]) == 0


def test_the_line_walks_through_a_learners_interpolate(mnist_small):
    """Notebook 06 passes the learner's interpolate: it is the one used, at every point of the line."""
    from learner_solutions import interpolate_right

    a, b = build_model("lenet300", (1, 28, 28), seed=1), build_model("lenet300", (1, 28, 28), seed=2)
    asked = []

    def theirs(x, y, alpha):
        asked.append(alpha)
        return interpolate_right(x, y, alpha)

    errors = error_along_line(a, b, mnist_small.val, points=5, interpolate=theirs)
    assert asked == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert errors == pytest.approx(error_along_line(a, b, mnist_small.val, points=5), abs=2e-3)
    stuck = error_along_line(a, b, mnist_small.val, points=3, interpolate=lambda x, y, alpha: x)
    assert stuck[0] == stuck[1] == stuck[2]


def test_interpolation_mixes_batch_norm_statistics_and_keeps_step_counts():
    a, b = build_model("resnet20", (3, 32, 32), seed=1).state_dict(), build_model("resnet20", (3, 32, 32), seed=2).state_dict()
    a["bn.running_var"], b["bn.running_var"] = torch.full((16,), 1.0), torch.full((16,), 3.0)
    a["bn.num_batches_tracked"], b["bn.num_batches_tracked"] = torch.tensor(7), torch.tensor(9)
    quarter = interpolate(a, b, 0.25)
    assert torch.equal(quarter["bn.running_var"], torch.full((16,), 1.5))
    assert quarter["bn.num_batches_tracked"].item() == 7
    assert torch.equal(interpolate(a, b, 0.0)["conv.weight"], a["conv.weight"])
    assert torch.equal(interpolate(a, b, 1.0)["conv.weight"], b["conv.weight"])
    with pytest.raises(ValueError, match="different parameters"):
        interpolate(a, build_model("lenet300", (1, 28, 28)).state_dict(), 0.5)


def test_copies_on_one_data_order_coincide_and_on_two_orders_differ(mnist_small):
    model = build_model("lenet300", (1, 28, 28), seed=0)
    start = Snapshot.of(model)
    config = TrainConfig(iterations=30, eval_every=30)
    same = train_copies(model, start, mnist_small, config, data_seeds=(4, 4))
    assert all(torch.equal(x, y) for x, y in zip(same[0].parameters(), same[1].parameters()))
    assert instability(error_along_line(*same, mnist_small.val, points=3)) == 0
    apart = train_copies(model, start, mnist_small, config, data_seeds=(4, 5))
    assert not torch.equal(apart[0].fc1.weight, apart[1].fc1.weight)
    assert torch.equal(model.fc1.weight, start.state["fc1.weight"])


def test_the_two_copies_draw_their_data_orders_from_the_runs_seed(mnist_small, monkeypatch):
    orders = []
    real = lthkit.stability.train_together
    monkeypatch.setattr(lthkit.stability, "train_together", lambda models, data, config, **kw: (
        orders.extend(kw["data_seeds"]), real(models, data, config, **kw))[1])
    model = build_model("lenet300", (1, 28, 28), seed=0)
    start = Snapshot.of(model)
    by_seed = {seed: train_copies(model, start, mnist_small, TrainConfig(iterations=3, eval_every=3, data_seed=seed))
               for seed in (0, 7)}
    assert orders == [*copy_data_seeds(0), *copy_data_seeds(7)]
    assert len(set(orders)) == 4 and not {0, 7} & set(orders)  # two orders per run, neither the run's own
    assert copy_data_seeds(0) == (1, 2)  # the pair notebook 06's committed outputs were made with
    assert not torch.equal(by_seed[0][0].fc1.weight, by_seed[7][0].fc1.weight)
    again = train_copies(model, start, mnist_small, TrainConfig(iterations=3, eval_every=3, data_seed=7))
    assert all(torch.equal(x.fc1.weight, y.fc1.weight) for x, y in zip(again, by_seed[7]))
    alone = copy.deepcopy(model)
    train(alone, mnist_small, TrainConfig(iterations=3, eval_every=3, data_seed=copy_data_seeds(7)[1]), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(), by_seed[7][1].state_dict().values())), \
        "trained side by side, each copy is bit for bit what it would be alone"


def test_instability_of_a_pruned_batch_norm_network_recomputes_statistics_at_each_point(mnist_small, monkeypatch):
    from torch.optim.swa_utils import update_bn

    data = mnist_small.with_eval_size(200)
    model = build_model("resnet20", (1, 28, 28), seed=0)
    mask = prune_globally(model, Mask.ones_like(model), 0.5)
    config = TrainConfig(iterations=4, eval_every=4, batch_size=32, optimizer="sgd", lr=0.05)
    points = train(model, data, config, mask=mask, snapshot_at=2, progress=False).snapshots
    with pytest.raises(ValueError, match="recompute_bn must be True, False or a positive number"):
        errors_by_rewind_point(model, points, data, config, mask=mask, recompute_bn=0)
    measured = []
    real = lthkit.stability.evaluate
    monkeypatch.setattr(lthkit.stability, "evaluate", lambda net, split: measured.append(
        {k: v.detach().clone() for k, v in net.state_dict().items()}) or real(net, split))
    lines = errors_by_rewind_point(build_model("resnet20", (1, 28, 28)), points, data, config, mask=mask,
                                   points=3, recompute_bn=300)
    assert sorted(lines) == [2] and len(lines[2]) == 3 and len(measured) == 3
    a, b = train_copies(build_model("resnet20", (1, 28, 28)), points[2], data, config, mask=mask)
    for i, state in enumerate(measured):
        for name, m in mask.items():  # the line between two pruned networks stays pruned
            assert torch.count_nonzero(state[name][m == 0]) == 0, name
        interpolated = interpolate(a.state_dict(), b.state_dict(), i / 2)
        assert torch.equal(state["conv.weight"], interpolated["conv.weight"])
        expected = copy.deepcopy(a)  # the same memory layout as the line's networks, so the same rounding
        expected.load_state_dict(interpolated)
        update_bn([data.train.x[:300]], expected)
        for stat in ("bn.running_mean", "bn.running_var", "blocks.8.bn2.running_var"):
            assert torch.allclose(state[stat], expected.state_dict()[stat], rtol=1e-5, atol=1e-7), (i, stat)
            assert not torch.allclose(state[stat], interpolated[stat], rtol=1e-3), (i, stat)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_instability_analysis_on_a_gpu_is_the_same_twice_in_deterministic_mode(mnist_small, determinism_restored):
    """A pruned ResNet-20 (cuDNN convolutions, batch norm) on CUDA, statistics recomputed at each point."""
    use_deterministic()
    data = mnist_small.with_eval_size(200).to("cuda")
    model = build_model("resnet20", (1, 28, 28), seed=0).cuda()
    mask = prune_globally(model, Mask.ones_like(model), 0.5).to("cuda")
    config = TrainConfig(iterations=6, eval_every=6, batch_size=32, optimizer="sgd", lr=0.05)
    points = train(model, data, config, mask=mask, snapshot_at=(0, 3), progress=False).snapshots
    lines = [errors_by_rewind_point(build_model("resnet20", (1, 28, 28)), points, data, config, mask=mask,
                                    points=3, recompute_bn=300) for _ in range(2)]
    assert lines[0] == lines[1] and sorted(lines[0]) == [0, 3]
    assert all(0 <= e <= 1 for errors in lines[0].values() for e in errors)


def test_one_training_keeps_every_rewind_point_asked_for_bit_for_bit(mnist_small):
    """Snapshots at several iterations equal training stopped at each of them."""
    config = TrainConfig(iterations=30, eval_every=10)
    run = train(build_model("lenet300", (1, 28, 28), seed=5), mnist_small, config, snapshot_at=(0, 7, 30),
                progress=False)
    assert sorted(run.snapshots) == [0, 7, 30]
    for k in (7, 30):
        alone = build_model("lenet300", (1, 28, 28), seed=5)
        train(alone, mnist_small, TrainConfig(iterations=k, eval_every=k), progress=False)
        assert all(torch.equal(run.snapshots[k].state[n], p) for n, p in alone.state_dict().items())
    assert torch.equal(run.snapshots[0].state["fc1.weight"], build_model("lenet300", (1, 28, 28), seed=5).fc1.weight)
    with pytest.raises(ValueError, match="read them from .snapshots"):
        run.snapshot
    with pytest.raises(ValueError, match=r"snapshot iterations \[5, 31\] must lie in \[0, 30\]"):
        train(build_model("lenet300", (1, 28, 28)), mnist_small, config, snapshot_at=(5, 31), progress=False)


def test_instability_analysis_trains_two_copies_from_each_rewind_point(mnist_small):
    model = build_model("lenet300", (1, 28, 28), seed=0)
    config = TrainConfig(iterations=20, eval_every=20)
    points = train(model, mnist_small, config, snapshot_at=(0, 10), progress=False).snapshots
    lines = errors_by_rewind_point(build_model("lenet300", (1, 28, 28)), points, mnist_small, config, points=3)
    assert sorted(lines) == [0, 10] and all(len(errors) == 3 for errors in lines.values())
    twins = train_copies(build_model("lenet300", (1, 28, 28)), points[10], mnist_small, config)
    assert lines[10] == error_along_line(*twins, mnist_small.test, points=3)


def test_command_line_takes_the_new_settings():
    args = build_parser().parse_args(["imp", "--model", "resnet20", "--retrain", "finetune", "--controls", "",
                                      "--milestones", "100,200", "--no-augment", "--no-global", "--iterations",
                                      "300", "--out", "x", "--device", "cpu"])
    config = config_from_args(args)
    assert (config.retrain, config.training.milestones, config.training.augment, config.global_pruning) == ("finetune", (100, 200),
                                                                                          False, False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["imp", "--milestones", "a,b", "--out", "x"])
