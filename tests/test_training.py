import numpy as np
import pytest
import torch

from hraml_core.tasks import encode_targets
from hraml_core import params
from hraml_core.training import TrainingDiverged, TrainConfig, TrainingRun, torch_threads


def blobs(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y]
    return X, y


def run_for(config, X=None, y=None, steps=30):
    if X is None:
        X, y = blobs()
    t = encode_targets(y)
    run = TrainingRun(X, t.Y, t.task, config)
    for _ in range(steps):
        run.step()
    run.flush()
    return run, run.state.losses


def test_seeded_runs_are_reproducible_and_seeds_matter():
    cfg = TrainConfig(hidden=(16,), dim=8, batch_size=32, seed=3)
    a, la = run_for(cfg)
    b, lb = run_for(cfg)
    c, lc = run_for(cfg.replace(seed=4))
    assert la == lb
    assert la != lc
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


def test_training_reduces_the_alignment_loss_and_counts_pairs():
    run, losses = run_for(TrainConfig(hidden=(16,), dim=8, batch_size=40, lr=1e-2), steps=60)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert run.state.step == 60
    assert run.state.pairs_seen == 60 * (40 * 39 // 2)
    assert run.sampler.steps_per_epoch == 3
    assert run.epoch == pytest.approx(20.0)


def test_pairs_and_hard_samplers_count_their_pairs():
    run, _ = run_for(TrainConfig(hidden=(8,), dim=4, sampler="pairs"), steps=25)
    assert run.state.pairs_seen == 25
    run, _ = run_for(TrainConfig(hidden=(8,), dim=4, sampler="hard", batch_size=30, partners=4), steps=5)
    assert run.state.pairs_seen == 5 * 30 * 4


@pytest.mark.parametrize("task", ["multilabel", "distribution"])
def test_multilabel_and_distribution_targets_train(task):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 5))
    if task == "multilabel":
        Y = (X[:, :4] > 0).astype(float)
    else:
        logits = X[:, :3] * 2
        Y = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    run = TrainingRun(X, Y, task, TrainConfig(hidden=(32,), dim=8, batch_size=50, lr=1e-2, relation="l1"))
    for _ in range(80):
        run.step()
    losses = run.state.losses
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    if task == "multilabel":
        assert run.g_max == 4.0 and run.scale == pytest.approx(0.5)  # 4 labels can differ -> 2


def test_a_diverging_run_raises_and_keeps_the_last_finite_weights():
    X, y = blobs()
    t = encode_targets(y)
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, optimizer="sgd", lr=1e12, batch_size=40))
    states = []
    with pytest.raises(TrainingDiverged, match="weights restored"):
        for _ in range(50):
            states.append(run.state_dict())
            run.step()
    after = run.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    # The failing step started from weights whose loss was not finite; the run goes back to the
    # weights of the step before, the last whose loss was finite.
    for k in after:
        assert torch.equal(after[k], states[-2][k])
    assert run.state.step == len(states) - 2 == len(run.state.losses)  # the count goes back with them


def test_an_exploding_but_finite_loss_counts_as_diverged():
    # Adam normalises its steps: lr = 1e9 moves every weight by ~1e9 and tanh saturates, so the
    # alignment term stays finite while the weight penalty explodes.
    X, y = blobs()
    t = encode_targets(y)
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, lr=1e9, batch_size=40))
    start = run.state_dict()
    run.step()
    first = run.state.losses[0]
    with pytest.raises(TrainingDiverged, match=rf"exploded from {first:.3g} to .* at step 2: the learning rate \(1e\+09\)"):
        run.step()
    for k, v in run.state_dict().items():
        assert torch.equal(v, start[k])  # the weights that gave the first, sane loss
    assert run.state.losses == [] and run.state.step == 0 and run.state.pairs_seen == 0


def test_deferred_loss_checks_change_nothing_but_when_losses_are_read():
    X, y = blobs()
    t = encode_targets(y)
    every = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, batch_size=40, check_every=1))
    deferred = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, batch_size=40, check_every=5))
    for _ in range(7):
        every.step()
        deferred.step()
    assert len(every.state.losses) == 7 and len(deferred.state.losses) == 5  # read at the 5th step
    assert deferred.state.step == 7
    deferred.flush()
    assert deferred.state.losses == every.state.losses and deferred.state.last_loss == every.state.losses[-1]
    for k, v in every.state_dict().items():
        assert torch.equal(v, deferred.state_dict()[k])


def test_a_deferred_check_goes_back_to_the_last_checked_weights():
    X, y = blobs()
    t = encode_targets(y)
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, optimizer="sgd", lr=1e-2, batch_size=40,
                                                     check_every=4))
    states = []
    for _ in range(6):
        states.append(run.state_dict())
        run.step()
    # steps 1-4 were checked at step 4, before its update: the checkpoint is the weights of step 4
    run.optimizer.param_groups[0]["lr"] = 1e12  # steps 7 and on blow up
    with pytest.raises(TrainingDiverged, match=r"at step 8: .* weights restored to step 3"):
        for _ in range(4):
            run.step()
    for k, v in run.state_dict().items():
        assert torch.equal(v, states[3][k])
    assert run.state.step == 3 == len(run.state.losses) and run.state.pairs_seen == 3 * (40 * 39 // 2)
    assert not run.optimizer.state  # moments from the failed steps are dropped


def test_config_validation_names_every_problem():
    with pytest.raises(ValueError, match="sampler must be one of") as e:
        TrainConfig(sampler="triplets", lr=-1)
    assert "lr must be a positive" in str(e.value)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    for bad in (0, 2.5, "4"):
        with pytest.raises(ValueError, match="check_every must be a positive int"):
            TrainConfig(check_every=bad)
    assert TrainConfig().loss_check_interval() == 1  # the CPU: every step
    assert TrainConfig(device="cuda").loss_check_interval() == 16  # a GPU: each read waits for it
    assert TrainConfig(device="cuda", check_every=3).loss_check_interval() == 3
    assert TrainConfig(sampler="pairs").loss_check_interval() == 16  # one pair: the check's copy would show
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="rows"):
        TrainingRun(np.zeros((4, 2)), np.eye(2)[[0, 1, 0]], "classification")


def test_layer_sizes_parse_and_thread_context():
    hidden = params.get("hidden")
    assert hidden.parse("256, 128") == (256, 128)
    assert hidden.parse(64) == (64,)
    assert hidden.parse("") == ()
    with pytest.raises(ValueError, match="hidden must be integers"):
        hidden.parse("a,b")
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_amsgrad_is_adam_that_keeps_the_largest_second_moment():
    X, y = blobs()
    t = encode_targets(y)
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, batch_size=40, optimizer="amsgrad"))
    group = run.optimizer.param_groups[0]
    # torch's fused Adam kernel with amsgrad (hraml_core.optim; no torch.optim object, see there why)
    assert run.optimizer.kind == "amsgrad" and group["amsgrad"] and group["weight_decay"] == 2 * 5e-5
    for _ in range(3):
        run.step()
    assert all("max_exp_avg_sq" in st for st in run.optimizer.state.values())


def test_read_only_inputs_are_copied_not_shared():
    # torch cannot share a read-only buffer safely (it warns once per process): the run copies it
    X, y = blobs()
    t = encode_targets(y)
    X = np.asarray(X, dtype=np.float32)
    X.flags.writeable = False
    writable = np.array(X)
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(8,), dim=4))
    assert not np.shares_memory(run.X.numpy(), X)
    assert np.shares_memory(TrainingRun(writable, t.Y, t.task, TrainConfig(hidden=(8,), dim=4)).X.numpy(), writable)
    run.step()
