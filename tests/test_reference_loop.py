"""lthkit's training loop gives what the plain PyTorch loop gives: the speed work in lthkit must
never change the results (same weights to float tolerance, identical masks)."""

import torch
import torch.nn.functional as F

from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.train import BatchOrder, TrainConfig, train


def plain_loop(model, data, mask, iterations, seed):
    """The textbook loop: Adam, cross-entropy, the mask multiplied in after each step."""
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    order = BatchOrder(len(data.train), 60, seed, torch.device("cpu"))
    params = dict(model.named_parameters())
    for it in range(iterations):
        idx = order(it)
        loss = F.cross_entropy(model(data.train.x[idx]), data.train.y[idx])
        opt.zero_grad()
        loss.backward()
        for name, m in mask.items():
            params[name].grad.mul_(m)
        opt.step()
        with torch.no_grad():
            for name, m in mask.items():
                params[name].mul_(m)


def test_lthkit_training_equals_the_plain_loop(mnist_small):
    init = build_model("lenet300", (1, 28, 28), seed=4)
    mask = prune_by_magnitude(init, Mask.ones_like(init), layer_rates(init, {"fc": 0.5, "output": 0.2}))
    ours, theirs = build_model("lenet300", (1, 28, 28), seed=4), build_model("lenet300", (1, 28, 28), seed=4)
    mask.apply_(theirs)
    train(ours, mnist_small, TrainConfig(iterations=25, eval_every=25, data_seed=2), mask=mask, progress=False)
    plain_loop(theirs, mnist_small, mask, 25, seed=2)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    rates = layer_rates(ours, {"fc": 0.2, "output": 0.1})
    assert prune_by_magnitude(ours, mask, rates) == prune_by_magnitude(theirs, mask, rates)
