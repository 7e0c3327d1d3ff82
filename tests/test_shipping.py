"""Notebook 10's tickets and table: the paper's sparsity in fewer rounds, every form measured and consistent."""

import pytest
import torch

from lthkit import course
from lthkit.config import make_config
from lthkit.course import shipping
from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.ship import channel_pruned


def settings(budget):
    return course.notebook_settings("10", budget, seed=0, device="cpu", output_dir="unused", iterations=None,
                                    cifar_iterations=None, rewind_iteration=None, subset=None, eval_every=None,
                                    eval_images=None, table_images=None)


def test_compressed_rates_reach_the_papers_sparsity_in_fewer_rounds():
    rates = shipping.compressed_rates({"fc": 0.2, "output": 0.1}, 15, 5)
    assert (1 - rates["fc"]) ** 5 == pytest.approx(0.8 ** 15) and (1 - rates["output"]) ** 5 == pytest.approx(0.9 ** 15)
    assert shipping.compressed_rates({"conv": 0.2}, 8, 8) == {"conv": pytest.approx(0.2)}


@pytest.mark.parametrize("budget", ["test", "classroom", "paper"])
def test_each_ticket_reaches_its_papers_sparsity(budget):
    s = settings(budget)
    for model, rounds in zip(s["models"], s["ticket_rounds"]):
        config = shipping.ticket_config(s, model)
        paper = make_config(model=model)
        assert config.rounds == rounds and config.global_pruning == paper.global_pruning
        for kind, rate in config.prune_rates.items():
            assert (1 - rate) ** rounds == pytest.approx((1 - paper.prune_rates[kind]) ** shipping.PAPER_ROUNDS[model])
        assert config.rewind_iteration == (s["rewind_iteration"] if model == "resnet20" else 0)
        assert config.eval_images == (None if model == "lenet300" else s["eval_images"])
    assert (0.8 ** shipping.PAPER_ROUNDS["lenet300"], 0.8 ** shipping.PAPER_ROUNDS["resnet20"]) == pytest.approx(
        (0.035, 0.168), abs=0.001)
    if budget == "paper":
        assert shipping.ticket_config(s, "conv2").training.iterations == 20000
        assert shipping.ticket_config(s, "lenet300").training.iterations == 50000


def ticket(rate=0.9):
    model = build_model("lenet300", (1, 28, 28), seed=0)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": rate, "output": rate / 2}))
    mask.apply_(model)
    return model.eval(), mask


def test_every_form_is_measured_and_the_forms_that_compute_the_ticket_agree(mnist_small, tmp_path, capsys):
    dense, (model, mask) = build_model("lenet300", (1, 28, 28), seed=1).eval(), ticket()
    channels = {0.5: channel_pruned(dense, (1, 28, 28), 0.5)}
    forms = shipping.shipping_forms(dense, model, mask, (1, 28, 28), tmp_path, model_name="lenet300",
                                    channel_pruned=channels, threads=1)
    shipping.measure(forms, mnist_small.test, (1, 28, 28), batches=(1, 8), repeats=2, min_run_time=0.01, threads=1)
    by = {f.name: f for f in forms}
    assert list(by) == ["dense network", "ticket, masked", "ticket, compact file", "ticket, LZMA file",
                        "ticket, CSR kernels", "ticket, onnxruntime", "ticket, int8 (PyTorch)",
                        "ticket, int8 (onnxruntime)", "channels kept 50%"]
    assert by["ticket, masked"].bytes > by["dense network"].bytes > 5 * by["ticket, compact file"].bytes
    assert by["ticket, compact file"].bytes == (tmp_path / "ticket.pt").stat().st_size
    assert by["ticket, LZMA file"].model is None and by["ticket, LZMA file"].accuracy is None
    same = {by[n].accuracy for n in ("ticket, masked", "ticket, compact file", "ticket, CSR kernels",
                                     "ticket, onnxruntime")}
    assert len(same) == 1, "the compact file, the CSR kernels and onnxruntime compute the masked ticket"
    assert abs(by["ticket, int8 (PyTorch)"].accuracy - by["ticket, masked"].accuracy) < 0.05
    for form in forms:
        if form.model is not None:
            assert set(form.ms) == {1, 8} and all(len(r) == 2 for r in form.repeats.values())
            assert form.ms[8] == min(form.repeats[8]) > 0
    shipping.print_table("lenet300", forms)
    printed = capsys.readouterr().out
    assert all(f.name in printed for f in forms) and printed.count("1.00×") >= 2
    assert forms[0].to_dict()["ms"] == forms[0].ms


def test_a_channel_pruned_network_is_trained_once_and_read_back(mnist_small, tmp_path, monkeypatch):
    dense = build_model("lenet300", (1, 28, 28), seed=0)
    config = make_config(model="lenet300", iterations=20, eval_every=10, device="cpu")
    first = shipping.trained_channel_pruned(dense, 0.25, config, mnist_small, tmp_path)
    assert first.fc1.out_features == 75 and len(list(tmp_path.glob("channels-0.25-*.pt"))) == 1
    assert not torch.equal(first.fc1.weight, dense.fc1.weight[:75])

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of read back")

    monkeypatch.setattr("lthkit.train.train", no_training)
    again = shipping.trained_channel_pruned(dense, 0.25, config, mnist_small, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_the_table_measures_on_the_first_test_images():
    split = shipping.table_split(make_config(model="lenet300"), 300)
    assert len(split) == 300 and split.x.device.type == "cpu"
    assert len(shipping.table_split(make_config(model="lenet300"), None)) == 10000


def _form(name, accuracy, size, ms1, ms64, repeats=(1.0,)):
    form = shipping.Shipped(name, None, size, accuracy=accuracy, ms={1: ms1, 64: ms64})
    form.repeats = {1: [ms1 * r for r in repeats], 64: [ms64]}
    return form


def test_the_readout_of_a_table_says_what_each_form_saves_and_what_is_within_the_noise():
    forms = [_form("dense network", 0.96, 1000, 1.0, 10.0, repeats=(1.0, 1.25)),
             _form("ticket, masked", 0.97, 1250, 1.0, 10.0), _form("ticket, compact file", 0.97, 72, 1.0, 10.0),
             _form("ticket, LZMA file", None, 84, 1.0, 10.0), _form("ticket, CSR kernels", 0.97, 187, 2.0, 14.0),
             _form("ticket, onnxruntime", 0.97, 1004, 0.5, 11.0), _form("ticket, int8 (PyTorch)", 0.9685, 255, 1.0, 8.0),
             _form("ticket, int8 (onnxruntime)", 0.9695, 256, 0.5, 5.0),
             _form("channels kept 50%", 0.971, 473, 0.8, 5.0), _form("channels kept 25%", 0.93, 231, 0.5, 2.0)]
    text = shipping.readout(forms, 2000)
    assert "masked: 1.25× the dense network's bytes, 1.00× at batch 1 and 1.00× at batch 64" in text
    assert "the compact one 7.2%, the LZMA one 8.4% of the dense network's bytes" in text
    assert "CSR kernels: 0.50× at batch 1 and 0.71× at batch 64" in text
    assert "int8 (onnxruntime): 2.00× at batch 1 and 2.00× at batch 64, 25.6% of the bytes" in text
    assert "int8 moved accuracy by at most 0.15 points (the 95% interval of a difference on 2,000 images: ±1.1)" in text
    assert "channels kept 50%: 1.25× at batch 1 and 2.00× at batch 64, 47.3% of the bytes; 97.10% against the " \
           "ticket's 97.00% (+0.10 points, within the interval)" in text
    assert "channels kept 25%" in text and "(-4.00 points, beyond the interval)" in text
    assert "differed by up to 25% on this machine" in text


def test_the_crossover_is_where_csr_stays_faster_at_every_sparser_density():
    text = shipping.crossovers((0.5, 0.2, 0.1, 0.05, 0.02, 0.01), {
        "big": [0.5, 1.05, 2.4, 7.0, 13.8, 27.4], "small": [0.3, 0.5, 1.1, 0.9, 1.02, 1.08], "never": [0.3] * 6})
    assert "big: CSR is faster than dense from 20% of the weights kept down, 27.40× at 1%" in text
    assert "small: CSR is faster than dense from 2% of the weights kept down, 1.08× at 1%" in text
    assert "never: CSR is not faster than dense" in text


def test_what_held_across_networks_names_the_ranges_and_only_the_forms_faster_everywhere_beyond_the_drift():
    def table(compact, onnx_ms1, channels_ms, drift=1.0):
        return [_form("dense network", 0.5, 1000, 1.0, 10.0, repeats=(1.0, drift)),
                _form("ticket, masked", 0.5, 1250, 1.0, 10.0), _form("ticket, compact file", 0.5, compact, 1.0, 10.0),
                _form("ticket, onnxruntime", 0.5, 1004, onnx_ms1, 11.0),
                _form("channels kept 50%", 0.5, 470, *channels_ms)]

    tables = {"lenet300": table(72, 0.5, (0.8, 5.0)), "resnet20": table(236, 0.25, (0.5, 2.0), drift=1.1)}
    text = shipping.across_networks(tables)
    assert "the compact files take 7.2% to 23.6% (lenet300 7.2%, resnet20 23.6%) of their dense networks' bytes" in text
    assert "onnxruntime ran the masked tickets at 2.00× to 4.00× (lenet300 2.00×, resnet20 4.00×)" in text
    assert text.endswith("in all 2 networks, by more than the drift of their repeats: channels kept 50%.")
    tables["resnet20"] = table(236, 0.25, (0.95, 2.0), drift=1.1)  # 1.05× at batch 1: within its 10% drift
    assert shipping.across_networks(tables).endswith("drift of their repeats: no form.")
    del tables["resnet20"][-1]  # a form missing from one table is not faster everywhere
    assert shipping.across_networks(tables).endswith("drift of their repeats: no form.")
    once = {"lenet300": table(72, 0.5, (0.8, 5.0))}
    for form in once["lenet300"]:
        form.repeats = {1: [form.ms[1]], 64: [form.ms[64]]}
    assert shipping.across_networks(once).endswith("channels kept 50% (each timing was measured once, so the drift "
                                                   "is unknown: take this line with care).")
