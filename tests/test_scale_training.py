"""Training at scale: the fused optimiser, Algorithm 1's closed-form step, the blocked all-pairs
loss, the first fit's imports and the CUDA-graph step (skipped without a GPU)."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from hraml_core.closed_form import ClosedFormPairs, pair_loss_and_grads
from hraml_core.encoder import MLPEncoder
from hraml_core.loss import (all_pairs_alignment_loss, alignment_loss, blocked_all_pairs_alignment_loss,
                             pair_block_rows, pairwise_sq_dists)
from hraml_core.optim import FusedOptimizer
from hraml_core.tasks import encode_targets
from hraml_core.training import TrainConfig, TrainingDiverged, TrainingRun

from conftest import REPO


def blobs(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return (rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y]).astype(np.float32), y


def torch_optimizer(kind, params, lr, weight_decay, momentum=0.9):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, amsgrad=kind == "amsgrad")


# -- the fused optimiser ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["adam", "amsgrad", "sgd"])
def test_fused_optimizer_steps_as_torch_optim(kind):
    gen = torch.Generator().manual_seed(0)
    shapes = [(12, 5), (12,), (3, 12), (3,)]
    ours = [torch.randn(s, generator=gen) for s in shapes]
    theirs = [p.clone().requires_grad_() for p in ours]
    opt = FusedOptimizer(ours, kind, lr=0.05, weight_decay=1e-2, momentum=0.9)
    ref = torch_optimizer(kind, theirs, lr=0.05, weight_decay=1e-2)
    for _ in range(6):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, g in zip(theirs, grads):
            p.grad = g.clone()
        ref.step()
        opt.step(grads)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=1e-6)
    if kind == "amsgrad":
        assert all("max_exp_avg_sq" in st for st in opt.state.values())
    opt.state.clear()  # forgetting the moments: the next step starts them again
    opt.step([torch.ones(s) for s in shapes])
    assert len(opt.state) == (len(shapes) if kind != "sgd" or opt.param_groups[0]["momentum"] else 0)


def test_fused_optimizer_rejects_bad_input():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        FusedOptimizer([torch.zeros(2)], "lbfgs")
    with pytest.raises(ValueError, match="no parameters"):
        FusedOptimizer([], "adam")
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="no gradient"):
        FusedOptimizer([p], "adam").step()


@pytest.mark.slow
def test_a_fit_does_not_import_torch_dynamo():
    # torch.optim's first optimiser imports torch._dynamo (seconds, once per process); a run
    # builds none on the CPU, so a fresh process's first fit does not pay it.
    code = (
        "import sys; import numpy as np; from hraml_core import HRAML\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(60, 4)); y = np.arange(60) % 3\n"
        "for s in ('batch', 'hard', 'pairs'):\n"
        "    for o in ('adam', 'amsgrad', 'sgd'):\n"
        "        HRAML(sampler=s, optimizer=o, max_epochs=2, batch_size=16, random_state=0).fit(X, y).transform(X)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- Algorithm 1 in closed form --------------------------------------------------------------------

@pytest.mark.parametrize("hidden,out_activation", [((16,), "tanh"), ((16, 8), "none"), ((), "tanh")])
def test_closed_form_pair_gradient_is_autograds(hidden, out_activation):
    # float64, so that 1e-6 measures the maths, not float32 rounding
    gen = torch.Generator().manual_seed(3)
    enc = MLPEncoder(6, hidden, 5, out_activation, "paper", gen).double()
    x2 = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    target = 0.7
    loss, grads = pair_loss_and_grads(enc, x2.numpy(), target)
    z = enc(x2)
    ref = alignment_loss(pairwise_sq_dists(z)[0, 1:2], torch.tensor([target], dtype=torch.float64), reduction="mean")
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-6, abs=1e-12)
    for g, p in zip(grads, enc.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["adam", "amsgrad", "sgd"])
def test_one_closed_form_step_is_one_autograd_and_torch_optim_step(kind):
    gen = torch.Generator().manual_seed(5)
    ours = MLPEncoder(6, (16,), 5, generator=gen).double()
    theirs = MLPEncoder(6, (16,), 5).double()
    theirs.load_state_dict(ours.state_dict())
    x2 = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    opt = FusedOptimizer(list(ours.parameters()), kind, lr=0.05, weight_decay=1e-3)
    ref = torch_optimizer(kind, list(theirs.parameters()), lr=0.05, weight_decay=1e-3)
    step = ClosedFormPairs(ours)
    for _ in range(3):
        loss, grads = step.loss_and_grads(x2.numpy(), 0.4)
        opt.step(grads)
        ref.zero_grad()
        alignment_loss(pairwise_sq_dists(theirs(x2))[0, 1:2], torch.tensor([0.4], dtype=torch.float64), "mean").backward()
        ref.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            torch.testing.assert_close(a.detach(), b.detach(), atol=1e-6, rtol=1e-6)


def test_closed_form_gradient_at_a_zero_output_follows_the_normalisation_eps():
    # A zero-bias layer with zero input gives u = 0: F.normalize divides by eps, not by ||u||.
    enc = MLPEncoder(3, (), 4, "none", "paper", torch.Generator().manual_seed(0))
    x2 = np.array([[0, 0, 0], [1, 2, 3]], dtype=np.float32)
    loss, grads = pair_loss_and_grads(enc, x2, 0.3)
    ref = alignment_loss(pairwise_sq_dists(enc(torch.from_numpy(x2)))[0, 1:2], torch.tensor([0.3]), "mean")
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    for g, p in zip(grads, enc.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad", "sgd"])
@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_closed_form_step_is_the_autograd_and_torch_optim_step(optimizer, task, monkeypatch):
    X, y = blobs()
    if task == "multilabel":  # g computed per pair, not looked up in the table of distinct rows
        y = (np.random.default_rng(1).random((len(y), 12)) < 0.4).astype(int)
        monkeypatch.setattr(TrainingRun, "MAX_CACHED_ROWS", 0)
    t = encode_targets(y)
    # input_noise 0: the label-set default adds noise, which the two steps draw from different generators
    config = TrainConfig(hidden=(16,), dim=8, sampler="pairs", optimizer=optimizer, lr=0.05, seed=4, input_noise=0.0)
    fast = TrainingRun(X, t.Y, t.task, config)
    slow = TrainingRun(X, t.Y, t.task, config, closed_form=False)
    assert fast.closed_form and not slow.closed_form
    assert (fast._G_np is None) == (task == "multilabel")
    slow.optimizer = torch_optimizer(optimizer, list(slow.encoder.parameters()), lr=0.05,
                                     weight_decay=2 * config.weight_decay)
    for _ in range(3):  # float32 here: rounding differences, which Adam's first steps amplify
        fast.step()
        slow.step()
        for a, b in zip(fast.encoder.parameters(), slow.encoder.parameters()):
            torch.testing.assert_close(a.detach(), b.detach(), atol=2e-5, rtol=1e-5)
    assert fast.state.losses == pytest.approx(slow.state.losses, rel=1e-5, abs=1e-6)
    assert fast.state.pairs_seen == slow.state.pairs_seen == 3


def test_closed_form_step_falls_back_where_it_does_not_apply():
    X, y = blobs()
    t = encode_targets(y)
    assert not TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(8,), dim=4)).closed_form  # batch sampler
    with pytest.raises(ValueError, match="closed_form needs the pairs sampler"):
        TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(8,), dim=4), closed_form=True)


def test_closed_form_divergence_guard_restores_the_last_checked_weights():
    X, y = blobs()
    t = encode_targets(y)
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(16,), dim=8, sampler="pairs", optimizer="sgd", lr=0.01,
                                                     check_every=1))
    assert run.closed_form
    for _ in range(5):
        run.step()
    good = run.state_dict()
    run.optimizer.param_groups[0]["lr"] = 1e12
    run.step()  # step 6: its loss (on the weights of step 5) is checked and fine; its update explodes
    with pytest.raises(TrainingDiverged, match=r"at step 7: .* weights restored to step 5"):
        run.step()
    assert run.state.step == 5 == len(run.state.losses) and run.state.pairs_seen == 5
    assert not run.optimizer.state
    for k, v in run.state_dict().items():
        assert torch.equal(v, good[k])
    run.optimizer.param_groups[0]["lr"] = 0.01
    run.step()  # training goes on from there
    assert run.state.step == 6 and np.isfinite(run.state.losses[-1])


def test_closed_form_views_follow_a_replaced_parameter():
    enc = MLPEncoder(4, (8,), 3, generator=torch.Generator().manual_seed(0))
    step = ClosedFormPairs(enc)
    x2 = np.array([[1, 0, 2, 0], [0, 1, 0, -1]], np.float32)
    before = step.loss_and_grads(x2, 0.5)[0]
    with torch.no_grad():
        enc.layers[0].weight.data = enc.layers[0].weight.data * 2  # new storage
        enc.layers[0].bias.data = enc.layers[0].bias.data + 0.5
    after = step.loss_and_grads(x2, 0.5)[0]
    assert after == pytest.approx(pair_loss_and_grads(enc, x2, 0.5)[0]) and after != before


# -- the blocked all-pairs loss --------------------------------------------------------------------

@pytest.mark.parametrize("block", [1, 3, 7, 16, 40])
def test_blocked_loss_has_the_unblocked_value_and_gradient(block):
    gen = torch.Generator().manual_seed(0)
    B = 16
    Z = torch.nn.functional.normalize(torch.randn(B, 5, generator=gen, dtype=torch.float64), dim=1)
    G = torch.rand(B, B, generator=gen, dtype=torch.float64) * 2
    G = (G + G.T) / 2
    Z1, Z2, Z3 = (Z.clone().requires_grad_() for _ in range(3))
    full = all_pairs_alignment_loss(Z1, G)
    blocked = blocked_all_pairs_alignment_loss(Z2, lambda s, e: G[s:e], block)
    off = ~torch.eye(B, dtype=torch.bool)  # autograd on the plain definition: mean over i != j
    reference = alignment_loss(pairwise_sq_dists(Z3)[off], G[off], reduction="mean")
    for loss in (full, blocked, reference):
        loss.backward()
    assert blocked.item() == pytest.approx(full.item(), rel=1e-6, abs=1e-12)
    assert blocked.item() == pytest.approx(reference.item(), rel=1e-6, abs=1e-12)
    torch.testing.assert_close(Z2.grad, Z1.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(Z2.grad, Z3.grad, atol=1e-6, rtol=1e-6)


def test_pair_block_rows_keeps_a_blocks_matrices_within_the_budget():
    assert pair_block_rows(256, 1024 * 2**20) == 256  # fits whole: one block
    rows = pair_block_rows(10_000, 100 * 2**20)
    assert rows < 10_000 and rows * 10_000 * 12 <= 100 * 2**20 < (rows + 1) * 10_000 * 12
    assert pair_block_rows(10_000, 1) == 1


@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_a_run_over_its_pair_memory_takes_the_same_steps_in_blocks(task, monkeypatch):
    X, y = blobs(n=200)
    if task == "multilabel":  # G's rows from the relation itself, not from the table
        y = (np.random.default_rng(1).random((len(y), 12)) < 0.4).astype(int)
        monkeypatch.setattr(TrainingRun, "MAX_CACHED_ROWS", 0)
    t = encode_targets(y)
    config = TrainConfig(hidden=(16,), dim=8, batch_size=64, seed=2)
    whole = TrainingRun(X, t.Y, t.task, config)
    # 64 x 64 x 12 bytes = 48 KiB for the whole batch: a budget of 16 KiB gives blocks of 21 rows
    blocked = TrainingRun(X, t.Y, t.task, config.replace(pair_memory_mb=16 / 1024))
    assert blocked._pair_block == 21 and whole._pair_block == 64
    for _ in range(4):
        whole.step()
        blocked.step()
    assert blocked.state.losses == pytest.approx(whole.state.losses, rel=1e-5)
    for a, b in zip(whole.encoder.parameters(), blocked.encoder.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), atol=1e-5, rtol=1e-5)


def test_new_config_fields_are_validated():
    with pytest.raises(ValueError, match="pair_memory_mb must be a positive finite number"):
        TrainConfig(pair_memory_mb=0)
    with pytest.raises(ValueError, match="cuda_graphs must be True or False"):
        TrainConfig(cuda_graphs="yes")
    # declared in hraml_core.params: the estimator and `hraml train` take them too
    from hraml_core import HRAML

    assert HRAML(pair_memory_mb=64.0).train_config().pair_memory_mb == 64.0
    assert HRAML(cuda_graphs=True).get_params()["cuda_graphs"] is True


# -- CUDA graphs -----------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graph_step_matches_the_eager_step():
    X, y = blobs(n=1000)
    t = encode_targets(y)
    config = TrainConfig(hidden=(64,), dim=16, batch_size=128, device="cuda", seed=0)
    eager = TrainingRun(X, t.Y, t.task, config)
    graphed = TrainingRun(X, t.Y, t.task, config.replace(cuda_graphs=True))
    assert graphed._graph is not None and eager._graph is None
    for _ in range(40):  # warm-up, capture, replays, short batches at each epoch's end
        eager.step()
        graphed.step()
    eager.flush()
    graphed.flush()
    assert graphed._graph.graph is not None
    assert graphed.state.step == eager.state.step and graphed.state.pairs_seen == eager.state.pairs_seen
    assert graphed.state.losses == pytest.approx(eager.state.losses, rel=1e-4, abs=1e-6)
    for a, b in zip(eager.encoder.parameters(), graphed.encoder.parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n,labels,p", [(500, 5, 0.5), (800, 20, 0.3), (600, 70, 0.1), (300, 64, 0.05), (100, 1, 0.5)])
def test_unique_rows_is_numpys_unique_by_rows(n, labels, p):
    from hraml_core.relations import unique_rows

    Y = (np.random.default_rng(n).random((n, labels)) < p).astype(np.float32)
    rows, inverse = np.unique(Y, axis=0, return_inverse=True)
    ours, codes = unique_rows(Y)
    assert np.array_equal(ours, rows) and np.array_equal(codes, inverse.reshape(-1))
    D = np.random.default_rng(0).random((50, 3))
    D /= D.sum(1, keepdims=True)  # not 0/1: numpy's own unique
    assert np.array_equal(unique_rows(D)[0], np.unique(D.astype(np.float32), axis=0))
