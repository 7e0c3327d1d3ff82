import pytest
import torch
import torchvision

from lthkit import data as lthdata
from lthkit.data import DataMissingError, dataset_info, load_dataset, paper_split


def test_paper_split_is_disjoint_complete_and_fixed_by_seed():
    train, val = paper_split(60000, 5000, split_seed=0)
    assert len(train) == 55000 and len(val) == 5000
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(60000))
    again_train, again_val = paper_split(60000, 5000, split_seed=0)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, paper_split(60000, 5000, split_seed=1)[1])


def test_real_mnist_has_the_papers_splits_normalised(mnist):
    assert mnist.train.x.shape == (55000, 1, 28, 28)
    assert mnist.val.x.shape == (5000, 1, 28, 28)
    assert mnist.test.x.shape == (10000, 1, 28, 28)
    assert mnist.train.x.dtype == torch.float32 and mnist.train.y.dtype == torch.long
    assert abs(mnist.train.x.mean().item()) < 0.01 and abs(mnist.train.x.std().item() - 1) < 0.01
    # Every digit appears in each split, in roughly its usual share.
    for split in (mnist.train, mnist.val, mnist.test):
        share = torch.bincount(split.y, minlength=10).float() / len(split)
        assert share.min() > 0.08 and share.max() < 0.12


def test_validation_images_are_not_training_images(mnist):
    train = {hash(row.numpy().tobytes()) for row in mnist.train.x.flatten(1)[:55000:11]}
    val = {hash(row.numpy().tobytes()) for row in mnist.val.x.flatten(1)}
    # MNIST has a handful of exact duplicate images; a leaked split would share ~500 of these.
    assert len(train & val) < 5


def test_second_load_comes_from_the_cache_and_is_identical(mnist, monkeypatch):
    def no_torchvision(*args, **kwargs):
        raise AssertionError("a cached load must not read through torchvision")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_torchvision)
    again = load_dataset("mnist")
    assert torch.equal(again.train.x, mnist.train.x) and torch.equal(again.test.y, mnist.test.y)


def test_balanced_subset_is_seeded_and_class_balanced(mnist):
    small = load_dataset("mnist", subset=1003)
    counts = torch.bincount(small.train.y, minlength=10)
    assert len(small.train) == 1003 and counts.max() - counts.min() <= 1
    assert torch.equal(load_dataset("mnist", subset=1003).train.x, small.train.x)
    assert len(small.val) == 5000 and len(small.test) == 10000


def test_large_subset_tops_up_from_other_classes(mnist):
    big = load_dataset("mnist", subset=54000)
    counts = torch.bincount(big.train.y, minlength=10)
    assert len(big.train) == 54000
    everything = torch.bincount(mnist.train.y, minlength=10)
    short = everything < 5400
    assert torch.equal(counts[short], everything[short]) and bool((counts[~short] >= 5400).all())


@pytest.mark.parametrize("subset", [0, 5, 55001])
def test_subset_out_of_range_is_refused(subset, mnist):
    with pytest.raises(ValueError, match="subset"):
        load_dataset("mnist", subset=subset)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="mnist, fashion-mnist, cifar10"):
        dataset_info("imagenet")


def test_missing_data_offline_says_where_and_which_files(tmp_path):
    with pytest.raises(DataMissingError) as err:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in message
    assert "LTHKIT_DATA" in message


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DataMissingError, match="the download failed"):
        load_dataset("mnist", root=tmp_path, download=True)


def test_lthkit_data_environment_variable_chooses_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LTHKIT_DATA", str(tmp_path))
    with pytest.raises(DataMissingError, match=str(tmp_path)):
        load_dataset("mnist", download=False)


def test_real_cifar10_has_the_papers_splits_and_torchvisions_pixels(cifar10):
    assert cifar10.train.x.shape == (45000, 3, 32, 32)
    assert cifar10.val.x.shape == (5000, 3, 32, 32) and cifar10.test.x.shape == (10000, 3, 32, 32)
    # Normalised with the training images' own per-channel mean and standard deviation.
    pixels = cifar10.train.x.transpose(0, 1).flatten(1)
    assert pixels.mean(1).abs().max() < 0.01 and (pixels.std(1) - 1).abs().max() < 0.01
    assert torch.equal(torch.bincount(cifar10.test.y, minlength=10), torch.full((10,), 1000))
    assert torch.bincount(torch.cat([cifar10.train.y, cifar10.val.y]), minlength=10).tolist() == [5000] * 10
    raw = torchvision.datasets.CIFAR10(str(lthdata.data_root()), train=False)
    mean = torch.tensor(dataset_info("cifar10").mean).view(3, 1, 1)
    std = torch.tensor(dataset_info("cifar10").std).view(3, 1, 1)
    for i in (0, 4321, 9999):
        image = torch.as_tensor(raw.data[i]).permute(2, 0, 1).float() / 255
        assert torch.allclose(cifar10.test.x[i], (image - mean) / std, atol=1e-5)
        assert cifar10.test.y[i].item() == raw.targets[i]


def test_conv2_learns_real_cifar10_in_forty_steps(cifar10):
    """Images and labels travel together through the cache, the split and the subset: a network
    trained briefly on them is far above chance (10%) on the official test images (25% of 500 is
    eleven standard deviations above it; this run reaches 31%)."""
    from lthkit.models import build_model
    from lthkit.train import TrainConfig, train

    small = lthdata.load_dataset("cifar10", subset=6000).with_eval_size(500)
    run = train(build_model("conv2", (3, 32, 32), seed=0), small,
                TrainConfig(iterations=40, batch_size=60, lr=2e-4, eval_every=40), progress=False)
    assert run.result.curve[-1].test_accuracy > 0.25


def test_a_read_only_data_folder_still_loads(mnist, tmp_path, monkeypatch):
    import shutil

    from lthkit import data as lthdata

    root = tmp_path / "stick"
    shutil.copytree(lthdata.data_root() / "MNIST", root / "MNIST")
    monkeypatch.setattr(lthdata.torch, "save", lambda *a, **k: (_ for _ in ()).throw(PermissionError("read-only")))
    with pytest.warns(UserWarning, match="could not cache mnist"):
        data = load_dataset("mnist", root=root)
    assert torch.equal(data.test.y, mnist.test.y)


def test_missing_cifar10_names_the_batch_files(tmp_path):
    with pytest.raises(DataMissingError) as err:
        load_dataset("cifar10", root=tmp_path, download=False)
    assert "cifar-10-batches-py" in str(err.value) and "data_batch_1" in str(err.value)


def test_a_damaged_unpacked_file_is_refused_by_name_not_trained_on(mnist, tmp_path):
    """torchvision would read it without a check; lthkit compares it with its archive first."""
    import shutil

    from lthkit.data import data_root

    root = tmp_path / "data"
    shutil.copytree(data_root() / "MNIST", root / "MNIST")
    victim = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    damaged = bytearray(victim.read_bytes())
    damaged[5000] ^= 0xFF
    victim.write_bytes(bytes(damaged))
    with pytest.raises(DataMissingError, match=f"{victim}: damaged .*lthkit data download --root {root}"):
        load_dataset("mnist", root=root, download=False)
    assert not (root / "cache" / "mnist.pt").exists()
