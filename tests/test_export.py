"""lthkit export: a ticket as a plain network, stored compactly, read back bit for bit."""

import pytest
import torch

from lthkit.cli import main
from lthkit.config import make_config
from lthkit.export import (bitmask_bytes, compact_bytes, compact_layer, csr_bytes, expand_layer, export_run,
                           load_compact)
from lthkit.imp import load_ticket, load_trained, run_imp
from lthkit.train import evaluate


def pruned(shape, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(shape, generator=g)
    keep = (torch.rand(shape, generator=g) < density).float()
    return weight * keep, keep


@pytest.mark.parametrize("shape", [(300, 784), (64, 3, 3, 3), (10, 100)])
@pytest.mark.parametrize("density", [1.0, 0.9, 0.5, 0.2, 0.01])
def test_a_compact_layer_is_the_smallest_form_and_expands_bit_for_bit(shape, density):
    weight, keep = pruned(shape, density)
    stored = compact_layer(weight, keep)
    assert torch.equal(expand_layer(stored), weight)
    kept, rows = int(keep.sum()), shape[0]
    sizes = {"dense": 4 * weight.numel(), "csr": csr_bytes(rows, kept), "bitmask": bitmask_bytes(weight.numel(), kept)}
    assert compact_bytes(stored) == min(sizes.values()) and sizes[stored["form"]] == min(sizes.values())


def test_fc1_stays_dense_unpruned_keeps_a_bitmask_at_half_and_goes_csr_at_one_in_a_hundred():
    assert compact_layer(*pruned((300, 784), 1.0))["form"] == "dense"
    assert compact_layer(*pruned((300, 784), 0.5))["form"] == "bitmask"
    assert compact_layer(*pruned((300, 784), 0.01))["form"] == "csr"


def test_a_layer_whose_pruned_weights_are_not_zero_is_refused():
    weight, keep = pruned((10, 10), 0.5)
    with pytest.raises(ValueError, match="apply the mask"):
        compact_layer(weight + 1.0, keep)


@pytest.fixture(scope="module")
def saved_run(mnist_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = make_config(model="lenet300", rounds=2, iterations=40, eval_every=20, subset=600, seed=0, device="cpu",
                         prune_rates={"fc": 0.9, "output": 0.5}, controls=())
    run_imp(config, out, data=mnist_small, progress=False)
    return out


def no_masks_or_hooks(model):
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    assert not any("orig" in n or "mask" in n or "parametrizations" in n for n in names)


def test_the_exported_ticket_is_the_trained_network_bit_for_bit(saved_run, tmp_path, mnist_small):
    report = export_run(saved_run, 2, tmp_path / "ticket.pt", data=mnist_small)
    plain, trained = load_compact(tmp_path / "ticket.pt"), load_trained(saved_run, 2).eval()
    no_masks_or_hooks(plain)
    ticket = load_ticket(saved_run, 2)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(plain.state_dict()[name], tensor * ticket.mask[name] if name in ticket.mask else tensor)
    x = mnist_small.test.x[:64]
    assert torch.equal(plain(x), trained(x))
    assert report["test_accuracy"] == evaluate(plain, mnist_small.test)[1]
    assert report["kept_weights"] == ticket.mask.alive() and report["weights_remaining"] == ticket.mask.weights_remaining()
    assert report["bytes"] == (tmp_path / "ticket.pt").stat().st_size < report["dense_bytes"] / 3
    assert report["layers"] == {"fc1.weight": "csr", "fc2.weight": "csr", "fc3.weight": "bitmask"}


def test_the_rewound_ticket_is_the_rewind_point_under_the_mask(saved_run, tmp_path):
    export_run(saved_run, 1, tmp_path / "rewound.pt", rewound=True, measure=False)
    plain, ticket = load_compact(tmp_path / "rewound.pt"), load_ticket(saved_run, 1)
    for name, tensor in ticket.to_model().state_dict().items():
        assert torch.equal(plain.state_dict()[name], tensor)


def test_onnx_gives_the_same_outputs_through_onnxruntime(saved_run, tmp_path, mnist_small):
    from lthkit.export import OnnxModule

    report = export_run(saved_run, 2, tmp_path / "ticket.onnx", fmt="onnx", data=mnist_small)
    ort, trained = OnnxModule(tmp_path / "ticket.onnx"), load_trained(saved_run, 2).eval()
    for batch in (1, 64):
        x = mnist_small.test.x[:batch]
        assert torch.allclose(ort(x), trained(x), atol=1e-5)
    assert abs(report["test_accuracy"] - evaluate(trained, mnist_small.test)[1]) <= 2 / len(mnist_small.test)


def test_the_command_writes_and_reports(saved_run, tmp_path, capsys, monkeypatch, mnist_small):
    import lthkit.export

    monkeypatch.setattr(lthkit.export, "load_dataset", lambda name: mnist_small)
    assert main(["export", str(saved_run), "--round", "2", "--out", str(tmp_path / "t.pt")]) == 0
    printed = capsys.readouterr().out
    assert "prunable weights kept" in printed and "bytes" in printed and "test accuracy re-measured" in printed
    assert torch.equal(load_compact(tmp_path / "t.pt").fc1.weight,
                       load_trained(saved_run, 2).fc1.weight * load_ticket(saved_run, 2).mask["fc1.weight"])
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(saved_run), "--round", "7", "--out", str(tmp_path / "x.pt")])
    assert stopped.value.code == 2 and "saved rounds: [0, 1, 2]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--round", "1", "--out", str(tmp_path / "x.pt")])
    assert "holds no run" in capsys.readouterr().err
