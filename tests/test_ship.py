"""What shipping measures: sizes by format, CSR kernels that compute what the dense layers compute."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.ship import (SparseLinear, channel_pruned, int8_dynamic, latency, onnx_int8, onnx_model, semi_structured_speedup,
                         sizes, sparse_speedup, with_sparse_kernels)


def pruned(name="lenet300", shape=(1, 28, 28), rate=0.9):
    model = build_model(name, shape, seed=0)
    kinds = {"fc": rate, "output": rate} | ({"conv": rate} if name.startswith("conv") else {})
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, kinds))
    mask.apply_(model)
    return model.eval(), mask


def test_sizes_by_format():
    model, mask = pruned(rate=0.9)
    got = sizes(model, mask)
    assert got["masked"] > got["dense"] > 4 * 266_610
    weights = sum(p.numel() for n, p in model.named_parameters() if n in mask)
    assert got["compact"] < got["dense"] / 4 and got["compact"] > 4 * mask.alive()
    assert got["dense_lzma"] < got["dense"] / 2
    dense_model, dense_mask = pruned(rate=0.0)
    unpruned = sizes(dense_model, dense_mask)
    assert 4 * weights < unpruned["compact"] <= unpruned["dense"] * 1.001


def test_sparse_kernels_compute_what_the_dense_layers_compute_and_leave_the_model_alone():
    model, mask = pruned(rate=0.95)
    sparse = with_sparse_kernels(model, mask)
    assert all(isinstance(getattr(sparse, n), SparseLinear) for n in ("fc1", "fc2", "fc3"))
    assert all(isinstance(getattr(model, n), nn.Linear) for n in ("fc1", "fc2", "fc3"))
    assert sparse.fc1.weight.layout == torch.sparse_csr and sparse.fc1.weight._nnz() == mask.alive("fc1.weight")
    assert sparse.fc1.weight.layout == torch.sparse_csr and "fc1.weight" in sparse.state_dict()
    x = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(sparse(x), model(x), atol=1e-5)
        assert torch.allclose(sparse(x[:1]), model(x[:1]), atol=1e-5)


def test_a_conv_nets_convolutions_stay_dense_and_its_linear_layers_go_sparse():
    model, mask = pruned("conv2", (3, 32, 32), rate=0.8)
    sparse = with_sparse_kernels(model, mask)
    convs = [m for m in sparse.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and not any(isinstance(m, nn.Linear) for m in sparse.modules())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(sparse(x), model(x), atol=1e-5)


def test_onnxruntime_and_the_timer_take_the_same_model(tmp_path):
    model, _ = pruned(rate=0.5)
    ort = onnx_model(model, (1, 28, 28), tmp_path, threads=1)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(ort(x), model(x), atol=1e-5)
    measured = latency(ort, x, threads=1, min_run_time=0.05)
    assert measured.median > 0 and measured.number_per_run >= 1 and "batch 8" in measured.sub_label


def test_channel_pruning_removes_the_smallest_units_and_keeps_the_rest_bit_for_bit():
    model, _ = pruned(rate=0.0)
    smaller = channel_pruned(model, (1, 28, 28), 0.5)
    assert [(m.in_features, m.out_features) for m in (smaller.fc1, smaller.fc2, smaller.fc3)] == [
        (784, 150), (150, 50), (50, 10)]
    assert model.fc1.out_features == 300, "the original is left alone"
    rows = {tuple(r.tolist()) for r in model.fc1.weight.detach()}
    assert all(tuple(r.tolist()) in rows for r in smaller.fc1.weight.detach())
    kept = [next(i for i, r in enumerate(model.fc1.weight.detach()) if torch.equal(r, s))
            for s in smaller.fc1.weight.detach()]
    norms = model.fc1.weight.detach().abs().sum(1) + model.fc2.weight.detach().abs().sum(0)
    assert norms[kept].min() > norms.median() * 0.5, "the kept units are not among the weakest"
    assert smaller(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="fraction of channels kept"):
        channel_pruned(model, (1, 28, 28), 0.0)


def test_channel_pruning_follows_a_residual_networks_shortcuts():
    model = build_model("resnet20", (3, 32, 32), seed=0).eval()
    smaller = channel_pruned(model, (3, 32, 32), 0.5)
    widths = {m.out_channels for m in smaller.modules() if isinstance(m, nn.Conv2d)}
    assert widths == {8, 16, 32} and smaller.fc.out_features == 10
    assert sum(p.numel() for p in smaller.parameters()) < 0.3 * sum(p.numel() for p in model.parameters())
    assert smaller(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_int8_quantises_the_linear_layers_of_a_copy_and_stays_close(recwarn):
    model, _ = pruned(rate=0.5)
    q = int8_dynamic(model)
    assert type(q.fc1).__module__.startswith("torch.ao.nn.quantized.dynamic") and isinstance(model.fc1, nn.Linear)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    x = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        exact, approx = model(x), q(x)
    assert (approx - exact).abs().max() < 0.05 * exact.abs().max()
    assert (approx.argmax(1) == exact.argmax(1)).float().mean() > 0.9


def test_onnxruntime_int8_quantises_convolutions_too(tmp_path):
    import onnx

    model, _ = pruned("conv2", (3, 32, 32), rate=0.5)
    q = onnx_int8(model, (3, 32, 32), tmp_path, threads=1)
    ops = {n.op_type for n in onnx.load(tmp_path / "model-int8.onnx").graph.node}
    assert "ConvInteger" in ops and "MatMulInteger" in ops
    assert (tmp_path / "model-int8.onnx").stat().st_size < 0.3 * (tmp_path / "model.onnx").stat().st_size
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        exact, approx = model(x), q(x)
    assert (approx - exact).abs().max() < 0.1 * exact.abs().max()


def test_sparse_speedup_times_a_layer_at_the_density_asked(monkeypatch):
    seen = []
    monkeypatch.setattr("lthkit.ship.latency", lambda m, x, **kw: seen.append((m, x)) or SimpleNamespace(
        median=2.0 if isinstance(m, nn.Linear) else 0.5))
    assert sparse_speedup(200, 100, 0.1, 8) == 4.0
    (dense, x), (sparse, _) = seen
    assert x.shape == (8, 200) and dense.weight.shape == (100, 200)
    assert abs((dense.weight != 0).float().mean().item() - 0.1) < 0.01
    assert sparse.weight.layout == torch.sparse_csr and sparse.weight._nnz() == int((dense.weight != 0).sum())


def test_semi_structured_sparsity_says_why_it_cannot_run_without_a_recent_gpu():
    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0):
        assert semi_structured_speedup(1024, 1024, 1024, min_run_time=0.05) > 0
        return
    with pytest.raises(RuntimeError, match="compute capability 8.0"):
        semi_structured_speedup()
