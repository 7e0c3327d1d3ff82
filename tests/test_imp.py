import json
from pathlib import Path

import pytest
import torch

from lthkit.config import ConfigError, make_config
from lthkit.determinism import use_deterministic
from lthkit.imp import load_ticket, run_imp
from lthkit.models import build_model
from lthkit.rewind import Snapshot


def small_config(**changes):
    settings = dict(dataset="mnist", model="lenet300", rounds=2, iterations=40, eval_every=20,
                    subset=600, seed=0, device="cpu", prune_rates={"fc": 0.5, "output": 0.3})
    return make_config(**{**settings, **changes})


def test_rounds_arms_and_weights_remaining(mnist_small, tmp_path):
    results = run_imp(small_config(), tmp_path, data=mnist_small, progress=False)
    assert [r.round for r in results.rounds] == [0, 1, 2]
    assert list(results.rounds[0].arms) == ["ticket"]
    assert all(list(r.arms) == ["ticket", "reinit", "random"] for r in results.rounds[1:])
    fc1 = 235200
    assert results.rounds[1].layer_weights_remaining == {
        "fc1.weight": 0.5, "fc2.weight": 0.5, "fc3.weight": 0.7}
    alive = (fc1 // 4) + 30000 // 4 + 490
    assert results.rounds[2].weights_remaining == pytest.approx(alive / 266200)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rounds"][1]["arms"]["ticket"]["early_stop_iteration"] == results.rounds[1].arms["ticket"].early_stop_iteration
    assert {"round", "weights_remaining", "arms"} <= set(saved["rounds"][0])
    assert set(saved["rounds"][1]["arms"]["reinit"]) >= {"test_accuracy", "early_stop_iteration",
                                                         "early_stop_test_accuracy", "curve"}


def test_ticket_is_the_mask_on_the_rewound_initialisation(mnist_small, tmp_path):
    run_imp(small_config(), tmp_path, data=mnist_small, progress=False)
    ticket = load_ticket(tmp_path, 2)
    init = build_model("lenet300", (1, 28, 28), seed=0)
    model = ticket.to_model()
    for name, m in ticket.mask.items():
        assert torch.equal(dict(model.named_parameters())[name], dict(init.named_parameters())[name] * m)
    trained_round1 = torch.load(tmp_path / "round_01.pt", weights_only=True)["trained"]
    # The round-2 mask keeps the largest-magnitude half of round 1's trained survivors.
    w, m1, m2 = trained_round1["fc2.weight"].abs(), load_ticket(tmp_path, 1).mask["fc2.weight"], ticket.mask["fc2.weight"]
    assert w[(m2 == 0) & (m1 == 1)].max() <= w[m2 == 1].min()


def test_same_seed_gives_an_identical_results_file(mnist_small, tmp_path):
    run_imp(small_config(), tmp_path / "a", data=mnist_small, progress=False)
    run_imp(small_config(), tmp_path / "b", data=mnist_small, progress=False)
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    run_imp(small_config(seed=1), tmp_path / "c", data=mnist_small, progress=False)
    assert (tmp_path / "a" / "results.json").read_bytes() != (tmp_path / "c" / "results.json").read_bytes()


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("stop_after,rewind", [(1, 10), (3, 10), (5, 10), (2, 0), (4, 0)])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(mnist_small, tmp_path, stop_after, rewind):
    config = small_config(rewind_iteration=rewind)
    whole = run_imp(config, tmp_path / "whole", data=mnist_small, progress=False)
    trained = []

    def killer(r, arm, result, seconds):
        trained.append((r, arm))
        if len(trained) == stop_after:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_imp(config, tmp_path / "cut", data=mnist_small, progress=False, on_arm=killer)
    again = []
    resumed = run_imp(config, tmp_path / "cut", data=mnist_small, progress=False, resume=True,
                      on_arm=lambda r, arm, *_: again.append((r, arm)))
    assert again[0] != trained[0] and len(trained) + len(again) == 7  # nothing trained twice
    assert resumed.to_dict() == whole.to_dict()
    assert (tmp_path / "cut" / "results.json").read_bytes() == (tmp_path / "whole" / "results.json").read_bytes()


def test_late_rewinding_rewinds_to_iteration_k(mnist_small, tmp_path):
    results = run_imp(small_config(rewind_iteration=20, rounds=1), tmp_path, data=mnist_small, progress=False)
    assert results.rounds[0].arms["ticket"].curve[0].iteration == 0
    for arm in ("ticket", "reinit", "random"):
        assert results.rounds[1].arms[arm].curve[0].iteration == 20
    point = Snapshot.load(tmp_path / "rewind_point.pt")
    assert point.iteration == 20
    assert not torch.equal(point.state["fc1.weight"], build_model("lenet300", (1, 28, 28)).fc1.weight)


def test_global_pruning_round(mnist_small, tmp_path):
    results = run_imp(small_config(global_pruning=True, prune_rates={"fc": 0.3, "output": 0.3}, rounds=1,
                                   controls=()), tmp_path, data=mnist_small, progress=False)
    assert results.rounds[1].weights_remaining == pytest.approx(1 - 0.3, abs=1e-5)
    assert list(results.rounds[1].arms) == ["ticket"]


def test_a_folder_holding_another_run_is_refused_before_any_work(mnist_small, tmp_path):
    run_imp(small_config(rounds=0), tmp_path, data=mnist_small, progress=False)
    with pytest.raises(ConfigError, match="already holds a run.*--resume.*--overwrite"):
        run_imp(small_config(rounds=0), tmp_path, data=None, progress=False)
    with pytest.raises(ConfigError, match="different configuration.*seed: 3 now, 0 there"):
        run_imp(small_config(rounds=0, seed=3), tmp_path, data=None, resume=True, progress=False)
    replaced = run_imp(small_config(rounds=0, seed=3), tmp_path, data=mnist_small, overwrite=True, progress=False)
    assert json.loads((tmp_path / "results.json").read_text())["config"]["seed"] == 3 == replaced.config["seed"]


def test_data_that_does_not_match_the_config_is_refused(mnist_small):
    with pytest.raises(ConfigError, match="not what the config asks for"):
        run_imp(small_config(subset=1000), data=mnist_small, progress=False)


def test_each_arm_starts_from_the_right_weights_and_mask(mnist_small, tmp_path, monkeypatch):
    import lthkit.imp_runs
    from lthkit.seeds import derive_seed

    starts = []
    real_train_together = lthkit.imp_runs.train_together

    def recording(models, data, config, *, masks, start_iteration=0, **kwargs):
        for model, mask in zip(models, masks):
            starts.append(({n: p.detach().clone() for n, p in model.named_parameters()}, mask, start_iteration))
        return real_train_together(models, data, config, masks=masks, start_iteration=start_iteration, **kwargs)

    monkeypatch.setattr(lthkit.imp_runs, "train_together", recording)
    run_imp(small_config(rounds=1, rewind_iteration=20), tmp_path, data=mnist_small, progress=False)
    (dense0, _, s0), (ticket, tmask, s1), (reinit, rmask, s2), (random, xmask, s3) = starts
    point = Snapshot.load(tmp_path / "rewind_point.pt")
    init = dict(build_model("lenet300", (1, 28, 28), seed=0).named_parameters())
    fresh = dict(build_model("lenet300", (1, 28, 28), seed=derive_seed("reinit", 0, 1)).named_parameters())
    assert (s0, s1, s2, s3) == (0, 20, 20, 20)
    assert torch.equal(dense0["fc1.weight"], init["fc1.weight"])
    assert rmask is tmask and xmask != tmask
    assert all(xmask.alive(n) == tmask.alive(n) for n in tmask)
    for name in tmask:
        assert torch.equal(ticket[name], point.state[name] * tmask[name])
        assert torch.equal(reinit[name], fresh[name] * tmask[name])
        assert torch.equal(random[name], point.state[name] * xmask[name])
    assert torch.equal(ticket["fc1.bias"], point.state["fc1.bias"]) and torch.equal(random["fc1.bias"], point.state["fc1.bias"])


def test_the_signs_control_is_reinit_with_the_rewound_signs(mnist_small, tmp_path, monkeypatch):
    import lthkit.imp_runs

    starts = []
    real_train_together = lthkit.imp_runs.train_together

    def recording(models, data, config, *, masks, start_iteration=0, **kwargs):
        starts.append([{n: p.detach().clone() for n, p in m.named_parameters()} for m in models])
        return real_train_together(models, data, config, masks=masks, start_iteration=start_iteration, **kwargs)

    monkeypatch.setattr(lthkit.imp_runs, "train_together", recording)
    results = run_imp(small_config(rounds=1, controls=("reinit", "signs")), tmp_path, data=mnist_small, progress=False)
    assert list(results.rounds[1].arms) == ["ticket", "reinit", "signs"]
    (ticket, reinit, signs), mask = starts[1], load_ticket(tmp_path, 1).mask
    for name in mask:
        kept = mask[name] == 1
        assert torch.count_nonzero(signs[name][~kept]) == 0
        assert torch.equal(signs[name][kept].sign(), ticket[name][kept].sign())
        assert torch.equal(signs[name][kept].abs(), reinit[name][kept].abs())
    assert results.rounds[1].arms["signs"] != results.rounds[1].arms["reinit"]


@pytest.mark.parametrize("keep_signs,message", [
    (lambda initial, fresh: fresh * initial.sign(), "gave weights of fc1.weight signs other than the initial"),
    (lambda initial, fresh: initial.clone(), "did not keep the fresh magnitudes of fc1.weight"),
    (lambda initial, fresh: fresh.abs().sum(), "must return a tensor of fc1.weight's shape"),
])
def test_a_broken_keep_signs_stops_the_run_naming_it(mnist_small, tmp_path, keep_signs, message):
    from lthkit.imp import RuleError, Rules

    with pytest.raises(RuleError, match=message):
        run_imp(small_config(rounds=1, controls=("signs",)), tmp_path, data=mnist_small, progress=False,
                rules=Rules(keep_signs=keep_signs))


def test_stale_files_of_a_run_killed_before_its_first_result_are_not_reused(mnist_small, tmp_path):
    other = build_model("lenet300", (1, 28, 28), seed=42)
    Snapshot.of(other).save(tmp_path / "rewind_point.pt")
    torch.save({"mask": {}, "trained": {}}, tmp_path / "round_00.pt")
    fresh = run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False)
    clean = run_imp(small_config(rounds=1), tmp_path / "clean", data=mnist_small, progress=False)
    assert fresh.to_dict() == clean.to_dict()


# --- Rules: a learner's own pruning, rewinding and controls inside run_imp -------------------------

def learners_rules():
    """Rules written as a learner would (not lthkit's function objects), doing what lthkit does."""
    from learner_solutions import layer_rates_right, masked_step_right, prune_argsort, random_right, rewind_right

    from lthkit.imp import Rules
    from lthkit.models import init_weights

    def reinit(model, mask, seed):
        init_weights(model, seed)
        return rewind_right(model, model.state_dict(), mask)

    return Rules(prune_layer=prune_argsort, rewind=rewind_right, reinit=reinit, random_mask=random_right,
                 masked_step=masked_step_right, layer_rates=layer_rates_right)


def test_a_learners_rules_reproduce_lthkits_run_bit_for_bit(mnist_small, tmp_path):
    ours = run_imp(small_config(), tmp_path / "lthkit", data=mnist_small, progress=False)
    theirs = run_imp(small_config(), tmp_path / "learner", data=mnist_small, progress=False, rules=learners_rules())
    assert theirs.to_dict() == ours.to_dict()
    assert set(json.loads((tmp_path / "learner" / "rules.json").read_text())) == {
        "prune_layer", "rewind", "reinit", "random_mask", "masked_step", "layer_rates"}
    assert not (tmp_path / "lthkit" / "rules.json").exists()


def test_a_learners_masked_step_trains_every_arm(mnist_small, tmp_path):
    """The learner's step is the one IMP trains with: a step that forgets the mask revives weights."""
    from dataclasses import replace

    def unmasked(model, mask, optimizer, loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    results = run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False,
                      rules=replace(learners_rules(), masked_step=unmasked))
    ticket = load_ticket(tmp_path, 1)
    w = torch.load(tmp_path / "round_01.pt", weights_only=True)["trained"]["fc1.weight"]
    assert bool((w[ticket.mask["fc1.weight"] == 0] != 0).any())
    assert "your own masked step" in json.dumps(json.loads((tmp_path / "timings.json").read_text()))
    assert results.rounds[1].arms["ticket"].test_accuracy > 0


def test_a_signed_threshold_changes_the_masks(mnist_small, tmp_path):
    from dataclasses import replace

    def signed(weights, mask, rate):  # the classic mistake: large negative weights go first
        alive = mask.flatten().nonzero().flatten()
        smallest = alive[torch.argsort(weights.flatten()[alive], stable=True)[: int(rate * len(alive) + 0.5)]]
        new = mask.clone().flatten()
        new[smallest] = 0
        return new.view_as(mask)

    run_imp(small_config(rounds=1), tmp_path / "a", data=mnist_small, progress=False)
    run_imp(small_config(rounds=1), tmp_path / "b", data=mnist_small, progress=False,
            rules=replace(learners_rules(), prune_layer=signed))
    assert load_ticket(tmp_path / "a", 1).mask != load_ticket(tmp_path / "b", 1).mask
    w = torch.load(tmp_path / "b" / "round_00.pt", weights_only=True)["trained"]["fc1.weight"]
    assert w[load_ticket(tmp_path / "b", 1).mask["fc1.weight"] == 0].max() < 0


@pytest.mark.parametrize("broken,message", [
    ("revive", "brought back weights of fc1.weight"),
    ("unmasked_rewind", "left pruned weights of fc1.weight non-zero"),
    ("wrong_counts", "keeps as many weights in each layer"),
    ("not_a_mask", "returned for fc1.weight NoneType, not a tensor"),
    ("rates_per_kind", "layer_rates must return a rate for each of"),
])
def test_a_broken_rule_stops_the_run_naming_the_rule(mnist_small, tmp_path, broken, message):
    from dataclasses import replace

    from lthkit.imp import RuleError

    rules = learners_rules()
    change = {
        "revive": {"prune_layer": lambda w, m, rate: torch.ones_like(m) * (torch.rand_like(m) > rate)},
        "unmasked_rewind": {"rewind": lambda model, initial, mask: (model.load_state_dict(initial), model)[1]},
        "wrong_counts": {"random_mask": lambda mask, g: {n: (torch.rand(m.shape, generator=g) < 0.5).float()
                                                          for n, m in mask.items()}},
        "not_a_mask": {"prune_layer": lambda w, m, rate: None},
        "rates_per_kind": {"layer_rates": lambda model, kind_rates: dict(kind_rates)},
    }[broken]
    with pytest.raises(RuleError, match=message):
        run_imp(small_config(rounds=2), tmp_path, data=mnist_small, progress=False, rules=replace(rules, **change))


def test_resuming_with_an_edited_rule_is_refused(mnist_small, tmp_path):
    from dataclasses import replace

    from lthkit.masks import prune_layer

    run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, rules=learners_rules())
    edited = replace(learners_rules(), prune_layer=lambda w, m, rate: prune_layer(w, m, rate))
    with pytest.raises(ConfigError, match="other rules"):
        run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, resume=True, rules=edited)
    again = run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, resume=True,
                    rules=learners_rules())
    assert len(again.rounds) == 2


# --- Global pruning, one-shot pruning, load_ticket of lr-rewinding and fine-tuning -----------------

def test_global_pruning_prunes_layers_at_different_rates_than_layer_wise(mnist_small, tmp_path):
    """The same total left by one threshold over all layers, not by each layer's own rate."""
    rate = {"fc": 0.3, "output": 0.3}
    glob = run_imp(small_config(global_pruning=True, prune_rates=rate, rounds=1, controls=()), tmp_path / "global",
                   data=mnist_small, progress=False)
    layer = run_imp(small_config(global_pruning=False, prune_rates=rate, rounds=1, controls=()), tmp_path / "layer",
                    data=mnist_small, progress=False)
    assert glob.rounds[1].weights_remaining == pytest.approx(layer.rounds[1].weights_remaining, abs=1e-5)
    assert all(v == pytest.approx(0.7, abs=1e-3) for v in layer.rounds[1].layer_weights_remaining.values())
    rates = glob.rounds[1].layer_weights_remaining
    assert max(rates.values()) - min(rates.values()) > 0.05, rates
    trained = torch.load(tmp_path / "global" / "round_00.pt", weights_only=True)["trained"]
    mask = load_ticket(tmp_path / "global", 1).mask
    kept = torch.cat([trained[n][m == 1].abs() for n, m in mask.items()])
    pruned = torch.cat([trained[n][m == 0].abs() for n, m in mask.items()])
    assert pruned.max() <= kept.min()  # one threshold for the whole network


@pytest.mark.parametrize("retrain", ["lr-rewind", "finetune"])
def test_load_ticket_of_lr_rewinding_and_fine_tuning_is_what_the_round_trained(mnist_small, tmp_path, monkeypatch,
                                                                                 retrain):
    import lthkit.imp_runs

    starts = []
    real = lthkit.imp_runs.train_together

    def recording(models, data, config, **kwargs):
        starts.append({k: v.clone() for k, v in models[0].state_dict().items()})
        return real(models, data, config, **kwargs)

    monkeypatch.setattr(lthkit.imp_runs, "train_together", recording)
    run_imp(small_config(rounds=2, controls=(), retrain=retrain, rewind_iteration=10), tmp_path, data=mnist_small,
            progress=False)
    for r in (1, 2):
        ticket = load_ticket(tmp_path, r)
        assert ticket.snapshot.iteration == 10
        model = ticket.to_model().state_dict()
        assert all(torch.equal(model[k], starts[r][k]) for k in starts[r]), r
    (tmp_path / "round_01.pt").unlink()
    with pytest.raises(ConfigError, match=f"round 2 of .* \\({retrain}\\) started from round 1's trained weights, "
                                          "but round_01.pt is missing"):
        load_ticket(tmp_path, 2)


# --- Mid-round checkpoints: a run killed inside a round resumes there ------------------------------

def kill_at_batch(monkeypatch, n):
    """Raise Interrupted when training asks for its ``n``-th batch (counted over the whole run);
    return the list of iterations trained, which the test may clear."""
    from lthkit.train import BatchOrder

    trained = []
    real = BatchOrder.__call__

    def order(self, i):
        trained.append(i)
        if len(trained) == n:
            raise Interrupted
        return real(self, i)

    monkeypatch.setattr(BatchOrder, "__call__", order)
    return trained


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("settings,kill_at,checkpoint", [
    # Adam, rewinding to initialisation, killed in round 1 at iteration 25: resumes at 20
    ({"rewind_iteration": 0}, 40 + 26, (1, 20)),
    # SGD with a warm-up, a milestone and augmentation, late rewinding, killed in round 0 (no
    # results.json yet) after the rewind point was taken: resumes at 30
    ({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "warmup": 5, "milestones": (25,), "augment": True,
      "rewind_iteration": 10}, 36, (0, 30)),
])
def test_a_run_killed_mid_round_resumes_at_its_checkpoint_and_ends_bit_for_bit(mnist_small, tmp_path, monkeypatch,
                                                                                 settings, kill_at, checkpoint, device,
                                                                                 determinism_restored):
    """On a GPU in deterministic mode (cuBLAS's workspace setting, deterministic algorithms) too."""
    if device == "cuda":
        use_deterministic()
    config = small_config(eval_every=10, device=device, **settings)
    whole = run_imp(config, tmp_path / "whole", data=mnist_small, progress=False)
    trained = kill_at_batch(monkeypatch, kill_at)
    with pytest.raises(Interrupted):
        run_imp(config, tmp_path / "cut", data=mnist_small, progress=False, checkpoint_every_s=0)
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert (saved["round"], saved["training"]["iteration"]) == checkpoint and trained[-1] == kill_at % 40 - 1
    trained = kill_at_batch(monkeypatch, 10**9)
    resumed = run_imp(config, tmp_path / "cut", data=mnist_small, progress=False, resume=True, checkpoint_every_s=0)
    k = settings["rewind_iteration"]
    assert trained[0] == checkpoint[1] and len(trained) == (40 - checkpoint[1]) + (40 - k) * (2 - checkpoint[0])
    assert resumed.to_dict() == whole.to_dict()
    assert (tmp_path / "cut" / "results.json").read_bytes() == (tmp_path / "whole" / "results.json").read_bytes()
    point, whole_point = (Snapshot.load(tmp_path / run / "rewind_point.pt") for run in ("cut", "whole"))
    assert all(torch.equal(point.state[n], whole_point.state[n]) for n in point.state)
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()


def test_a_kill_during_a_checkpoint_write_resumes_from_the_previous_checkpoint(mnist_small, tmp_path, monkeypatch):
    config = small_config(eval_every=10)
    whole = run_imp(config, tmp_path / "whole", data=mnist_small, progress=False)
    real_save, writes = torch.save, []

    def dies_in_the_fifth_checkpoint(obj, f, *args, **kwargs):
        if Path(str(getattr(f, "name", ""))).name.startswith(".checkpoint.pt."):
            writes.append(obj["training"]["iteration"])
            if len(writes) == 5:  # round 0 wrote 10, 20, 30; round 1 wrote 10 and dies writing 20
                real_save(obj, f, *args, **kwargs)
                f.truncate(f.tell() // 3)
                raise Interrupted
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_in_the_fifth_checkpoint)
    with pytest.raises(Interrupted):
        run_imp(config, tmp_path / "cut", data=mnist_small, progress=False, checkpoint_every_s=0)
    monkeypatch.undo()
    assert writes == [10, 20, 30, 10, 20]
    assert not list((tmp_path / "cut").glob(".*.tmp"))
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert (saved["round"], saved["training"]["iteration"]) == (1, 10)
    trained = kill_at_batch(monkeypatch, 10**9)
    resumed = run_imp(config, tmp_path / "cut", data=mnist_small, progress=False, resume=True)
    assert trained[0] == 10 and resumed.to_dict() == whole.to_dict()
    assert (tmp_path / "cut" / "results.json").read_bytes() == (tmp_path / "whole" / "results.json").read_bytes()


def test_a_checkpoint_of_other_settings_is_not_resumed(mnist_small, tmp_path, monkeypatch):
    kill_at_batch(monkeypatch, 25)
    with pytest.raises(Interrupted):  # killed in round 0: no results.json records these settings
        run_imp(small_config(rounds=0, eval_every=10), tmp_path, data=mnist_small, progress=False,
                checkpoint_every_s=0)
    monkeypatch.undo()
    other = small_config(rounds=0, eval_every=10, seed=1)
    trained = kill_at_batch(monkeypatch, 10**9)
    resumed = run_imp(other, tmp_path, data=mnist_small, progress=False, resume=True)
    assert trained[0] == 0
    assert resumed.to_dict() == run_imp(other, tmp_path / "clean", data=mnist_small, progress=False).to_dict()


def test_the_rewind_point_of_k0_is_written_once(mnist_small, tmp_path, monkeypatch):
    from lthkit.run_folder import RunFolder

    def stop(r, arm, *_):
        raise Interrupted

    with pytest.raises(Interrupted):
        run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, on_arm=stop)
    written = (tmp_path / "rewind_point.pt").read_bytes()

    def refuse(self, snapshot):
        raise AssertionError("the rewind point of k=0 was written again")

    monkeypatch.setattr(RunFolder, "save_snapshot", refuse)
    run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, resume=True)
    assert (tmp_path / "rewind_point.pt").read_bytes() == written


def test_a_resume_with_other_evaluation_sets_is_refused(mnist_small, tmp_path):
    """``eval_images`` is part of the config; when it is unset, the data passed in decides."""
    def stop(r, arm, *_):
        raise Interrupted

    with pytest.raises(Interrupted):
        run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, on_arm=stop)
    with pytest.raises(ConfigError, match="different configuration.*eval_images: 500 now, None there"):
        run_imp(small_config(rounds=1, eval_images=500), tmp_path, data=mnist_small, progress=False, resume=True)
    with pytest.raises(ConfigError, match="measured on 1000 validation and 1000 test images, but the data passed in "
                                          "has 500 and 500: resume with the same data"):
        run_imp(small_config(rounds=1), tmp_path, data=mnist_small.with_eval_size(500), progress=False, resume=True)
    resumed = run_imp(small_config(rounds=1), tmp_path, data=mnist_small, progress=False, resume=True)
    assert len(resumed.rounds) == 2
    with pytest.raises(ConfigError, match="measured on 1000 validation and 1000 test images, but the data passed in "
                                          "has 500 and 500: train round 0 here instead"):
        run_imp(small_config(rounds=1), tmp_path / "shares", data=mnist_small.with_eval_size(500), progress=False,
                dense_from=tmp_path)


def test_every_setting_shapes_round_0_unless_named_as_a_later_rounds_one():
    from dataclasses import fields

    from lthkit.config import ExperimentConfig
    from lthkit.run_records import AFTER_ROUND_0, ROUND_0_SETTINGS
    from lthkit.train import TrainConfig

    names = {f.name for f in fields(ExperimentConfig) + fields(TrainConfig)} - {"training", "data_seed"}
    assert set(ROUND_0_SETTINGS) == names - set(AFTER_ROUND_0) - {"epochs", "rewind_iteration"}
    assert {"dataset", "model", "iterations", "lr", "gamma", "seed", "subset", "eval_images", "device",
            "augment"} <= set(ROUND_0_SETTINGS)
    assert not {"controls", "retrain", "prune_rates"} & set(ROUND_0_SETTINGS)


def test_imp_takes_the_transformer_per_kind_with_nothing_special_in_the_loop(mnist_small, tmp_path):
    from lthkit.masks import count_to_prune
    from lthkit.models import prunable_layers

    rates = {"embedding": 0.1, "attention": 0.5, "mlp": 0.3, "output": 0.2}
    config = small_config(model="vit", rounds=2, prune_rates=rates, controls=("reinit", "random"))
    results = run_imp(config, tmp_path, data=mnist_small, progress=False)
    assert [list(r.arms) for r in results.rounds] == [["ticket"]] + [["ticket", "reinit", "random"]] * 2
    model = build_model("vit", (1, 28, 28), seed=0)
    kinds = prunable_layers(model)
    for r in (1, 2):
        mask = load_ticket(tmp_path, r).mask
        for name, kind in kinds.items():
            alive = mask.size(name)
            for _ in range(r):
                alive -= count_to_prune(rates[kind], alive)
            assert mask.alive(name) == alive, (name, r)
        trained = torch.load(tmp_path / f"round_{r:02d}.pt", weights_only=True)["trained"]
        assert all(torch.count_nonzero(trained[n][mask[n] == 0]) == 0 for n in mask)
        ticket = load_ticket(tmp_path, r).to_model()
        init = model.state_dict()
        assert all(torch.equal(ticket.state_dict()[n], init[n] * mask[n] if n in mask else init[n]) for n in init)
