import math

import pytest
import torch

from lthkit.models import MODELS, build_model, count_parameters, prunable_layers


def test_lenet300_has_the_papers_shape_and_parameter_count():
    model = build_model("lenet300", (1, 28, 28))
    assert [tuple(p.shape) for n, p in model.named_parameters() if n.endswith("weight")] == [
        (300, 784), (100, 300), (10, 100)]
    assert count_parameters(model) == {"total": 266610, "prunable": 266200}
    assert prunable_layers(model) == {"fc1.weight": "fc", "fc2.weight": "fc", "fc3.weight": "output"}


@pytest.mark.parametrize("name,convs", [("conv2", 2), ("conv4", 4), ("conv6", 6)])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_conv_nets_fit_the_input_shape(name, convs, shape):
    model = build_model(name, shape)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    kinds = list(prunable_layers(model).values())
    assert kinds == ["conv"] * convs + ["fc", "fc", "output"]
    widths = [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 64, 128, 128, 256, 256][:convs]
    assert model.fc1.out_features == 256 and model.fc2.out_features == 256


def test_conv2_on_cifar_has_the_papers_weight_count():
    # Frankle & Carbin, Figure 2: Conv-2 has 4.3M weights (conv 38K, FC 4.1M + 2.6K output)
    weights = count_parameters(build_model("conv2", (3, 32, 32)))["prunable"]
    assert weights == 3 * 64 * 9 + 64 * 64 * 9 + 16 * 16 * 64 * 256 + 256 * 256 + 256 * 10


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (build_model("lenet300", (1, 28, 28), seed=s) for s in (3, 3, 4))
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
        if n.endswith("weight"):
            assert not torch.equal(pa, pc)


def test_initialisation_is_gaussian_glorot_with_zero_biases():
    model = build_model("lenet300", (1, 28, 28), seed=0)
    w = model.fc1.weight
    assert abs(w.std().item() - math.sqrt(2 / (784 + 300))) < 2e-3
    assert torch.count_nonzero(model.fc1.bias) == 0


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=", ".join(MODELS)):
        build_model("resnet1000", (1, 28, 28))


def test_lthkit_train_is_the_module_and_calling_it_trains(mnist_small):
    import inspect
    import types

    import lthkit
    import lthkit.train
    from lthkit import train

    assert isinstance(lthkit.train, types.ModuleType) and train is lthkit.train
    assert lthkit.train.TrainConfig is lthkit.TrainConfig and lthkit.train.train.__name__ == "train"
    assert inspect.signature(train) == inspect.signature(lthkit.train.train)
    a, b = build_model("lenet300", (1, 28, 28), seed=1), build_model("lenet300", (1, 28, 28), seed=1)
    config = lthkit.train.TrainConfig(iterations=3, eval_every=3)
    called = train(a, mnist_small, config, progress=False)  # the notebooks' `from lthkit import train`
    direct = lthkit.train.train(b, mnist_small, config, progress=False)
    assert called.result == direct.result and torch.equal(a.fc1.weight, b.fc1.weight)


# --- the small vision transformer (notebook 09) ---------------------------------------------------

def test_the_vit_names_its_prunable_kinds_and_leaves_positions_norms_and_biases_alone():
    model = build_model("vit", (1, 28, 28))
    kinds = prunable_layers(model)
    assert kinds == {"embed.weight": "embedding", **{f"blocks.{i}.{layer}.weight": kind for i in (0, 1)
                                                        for layer, kind in (("qkv", "attention"), ("proj", "attention"),
                                                                            ("fc1", "mlp"), ("fc2", "mlp"))},
                     "head.weight": "output"}
    params = dict(model.named_parameters())
    assert all(params[n].dim() == 2 for n in kinds)
    left = {n for n in params if n not in kinds}
    assert left == {"cls", "pos", "norm.weight", "norm.bias", "embed.bias", "head.bias"} | {
        f"blocks.{i}.{p}" for i in (0, 1) for p in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                                                    "qkv.bias", "proj.bias", "fc1.bias", "fc2.bias")}
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert count_parameters(model)["prunable"] == 49 * 64 + 2 * (64 * 192 + 64 * 64 + 2 * 64 * 128) + 64 * 10


def test_the_vits_every_parameter_is_drawn_from_the_seed():
    a, b, c = (build_model("vit", (1, 28, 28), seed=s) for s in (3, 3, 4))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.pos, c.pos) and not torch.equal(a.cls, c.cls)
    assert not torch.equal(a.blocks[0].qkv.weight, c.blocks[0].qkv.weight)
    assert torch.equal(a.norm.weight, torch.ones(64)) and float(a.pos.detach().std()) == pytest.approx(0.02, rel=0.2)


def test_a_picture_that_does_not_cut_into_patches_is_refused():
    with pytest.raises(ValueError, match="does not cut into 7x7 patches"):
        build_model("vit", (3, 32, 32))
