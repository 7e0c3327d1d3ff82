import re
import shutil

import pytest

from conftest import SHARED
from lthkit import course
from lthkit.course import doctor
from lthkit.catalogue import archives
from lthkit.train import resolve_device

FAKE_SPEED = {"per_iteration": 0.002, "per_round_iteration": 0.005, "per_evaluation": 0.05,
         "per_mask_iteration": 0.01,
         "per_vit_iteration": 0.008, "per_vit_evaluation": 0.3}
FAKE_CIFAR_SPEED = {name: {"per_iteration": 0.1 * (i + 1), "per_extra_arm": 0.07 * (i + 1), "per_image": 0.001}
                    for i, name in enumerate(("conv2", "conv4", "conv6", "resnet20"))}


@pytest.fixture
def mnist_root(tmp_path):
    """A data folder holding only the four real MNIST archives (verified by MD5, nothing unpacked)."""
    if not all((SHARED / a.path).is_file() for a in archives("mnist")):
        pytest.skip(f"the real MNIST archives are not in {SHARED}")
    root = tmp_path / "data"
    for archive in archives("mnist"):
        (root / archive.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / archive.path, root / archive.path)
    return root


@pytest.fixture
def fake_speed(monkeypatch):
    """The measured speed fixed, so that tests of what the doctor says are fast and exact."""
    calls = []
    monkeypatch.setattr(course, "measure_speed", lambda data, iterations: calls.append(iterations) or FAKE_SPEED)
    monkeypatch.setattr(course, "measure_cifar_speed", lambda device, iterations: FAKE_CIFAR_SPEED)
    return calls


def diagnose(root, out, **kwargs):
    lines = []
    healthy = doctor.run_doctor(root, out, log=lines.append, **kwargs)
    return healthy, lines


def test_a_ready_machine_is_reported_ready_with_a_prediction_per_notebook_and_budget(mnist_root, tmp_path,
                                                                                     fake_speed):
    healthy, lines = diagnose(mnist_root, tmp_path / "out", iterations=50)
    assert healthy and lines[-1] == "Ready."
    assert fake_speed == [10, 50]
    assert "  mnist: present and verified" in lines
    assert any(line.startswith("  note: fashion-mnist: missing") and "lthkit data download" in line for line in lines)
    assert any(line.startswith("  note: cifar10: missing") and "notebooks 05, 06 and 10 need it" in line for line in lines)
    assert "  torch: " + course.torch.__version__ in lines and f"  {resolve_device('auto')}: works" in lines
    assert (tmp_path / "out").is_dir() and not list((tmp_path / "out").iterdir())
    table = lines.index("  notebook " + "".join(f"{b:>11}" for b in course.BUDGET_NAMES))
    notebooks = sorted({*course.LENET_NOTEBOOKS, *course.CIFAR_NOTEBOOKS})
    rows = dict(zip(notebooks, lines[table + 1:table + 1 + len(notebooks)]))
    for nb in notebooks:  # the LeNet share from the LeNet burst, the CIFAR-10 share from the conv bursts
        lenet = [course.predict_minutes(FAKE_SPEED, b).get(nb, 0) for b in course.BUDGET_NAMES]
        cifar = [course.predict_cifar_minutes(FAKE_CIFAR_SPEED, b).get(nb, 0) for b in course.BUDGET_NAMES]
        expected = [doctor.format_minutes(a + c) for a, c in zip(lenet, cifar)]
        assert rows[nb].split() == [nb, *" ".join(expected).split()]
    assert {nb for nb in notebooks if nb in course.LENET_NOTEBOOKS and nb in course.CIFAR_NOTEBOOKS} == {"10"}


def test_missing_mnist_is_a_problem(tmp_path, fake_speed):
    healthy, lines = diagnose(tmp_path / "empty", tmp_path / "out")
    assert not healthy
    problem = next(line for line in lines if "PROBLEM: mnist" in line)
    assert "missing" in problem and "train-images-idx3-ubyte.gz" in problem and "lthkit data download" in problem
    assert lines[-1] == "1 problem(s): see PROBLEM above."


def test_a_corrupted_archive_is_named(mnist_root, tmp_path, fake_speed):
    victim = mnist_root / "MNIST/raw/train-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-100])
    healthy, lines = diagnose(mnist_root, tmp_path / "out")
    assert not healthy
    assert any(f"PROBLEM: mnist: corrupted {victim} (checksum mismatch)" in line for line in lines)


def test_an_unwritable_output_folder_is_a_problem(mnist_root, tmp_path, fake_speed):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    healthy, lines = diagnose(mnist_root, blocker / "out")
    assert not healthy
    assert any(f"PROBLEM: cannot write in {blocker / 'out'}" in line for line in lines)


def test_versions_other_than_the_tested_ones_are_noted(monkeypatch):
    pins = doctor.tested_versions()
    assert pins["torch"] and pins["torchvision"]
    monkeypatch.setattr(doctor, "tested_versions", lambda: {**pins, "torch": "0.0.1"})
    notes = doctor.version_notes()
    assert any(note.startswith("torch ") and note.endswith("the course is tested with 0.0.1") for note in notes)


def test_a_real_burst_measures_this_machine_and_predicts_every_notebook(tmp_path, monkeypatch):
    """Evaluation on 5 images costs next to nothing beside 60 training iterations, so the burst
    always tells training time apart; "too few" has its own test below."""
    full_size = doctor.mnist_shaped
    monkeypatch.setattr(doctor, "mnist_shaped", lambda device: full_size(device).with_eval_size(5))
    measured = []
    real = course.measure_speed
    monkeypatch.setattr(course, "measure_speed",
                        lambda data, iterations: measured.append(real(data, iterations)) or measured[-1])
    healthy, lines = diagnose(tmp_path / "empty", tmp_path / "out", iterations=60, cifar_iterations=2)
    assert [line.split(":")[0].strip() for line in lines if "per further arm beside it" in line] == [
        "conv2", "conv4", "conv6", "resnet20"]
    speed = measured[-1]
    assert speed["per_iteration"] > 0 and speed["per_round_iteration"] > 0 and speed["per_mask_iteration"] > 0, speed
    assert speed["per_vit_iteration"] > 0 and speed["per_vit_evaluation"] > 0, speed
    speed_line = next(line for line in lines if "ms per iteration" in line)
    assert speed_line.startswith(f"  {speed['per_iteration'] * 1000:.2f} ms per iteration,")
    assert not any("too few" in line for line in lines)
    notebooks = sorted({*course.LENET_NOTEBOOKS, *course.CIFAR_NOTEBOOKS})
    rows = [line for line in lines if line.startswith(("  0", "  1")) and line.strip()[:2] in notebooks]
    assert [row.split()[0] for row in rows] == notebooks
    for row, nb in zip(rows, notebooks):  # the LeNet notebooks predicted from this very burst
        if nb in course.CIFAR_NOTEBOOKS:
            continue
        assert row.split()[1:] == " ".join(doctor.format_minutes(course.predict_minutes(speed, b)[nb])
                                           for b in course.BUDGET_NAMES).split()
    assert all(len(re.findall(r"[\d.]+ (?:s|min|h)\b", row)) == 3 for row in rows)


def test_too_short_a_burst_predicts_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "measure_speed", lambda data, iterations: {**FAKE_SPEED, "per_iteration": 0.0})
    monkeypatch.setattr(course, "measure_cifar_speed", lambda device, iterations: FAKE_CIFAR_SPEED)
    healthy, lines = diagnose(tmp_path / "empty", tmp_path / "out", iterations=1)
    assert any("1 iterations were too few" in line for line in lines)
    assert not any(line.startswith("  notebook") for line in lines)


def test_cifar_notebooks_are_predicted_from_what_their_cells_train():
    work = course.cifar_work("05", "classroom")
    assert [(model, arms, its) for model, arms, its, _ in work] == [("conv2", 1, 300)] + [("conv2", 2, 300)] * 6
    assert work[0][3] == (300 // 100 + 2) * (1000 + 1000)
    assert {model for model, *_ in course.cifar_work("05", "paper")} == {"conv2", "conv4", "conv6"}
    assert [its for model, _, its, _ in course.cifar_work("05", "paper") if model == "conv6"] == [30000] * 21
    # 06: the dense network up to the last rewind point; two copies from each point and the line
    # between them; the dense round; rewinding to k beside reinit, to 0, LR rewinding, fine-tuning.
    assert [(arms, its) for _, arms, its, _ in course.cifar_work("06", "classroom")] == [
        (1, 30), (1, 300), (1, 300), (1, 0), (1, 270), (1, 270), (1, 0), (1, 300), (2, 270), (1, 300), (1, 270), (1, 270)]
    one = {name: {"per_iteration": 1.0, "per_extra_arm": 0.5, "per_image": 0.0} for name in ("conv2", "resnet20")}
    assert course.predict_cifar_minutes(one, "classroom")["05"] == (300 + 6 * 300 * 1.5) / 60


def test_notebook_10_is_predicted_from_both_bursts():
    # CIFAR-10: each ticket's dense round and rounds (Conv-2 2, ResNet-20 1), then two channel-pruned networks
    assert [(model, arms, its) for model, arms, its, _ in course.cifar_work("10", "classroom")] == [
        ("conv2", 1, 300)] * 5 + [("resnet20", 1, 300)] * 4
    assert [its for model, _, its, _ in course.cifar_work("10", "paper") if model == "resnet20"] == [63000] * 11
    # LeNet-300-100: its dense round, 5 rounds and two channel-pruned networks, each 1834 iterations
    alone, together, evals, masks = course.training_work("10", "classroom")
    assert (alone, together, masks) == (8 * 1834, 0, 0) and evals == 8 * (1834 // 100 + 2)
    minutes = course.predicted_minutes(FAKE_SPEED, FAKE_CIFAR_SPEED)
    assert minutes["10"] == pytest.approx(course.predict_minutes(FAKE_SPEED)["10"]
                                          + course.predict_cifar_minutes(FAKE_CIFAR_SPEED)["10"])
    assert minutes["05"] == course.predict_cifar_minutes(FAKE_CIFAR_SPEED)["05"]
