import pytest
import torch

from lthkit.models import build_model
from lthkit.results import ArmResult
from lthkit.train import BatchOrder, TrainConfig, evaluate, resolve_device, train, train_together


def test_curve_records_every_evaluation_and_early_stop_is_minimum_validation_loss(mnist_small):
    model = build_model("lenet300", (1, 28, 28), seed=0)
    run = train(model, mnist_small, TrainConfig(iterations=250, eval_every=100), progress=False)
    curve = run.result.curve
    assert [p.iteration for p in curve] == [0, 100, 200, 250]
    best = min(curve, key=lambda p: p.val_loss)
    assert run.result.early_stop_iteration == best.iteration
    assert run.result.early_stop_test_accuracy == best.test_accuracy
    assert run.result.test_accuracy == curve[-1].test_accuracy
    assert curve[0].val_accuracy < 0.3 < 0.8 < curve[-1].val_accuracy
    assert curve[-1].train_loss < curve[0].train_loss
    val_loss, val_acc = evaluate(model, mnist_small.val)
    assert (val_loss, val_acc) == pytest.approx((curve[-1].val_loss, curve[-1].val_accuracy))


def test_same_seed_same_run_bit_for_bit(mnist_small):
    runs = []
    for _ in range(2):
        model = build_model("lenet300", (1, 28, 28), seed=7)
        runs.append((train(model, mnist_small, TrainConfig(iterations=60, eval_every=20, data_seed=3),
                           progress=False).result, model.fc1.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_each_epoch_visits_every_training_example_once():
    order = BatchOrder(train_size=130, batch_size=60, data_seed=0, device=torch.device("cpu"))
    assert order.per_epoch == 3
    epoch0 = torch.cat([order(i) for i in range(3)])
    epoch1 = torch.cat([order(i) for i in range(3, 6)])
    assert torch.equal(epoch0.sort().values, torch.arange(130))
    assert len(order(2)) == 10
    assert not torch.equal(epoch0, epoch1)


def test_batch_order_depends_only_on_the_iteration():
    """Training resumed at a rewind iteration sees the batches an uninterrupted run saw."""
    a = BatchOrder(1000, 60, 4, torch.device("cpu"))
    b = BatchOrder(1000, 60, 4, torch.device("cpu"))
    seq = [a(i) for i in range(40)]
    assert all(torch.equal(b(i), seq[i]) for i in range(25, 40))


def test_late_start_curve_begins_at_the_start_iteration(mnist_small):
    model = build_model("lenet300", (1, 28, 28))
    run = train(model, mnist_small, TrainConfig(iterations=120, eval_every=50), start_iteration=30, progress=False)
    assert [p.iteration for p in run.result.curve] == [30, 50, 100, 120]


def test_bad_training_settings_are_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        TrainConfig(iterations=10, optimizer="rmsprop")
    with pytest.raises(ValueError, match="iterations must be a positive whole number"):
        TrainConfig(iterations=0)
    with pytest.raises(ValueError, match="start_iteration 10"):
        train(build_model("lenet300", (1, 28, 28)), None, TrainConfig(iterations=10), start_iteration=10)


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


def test_a_device_that_is_not_there_is_refused_with_what_to_use(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no such CUDA GPU is available: use auto or cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")


def test_arm_result_round_trips_through_json():
    import json
    from dataclasses import asdict

    from lthkit.results import CurvePoint

    result = ArmResult.from_curve([CurvePoint(0, 2.3, 2.2, 0.1, 0.1), CurvePoint(100, 0.4, 0.3, 0.9, 0.91)])
    assert ArmResult.from_dict(json.loads(json.dumps(asdict(result)))) == result


def test_training_together_is_bit_for_bit_training_alone(mnist_small):
    """The arms of an IMP round share one loop for speed; none may end anywhere else."""
    from lthkit.masks import Mask, layer_rates, prune_by_magnitude

    def arms():
        a, b = build_model("lenet300", (1, 28, 28), seed=1), build_model("lenet300", (1, 28, 28), seed=2)
        return [a, b], [prune_by_magnitude(a, Mask.ones_like(a), layer_rates(a, {"fc": 0.6, "output": 0.3})), None]

    config = TrainConfig(iterations=70, eval_every=30, data_seed=5)
    together, masks = arms()
    runs = train_together(together, mnist_small, config, masks=masks, start_iteration=10, snapshot_at=40,
                          progress=False)
    alone, masks = arms()
    for model, mask, run in zip(alone, masks, runs):
        single = train(model, mnist_small, config, mask=mask, start_iteration=10, snapshot_at=40, progress=False)
        assert single.result == run.result
        assert all(torch.equal(single.snapshot.state[n], run.snapshot.state[n]) for n in single.snapshot.state)
    for a, b in zip(together, alone):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="2 models but 1 masks"):
        train_together(together, mnist_small, config, masks=[None])


class Killed(Exception):
    pass


def test_training_resumed_from_a_checkpoint_ends_bit_for_bit_where_uninterrupted_training_ends(mnist_small,
                                                                                                monkeypatch):
    """SGD with a warm-up, a milestone and augmentation, two networks (one pruned), a snapshot
    before the checkpoint: killed after its second checkpoint, resumed from what was saved."""
    import io

    from lthkit.masks import Mask, layer_rates, prune_by_magnitude

    def arms():
        a, b = build_model("lenet300", (1, 28, 28), seed=1), build_model("lenet300", (1, 28, 28), seed=2)
        return [a, b], [prune_by_magnitude(a, Mask.ones_like(a), layer_rates(a, {"fc": 0.6, "output": 0.3})), None]

    config = TrainConfig(iterations=70, eval_every=10, data_seed=5, optimizer="sgd", lr=0.05, momentum=0.9,
                         warmup=8, milestones=(45,), augment=True)
    whole_models, masks = arms()
    whole = train_together(whole_models, mnist_small, config, masks=masks, start_iteration=5, snapshot_at=15,
                           progress=False)

    trained, saved = [], []
    real_order = BatchOrder.__call__
    monkeypatch.setattr(BatchOrder, "__call__", lambda self, i: (trained.append(i), real_order(self, i))[1])

    def save_then_die_at_the_second(state):
        buffer = io.BytesIO()  # through torch.save and back, as a checkpoint file goes
        torch.save(state, buffer)
        saved.append(buffer.getvalue())
        if len(saved) == 2:
            raise Killed

    models, masks = arms()
    with pytest.raises(Killed):
        train_together(models, mnist_small, config, masks=masks, start_iteration=5, snapshot_at=15, progress=False,
                       checkpoint=save_then_die_at_the_second, checkpoint_every_s=0)
    state = torch.load(io.BytesIO(saved[-1]), weights_only=True)
    assert state["iteration"] == 20 and trained[-1] == 19
    trained.clear()
    models, masks = arms()  # fresh weights: everything comes from the checkpoint
    resumed = train_together(models, mnist_small, config, masks=masks, start_iteration=5, snapshot_at=15,
                             progress=False, resume=state)
    assert trained == list(range(20, 70))  # restarted at the checkpoint's iteration, not at 5
    for a, b in zip(whole, resumed):
        assert a.result == b.result
        assert all(torch.equal(a.snapshot.state[n], b.snapshot.state[n]) for n in a.snapshot.state)
    for a, b in zip(whole_models, models):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="belongs to other training \\(config"):
        train_together(arms()[0], mnist_small, TrainConfig(iterations=70, eval_every=10), masks=arms()[1],
                       start_iteration=5, snapshot_at=15, progress=False, resume=state)


def test_checkpoints_wait_for_their_wall_time(mnist_small):
    states = []
    config = TrainConfig(iterations=40, eval_every=10)
    train(build_model("lenet300", (1, 28, 28)), mnist_small, config, progress=False, checkpoint=states.append,
          checkpoint_every_s=3600)
    assert states == []
    train(build_model("lenet300", (1, 28, 28)), mnist_small, config, progress=False, checkpoint=states.append,
          checkpoint_every_s=0)
    assert [s["iteration"] for s in states] == [10, 20, 30]  # none at the end: the caller saves the result


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_learners_masked_step_trains_as_lthkits_bit_for_bit(mnist_small, optimizer):
    """``train(step=)`` runs the learner's step, with an optimiser per network: the same arithmetic as
    lthkit's one shared optimiser, weight decay included, and pruned weights stay exactly zero."""
    import copy

    from learner_solutions import masked_step_right

    from lthkit.masks import Mask, layer_rates, prune_by_magnitude
    from lthkit.settings import ConfigError

    model = build_model("lenet300", (1, 28, 28), seed=0)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.5, "output": 0.3}))
    config = TrainConfig(iterations=30, eval_every=15, optimizer=optimizer, weight_decay=1e-3)
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    a = train(ours, mnist_small, config, mask=mask, progress=False)
    b = train(theirs, mnist_small, config, mask=mask, progress=False, step=masked_step_right)
    assert all(torch.equal(x, y) for x, y in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert a.result.curve == b.result.curve
    assert all(float(theirs.get_parameter(n)[m == 0].abs().sum()) == 0 for n, m in mask.items())
    with pytest.raises(ConfigError, match="step of your own trains in the loop"):
        train(copy.deepcopy(model), mnist_small, config, mask=mask, progress=False, step=masked_step_right,
              engine="stacked")


def test_a_network_with_a_small_strided_1x1_convolution_trains_in_the_contiguous_format():
    """oneDNN's 1x1 weight gradient over 4 channels never returns in channels-last (a ResNet-20 keeping a
    quarter of its channels has one): such a network trains contiguous, and a step ends; a whole ResNet-20
    keeps the faster channels-last. The step runs in a process of its own, so a hang fails the test."""
    import subprocess
    import sys

    from lthkit.ship import channel_pruned
    from lthkit.train import channels_last_is_safe

    whole = build_model("resnet20", (3, 32, 32), seed=0)
    assert channels_last_is_safe(whole) and not channels_last_is_safe(channel_pruned(whole, (3, 32, 32), 0.25))
    script = """
import torch
from lthkit.catalogue import dataset_info
from lthkit.data import Split, Splits
from lthkit.models import build_model
from lthkit.ship import channel_pruned
from lthkit.train import LoopNetworks, TrainConfig, train
net = channel_pruned(build_model("resnet20", (3, 32, 32), seed=0), (3, 32, 32), 0.25)
g = torch.Generator().manual_seed(0)
split = lambda n: Split(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
data = Splits(dataset_info("cifar10"), split(256), split(64), split(64))
assert LoopNetworks([net], [None], data, TrainConfig(iterations=2, eval_every=2), [0]).memory_format == torch.contiguous_format
train(net, data, TrainConfig(iterations=2, eval_every=2, batch_size=128), progress=False)
print("trained")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]
