"""Stacked training: many networks in one computation, each ending where it ends trained alone.

Tolerances (float32, 2 CPU threads): the stacked products add up in another order than one
network's, so results agree to rounding, not bit for bit, and the gap grows with training as
any change of summation order does. Measured on this machine: LeNet-300-100, Adam, 100 steps,
largest weight difference 1.1e-6 and largest validation-loss difference 2.5e-7, accuracies and
early-stop iterations equal; Conv-2, Adam, 5 steps, the difference 6e-4 of the distance the
weights moved (Adam's first steps move a weight by the learning rate times the sign of its
gradient, so a gradient within rounding of 0 can flip). The tests assert weights within 1e-5,
validation losses within 1e-5 and accuracies equal for LeNet, and 1e-2 of the distance moved for
Conv-2. Where the arithmetic is the same (the elementwise optimiser step, the plain loop, a
resumed stacked run, a CUDA graph against the same step run eagerly) they ask for equality bit
for bit.
"""

import copy
import json

import pytest
import torch

from lthkit.config import ConfigError, make_config
from lthkit.imp import run_imp, run_imp_seeds
from lthkit.masks import Mask, prune_by_magnitude, random_mask_like
from lthkit.models import build_model, prunable_layers
from lthkit.stacked import StackedNetworks, choose_engine
from lthkit.train import TrainConfig, make_optimizer, train_together

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def one_thread():
    """CPU results depend on the thread count: fix it at one, as ``make test``'s workers run (the tolerances, first
    measured on two, hold on one). A second thread beside the other worker's spins against it: these tests took
    five times as long."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lenets(n=3):
    return [build_model("lenet300", (1, 28, 28), seed=s) for s in range(n)]


def masks_of(models):
    """A magnitude mask, none, and a random mask: masked, dense and masked networks side by side."""
    rates = {n: 0.8 for n in prunable_layers(models[0])}
    pruned = prune_by_magnitude(models[0], Mask.ones_like(models[0]), rates)
    return [pruned, None, random_mask_like(pruned, torch.Generator().manual_seed(1))][:len(models)]


def trained(models, data, config, engine, **kwargs):
    models = [copy.deepcopy(m) for m in models]
    runs = train_together(models, data, config, engine=engine, progress=False, **kwargs)
    return models, runs


def moved_apart(a, b, start):
    """How far two trainings of ``start`` ended apart, as a fraction of how far ``a`` moved."""
    gap = sum(((u - v) ** 2).sum() for u, v in zip(a.parameters(), b.parameters())) ** 0.5
    moved = sum(((u - w) ** 2).sum() for u, w in zip(a.parameters(), start.parameters())) ** 0.5
    return (gap / moved).item()


def test_stacked_lenets_end_where_each_ends_alone(mnist_small):
    models, config, seeds = lenets(), TrainConfig(iterations=100, eval_every=20), [0, 1, 1]
    masks = masks_of(models)
    stacked, stacked_runs = trained(models, mnist_small, config, "stacked", masks=masks, data_seeds=seeds)
    for i, (model, mask, seed) in enumerate(zip(models, masks, seeds)):
        alone, (alone_run,) = trained([model], mnist_small, TrainConfig(iterations=100, eval_every=20, data_seed=seed),
                                      "loop", masks=[mask])
        for (name, w), v in zip(alone[0].named_parameters(), stacked[i].parameters()):
            torch.testing.assert_close(v, w, rtol=0, atol=1e-5, msg=f"network {i}, {name}")
            if mask is not None and name in mask:
                assert torch.equal(v[mask[name] == 0], torch.zeros_like(v[mask[name] == 0])), "pruned weights moved"
        ours, theirs = stacked_runs[i].result, alone_run.result
        assert [p.iteration for p in ours.curve] == [p.iteration for p in theirs.curve]
        assert all(abs(a.val_loss - b.val_loss) < 1e-5 and (a.val_accuracy, a.test_accuracy) ==
                   (b.val_accuracy, b.test_accuracy) for a, b in zip(ours.curve, theirs.curve))
        assert ours.early_stop_iteration == theirs.early_stop_iteration


@pytest.fixture(scope="module")
def cifar10_small():
    from conftest import _load

    return _load("cifar10", subset=200).with_eval_size(200)


def test_stacked_conv_nets_end_where_each_ends_alone(cifar10_small):
    models = [build_model("conv2", (3, 32, 32), seed=s) for s in range(2)]
    mask = prune_by_magnitude(models[0], Mask.ones_like(models[0]), {n: 0.5 for n in prunable_layers(models[0])})
    config = TrainConfig(iterations=5, eval_every=5, lr=2e-4)
    stacked, _ = trained(models, cifar10_small, config, "stacked", masks=[mask, None], data_seeds=[0, 1])
    for i, (model, seed) in enumerate(zip(models, [0, 1])):
        alone, _ = trained([model], cifar10_small, TrainConfig(iterations=5, eval_every=5, lr=2e-4, data_seed=seed),
                           "loop", masks=[[mask, None][i]])
        assert moved_apart(alone[0], stacked[i], model) < 1e-2
    weight = stacked[0].get_parameter("features.0.weight")
    assert torch.all(weight[mask["features.0.weight"] == 0] == 0)


def test_each_stacked_network_trains_on_its_own_seeds_batches(mnist_small):
    model = lenets(1)[0]
    stacked, _ = trained([model, model], mnist_small, TrainConfig(iterations=30, eval_every=30), "stacked",
                         data_seeds=[0, 1])
    alone = {s: trained([model], mnist_small, TrainConfig(iterations=30, eval_every=30, data_seed=s), "loop")[0][0]
             for s in (0, 1)}
    assert moved_apart(alone[0], stacked[0], model) < 1e-4 and moved_apart(alone[1], stacked[1], model) < 1e-4
    assert moved_apart(alone[0], stacked[1], model) > 0.3 and moved_apart(alone[1], stacked[0], model) > 0.3


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_one_optimiser_over_stacked_weights_is_one_per_network_bit_for_bit(optimizer):
    config = TrainConfig(iterations=10, optimizer=optimizer, lr=1e-2, weight_decay=1e-3)
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(30, 20, generator=g) for _ in range(3)]
    grads = [[torch.randn(30, 20, generator=g) for _ in range(3)] for _ in range(4)]
    stacked = torch.stack(weights).requires_grad_()
    separate = [w.clone().requires_grad_() for w in weights]
    together, apart = make_optimizer([stacked], config), make_optimizer(separate, config)
    for step in grads:
        stacked.grad = torch.stack(step)
        for w, grad in zip(separate, step):
            w.grad = grad.clone()
        together.step()
        apart.step()
    assert all(torch.equal(stacked[i], separate[i]) for i in range(3))


def test_the_loop_with_several_seeds_is_each_seed_alone_bit_for_bit(mnist_small):
    models, masks = lenets(), masks_of(lenets())
    together, runs = trained(models, mnist_small, TrainConfig(iterations=40, eval_every=20), "loop", masks=masks,
                             data_seeds=[2, 0, 2])
    for i, seed in enumerate([2, 0, 2]):
        alone, (run,) = trained([models[i]], mnist_small, TrainConfig(iterations=40, eval_every=20, data_seed=seed),
                                "loop", masks=[masks[i]])
        assert all(torch.equal(a, b) for a, b in zip(alone[0].parameters(), together[i].parameters()))
        assert run.result == runs[i].result


@pytest.mark.parametrize("first,then", [("stacked", "stacked"), ("loop", "stacked"), ("stacked", "loop")])
def test_a_checkpoint_resumes_on_either_engine(mnist_small, first, then):
    """Checkpoints hold each network's weights and optimiser state by name, whatever trained it:
    resumed on the engine that made it, training ends bit for bit where it ends uninterrupted."""
    models, masks = lenets(2), masks_of(lenets(2))
    config, states = TrainConfig(iterations=40, eval_every=10), []
    kwargs = dict(masks=masks, data_seeds=[0, 1], snapshot_at=15)
    whole, whole_runs = trained(models, mnist_small, config, first, checkpoint=states.append, checkpoint_every_s=0,
                                **kwargs)
    state = next(s for s in states if s["iteration"] == 20)
    for name, m in masks[0].items():  # the gradients of pruned weights are zeroed: no Adam moments for them
        moments = state["networks"][0]["optimizer"][name]
        assert moments["exp_avg"][m == 0].abs().sum() == 0 and moments["exp_avg"][m == 1].abs().sum() > 0
    resumed, runs = trained(models, mnist_small, config, then, resume=state, **kwargs)
    for a, b, run, whole_run in zip(whole, resumed, runs, whole_runs):
        if first == then:
            assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
            assert run.result == whole_run.result
        else:
            assert all(torch.allclose(x, y, rtol=0, atol=1e-5) for x, y in zip(a.parameters(), b.parameters()))
        assert run.result.curve[:3] == whole_run.result.curve[:3]  # restored, not retrained
        assert all(torch.equal(run.snapshot.state[n], whole_run.snapshot.state[n]) for n in run.snapshot.state)


def test_the_engine_is_chosen_by_device_and_network():
    lenet, resnet = lenets(1), [build_model("resnet20", (3, 32, 32))]
    assert choose_engine("auto", lenet, torch.device("cpu"), False).name == "loop"
    cuda = choose_engine("auto", lenet, torch.device("cuda"), False)
    assert cuda.name == "loop" and "not yet run on a GPU" in cuda.why  # until gpu_checks.sh has passed on one
    graphed = choose_engine("stacked", lenet, torch.device("cuda"), False)
    assert (graphed.name, graphed.graph) == ("stacked", True)
    assert "stacked into one computation, captured as a CUDA graph" in graphed.describe()
    assert choose_engine("stacked", lenet, torch.device("cpu"), False).graph is False
    held_back = choose_engine("auto", resnet, torch.device("cuda"), False)
    assert held_back.name == "loop" and "batch norm" in held_back.why
    assert "augmentation" in choose_engine("auto", lenet, torch.device("cuda"), True).why
    with pytest.raises(ConfigError, match="cannot be trained stacked: batch norm.*use engine 'loop'"):
        choose_engine("stacked", resnet, torch.device("cpu"), False)
    with pytest.raises(ConfigError, match="differ in architecture"):
        choose_engine("stacked", lenet + [build_model("conv2", (3, 32, 32))], torch.device("cpu"), False)
    with pytest.raises(ConfigError, match="engine must be one of auto, stacked, loop"):
        choose_engine("fast", lenet, torch.device("cpu"), False)


def imp_config(**changes):
    return make_config(**{**dict(model="lenet300", rounds=2, iterations=40, eval_every=20, subset=600,
                                 device="cpu", prune_rates={"fc": 0.5, "output": 0.3}), **changes})


def test_imp_of_several_seeds_in_the_loop_is_each_seed_run_alone_bit_for_bit(mnist_small, tmp_path):
    together = run_imp_seeds(imp_config(), [0, 3], tmp_path / "seeds", data=mnist_small, progress=False,
                             engine="loop")
    for seed, results in zip([0, 3], together):
        alone = run_imp(imp_config(seed=seed), tmp_path / f"alone{seed}", data=mnist_small, progress=False)
        assert results.to_dict() == alone.to_dict()
        assert (tmp_path / "seeds" / f"seed{seed}" / "results.json").read_bytes() == \
            (tmp_path / f"alone{seed}" / "results.json").read_bytes()
        ours = torch.load(tmp_path / "seeds" / f"seed{seed}" / "round_02.pt", weights_only=True)
        theirs = torch.load(tmp_path / f"alone{seed}" / "round_02.pt", weights_only=True)
        assert all(torch.equal(ours["trained"][n], theirs["trained"][n]) for n in theirs["trained"])


def test_stacked_imp_of_several_seeds_matches_separate_runs_to_tolerance(mnist_small, tmp_path):
    stacked = run_imp_seeds(imp_config(), [0, 1], tmp_path / "stacked", data=mnist_small, progress=False,
                            engine="stacked")
    for seed, results in zip([0, 1], stacked):
        alone = run_imp(imp_config(seed=seed), tmp_path / f"alone{seed}", data=mnist_small, progress=False)
        assert results.config == alone.config
        for ours, theirs in zip(results.rounds, alone.rounds):
            assert ours.weights_remaining == theirs.weights_remaining and list(ours.arms) == list(theirs.arms)
            for arm in theirs.arms:
                a, b = ours.arms[arm], theirs.arms[arm]
                assert a.early_stop_iteration == b.early_stop_iteration, (ours.round, arm)
                assert abs(a.early_stop_test_accuracy - b.early_stop_test_accuracy) <= 0.002, (ours.round, arm)
                assert all(abs(p.val_loss - q.val_loss) < 1e-4 for p, q in zip(a.curve, b.curve))
        timings = json.loads((tmp_path / "stacked" / f"seed{seed}" / "timings.json").read_text())
        assert timings["training"]["round_01"] == \
            "6 networks: training the networks of each step stacked into one computation (asked for)"
        trained_net = torch.load(tmp_path / "stacked" / f"seed{seed}" / "round_02.pt", weights_only=True)
        for name, m in trained_net["mask"].items():
            assert torch.all(trained_net["trained"][name][m == 0] == 0)


def test_a_killed_run_of_several_seeds_resumes_each_seed_from_its_own_checkpoint(mnist_small, tmp_path, monkeypatch):
    from lthkit.train import BatchOrder

    config = imp_config(eval_every=10)
    whole = run_imp_seeds(config, [0, 1], tmp_path / "whole", data=mnist_small, progress=False, engine="loop")
    calls, real = [], BatchOrder.__call__

    def dies(self, i):
        calls.append(i)
        if len(calls) == 2 * (40 + 25):  # two seeds' batches a step: round 1, iteration 25
            raise KeyboardInterrupt
        return real(self, i)

    monkeypatch.setattr(BatchOrder, "__call__", dies)
    with pytest.raises(KeyboardInterrupt):
        run_imp_seeds(config, [0, 1], tmp_path / "cut", data=mnist_small, progress=False, engine="loop",
                      checkpoint_every_s=0)
    for seed in (0, 1):
        saved = torch.load(tmp_path / "cut" / f"seed{seed}" / "checkpoint.pt", weights_only=True)
        assert (saved["round"], saved["training"]["iteration"]) == (1, 20)
        assert [n["data_seed"] for n in saved["training"]["networks"]] == [seed] * 3
    monkeypatch.setattr(BatchOrder, "__call__", real)
    resumed = run_imp_seeds(config, [0, 1], tmp_path / "cut", data=mnist_small, progress=False, engine="loop",
                            resume=True)
    assert [r.to_dict() for r in resumed] == [r.to_dict() for r in whole]
    alone = run_imp(config.__class__.from_dict({**config.to_dict(), "seed": 1}), tmp_path / "cut" / "seed1",
                    data=mnist_small, progress=False, resume=True)
    assert alone.to_dict() == whole[1].to_dict()  # each seed's folder is a whole run of its own


def test_seeds_and_engines_are_checked_before_any_work(mnist_small, tmp_path):
    for bad in ([], [0, 0], [-1], [True]):
        with pytest.raises(ConfigError, match="seeds must be different whole numbers"):
            run_imp_seeds(imp_config(), bad, tmp_path, data=mnist_small, progress=False)
    with pytest.raises(ConfigError, match="engine must be one of auto, stacked, loop, got 'fast'"):
        run_imp(imp_config(), tmp_path / "run", data=mnist_small, progress=False, engine="fast")
    assert not (tmp_path / "run").exists()


def test_stacked_evaluation_is_each_networks_own(mnist_small):
    models, masks = lenets(), masks_of(lenets())
    nets = StackedNetworks(models, masks, mnist_small.train.x, mnist_small.train.y, [0, 1, 2],
                           lambda p, capturable: make_optimizer(p, TrainConfig(iterations=1)), graph=False)
    nets.eval_chunk = 300  # several chunks of the 1,000 images
    losses, accuracies = nets.measure(mnist_small.val)
    from lthkit.train import evaluate
    for model, mask, loss, accuracy in zip(models, masks, losses, accuracies):
        alone = copy.deepcopy(model)
        if mask is not None:
            mask.apply_(alone)
        assert (loss, accuracy) == pytest.approx(evaluate(alone, mnist_small.val), rel=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_warm_up_before_a_graph_capture_is_undone_exactly(mnist_small, optimizer):
    """Capturing warms up with real steps; undone in place, they change nothing that follows (checked
    here on the CPU, where the same steps run without a graph): Adam's moments and step count, and
    SGD's momentum, back to what a first step starts from."""
    config = TrainConfig(iterations=10, optimizer=optimizer, lr=0.01)

    def stack():
        return StackedNetworks(lenets(2), masks_of(lenets(2)), mnist_small.train.x, mnist_small.train.y, [0, 1],
                               lambda p, capturable: make_optimizer(p, config, capturable=capturable), graph=False)

    batches = [{0: torch.arange(i, 600, 10)[:60], 1: torch.arange(i + 1, 600, 10)[:60]} for i in range(5)]
    warmed, fresh = stack(), stack()
    saved = warmed._saved_state()
    for _ in range(3):
        warmed.optimizer.zero_grad(set_to_none=True)
        warmed._train_step(torch.stack([batches[0][0], batches[0][1]]))
    warmed._restore_state(saved)
    for step in batches:
        assert torch.equal(warmed.step(step), fresh.step(step))
    assert all(torch.equal(warmed.params[n], fresh.params[n]) for n in warmed.names)


@CUDA
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a capture that failed and fell back to eager training
def test_cuda_graph_replays_the_eager_stacked_step_bit_for_bit(mnist_small):
    """590 training images: every epoch ends with a batch of 50, so a second graph is captured; the
    schedule's milestone changes the learning rate the graphs read."""
    from lthkit.data import Split, Splits

    data = mnist_small.to("cuda")
    data = Splits(data.info, Split(data.train.x[:590], data.train.y[:590]), data.val, data.test)
    models, config = lenets(), TrainConfig(iterations=60, eval_every=20, milestones=(30,))
    masks = masks_of(models)
    graphed = choose_engine("stacked", models, torch.device("cuda"), False)
    eager = type(graphed)("stacked", False, "test")
    a, runs_a = trained(models, data, config, graphed, masks=masks, data_seeds=[0, 1, 2])
    b, runs_b = trained(models, data, config, eager, masks=masks, data_seeds=[0, 1, 2])
    assert all(torch.equal(x, y) for m, n in zip(a, b) for x, y in zip(m.parameters(), n.parameters()))
    assert [r.result for r in runs_a] == [r.result for r in runs_b]
    loop, _ = trained(models, data, config, "loop", masks=masks, data_seeds=[0, 1, 2])
    assert all(moved_apart(x, y, m.cuda()) < 1e-2 for x, y, m in zip(loop, a, models))
    for model, mask in zip(a, masks):
        for name, m in (mask or {}).items():
            assert torch.all(model.get_parameter(name)[m.cuda() == 0] == 0)


@CUDA
def test_cuda_graphs_are_captured_once_per_batch_shape(mnist_small):
    data = mnist_small.to("cuda")
    nets = StackedNetworks(lenets(2), [None, None], data.train.x[:590], data.train.y[:590], [0, 1],
                           lambda p, capturable: make_optimizer(p, TrainConfig(iterations=1), capturable=capturable),
                           graph=True)
    rows = torch.arange(590, device="cuda")
    for start in (0, 60, 540, 0):
        batch = rows[start:start + 60]
        nets.step({0: batch, 1: batch})
    assert sorted(shape[1] for shape in nets.graphs) == [50, 60] and nets.graph
