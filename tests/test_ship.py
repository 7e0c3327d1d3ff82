"""What shipping measures: sizes by format, CSR kernels that compute what the dense layers compute."""

import torch
from torch import nn

from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.ship import SparseLinear, latency, onnx_model, sizes, with_sparse_kernels


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
