"""Data-parallel training on torch.distributed (gloo on CPU), two real processes."""
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from hraml_core import HRAML
from hraml_core.data import Dataset
from hraml_core.data.shards import MANIFEST, read_shards, write_shards
from hraml_core.distributed import (DistributedRun, SetupRefused, close_process_group, fit_distributed, global_classes,
                                    global_relation_scale, on_every_rank, one_hot, shard_rows)
from hraml_core.loss import alignment_loss, all_pairs_alignment_loss, pairwise_sq_dists
from hraml_core.relations import REACHABLE_D2
from hraml_core.samplers import make_sampler
from hraml_core.tasks import encode_targets
from hraml_core.training import TrainConfig, TrainingRun
from support import free_port

#: Every test here starts real processes (gloo ranks, torchrun agents).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(hidden=(8,), dim=4, batch_size=16, optimizer="sgd", momentum=0.0, lr=0.1, weight_decay=0.0, seed=0)


def blobs(n=80, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(size=(n, d)) + 3 * np.eye(3, d)[y]).astype(np.float32), encode_targets(y).Y


@contextlib.contextmanager
def _gloo_group(rank, world, port):
    """A worker's process group on loopback, closed however the worker ends."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        close_process_group()


def _one_step(rank, world, port, out, X, Y):
    with _gloo_group(rank, world, port):
        rows = shard_rows(len(X), rank, world)
        run = DistributedRun(X[rows], Y[rows], "classification", CONFIG, global_scale=1.0, cross_rank_pairs=False)
        init = run.state_dict()
        run.step()
        torch.save({"init": init, "after": run.state_dict()}, os.path.join(out, f"rank{rank}.pt"))
        del run  # DDP's reducer must go before its process group


def _train(rank, world, port, out, X, Y):
    with _gloo_group(rank, world, port):
        rows = shard_rows(len(X), rank, world)
        run = fit_distributed(X[rows], Y[rows], "classification", CONFIG.replace(optimizer="adam", lr=1e-2), max_epochs=10,
                              cross_rank_pairs=False)
        torch.save({"state": run.state_dict(), "losses": run.state.losses, "steps": run.state.step},
                   os.path.join(out, f"rank{rank}.pt"))
        del run  # DDP's reducer must go before its process group


def _cross_rank_step(rank, world, port, out, X, Y):
    """One cross-rank step per sampler; saves the batch drawn, the loss and the DDP-averaged gradient."""
    with _gloo_group(rank, world, port):
        rows = shard_rows(len(X), rank, world)
        saved = {}
        for sampler in ("batch", "hard"):
            run = DistributedRun(X[rows], Y[rows], "classification", CONFIG.replace(sampler=sampler), global_scale=1.0)
            draw, drawn = run.sampler.batch_indices, []  # record the batch the step draws
            run.sampler.batch_indices = lambda: drawn.append(draw()) or drawn[-1]
            run.step()
            run.flush()
            loss = run.state.losses[-1]
            grads = {k: p.grad.clone() for k, p in run.module.named_parameters()}
            saved[sampler] = {"rows": torch.as_tensor(rows[drawn[0].numpy()]), "loss": loss, "grads": grads}
            del run  # DDP's reducer must go before its process group
        torch.save(saved, os.path.join(out, f"rank{rank}.pt"))


def _train_cross_rank(rank, world, port, out, X, Y, train):
    with _gloo_group(rank, world, port):
        rows = train[shard_rows(len(train), rank, world)]
        config = TrainConfig(hidden=(32,), dim=8, batch_size=32, lr=1e-2, weight_decay=0.0, seed=0)
        run = fit_distributed(X[rows], Y[rows], "classification", config, max_epochs=40)
        torch.save({"state": run.state_dict(), "losses": run.state.losses, "Z": torch.as_tensor(run.embed(X))},
                   os.path.join(out, f"rank{rank}.pt"))
        del run  # DDP's reducer must go before its process group


def test_shards_partition_the_rows():
    parts = [shard_rows(10, r, 3, seed=1) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert [len(p) for p in parts] == [4, 3, 3]
    with pytest.raises(ValueError, match="rank 3"):
        shard_rows(10, 3, 3)


def test_one_ddp_step_equals_the_average_of_the_ranks_gradients(tmp_path, gloo):
    X, Y = blobs()
    gloo.spawn(_one_step, args=(2, free_port(), str(tmp_path), X, Y))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # Single process: each rank's own SGD step from the same start; plain SGD is linear in the
    # gradient, so DDP's averaged step lands on the mean of the two.
    expected = {}
    for r in range(2):
        rows = shard_rows(len(X), r, 2)
        run = TrainingRun(X[rows], Y[rows], "classification", CONFIG.replace(scale=1.0), sampler_offset=r)
        for k, v in run.state_dict().items():
            torch.testing.assert_close(v, ranks[r]["init"][k])  # identical initialisation
        run.step()
        for k, v in run.state_dict().items():
            expected[k] = expected.get(k, 0) + v / 2
    for k in expected:
        torch.testing.assert_close(ranks[0]["after"][k], expected[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ranks[1]["after"][k], ranks[0]["after"][k], rtol=0, atol=0)


def test_distributed_training_learns_and_ranks_stay_identical(tmp_path, gloo):
    X, Y = blobs(n=120)
    gloo.spawn(_train, args=(2, free_port(), str(tmp_path), X, Y))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 10 * 4  # 60 rows per shard, batch 16
    for k, v in ranks[0]["state"].items():
        torch.testing.assert_close(ranks[1]["state"][k], v, rtol=0, atol=0)
    losses = ranks[0]["losses"]
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])


def test_cross_rank_pairs_refuse_the_pairs_sampler():
    # Checked before anything distributed, so no process group is needed to see it.
    X, Y = blobs()
    with pytest.raises(ValueError, match="cross_rank_pairs needs.*not sampler 'pairs'.*cross_rank_pairs=False"):
        DistributedRun(X, Y, "classification", CONFIG.replace(sampler="pairs"), global_scale=1.0)


def test_cross_rank_step_is_the_single_process_step_on_the_union_batch(tmp_path, gloo):
    # Each rank's loss is W times its anchors' share of the union loss and DDP divides the summed
    # gradient by W, so the factor between the two is 1: the ranks' mean loss is the union loss
    # and their (identical) gradient is the union loss's gradient.
    X, Y = blobs(n=31)  # shards of 16 and 15 rows, batch_size 16: batches of unequal length
    gloo.spawn(_cross_rank_step, args=(2, free_port(), str(tmp_path), X, Y))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for sampler in ("batch", "hard"):
        union = torch.cat([ranks[r][sampler]["rows"] for r in range(2)]).numpy()
        assert len(union) == len(set(union.tolist())) == 31  # the two batches are disjoint
        single = TrainingRun(X[union], Y[union], "classification", CONFIG.replace(sampler=sampler, scale=1.0))
        Z, G = single.encoder(single.X), single.batch_relation(torch.arange(len(union)))
        if sampler == "batch":
            loss = all_pairs_alignment_loss(Z, G)
        else:
            A = pairwise_sq_dists(Z)
            pairs = single.sampler.select_pairs(A.detach(), G)
            loss = alignment_loss(A[pairs], G[pairs], reduction="mean")
        loss.backward()
        assert np.mean([ranks[r][sampler]["loss"] for r in range(2)]) == pytest.approx(loss.detach().item(), rel=1e-5)
        for k, p in single.encoder.named_parameters():
            for r in range(2):
                torch.testing.assert_close(ranks[r][sampler]["grads"][k], p.grad, rtol=1e-5, atol=1e-6)


def test_cross_rank_training_learns_and_ranks_stay_identical(tmp_path, gloo):
    from sklearn.datasets import load_wine
    from sklearn.neighbors import KNeighborsClassifier

    X, y = load_wine(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    train, test = np.arange(len(X))[np.arange(len(X)) % 3 != 0], np.arange(len(X))[::3]
    gloo.spawn(_train_cross_rank, args=(2, free_port(), str(tmp_path), X, encode_targets(y).Y, train))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for k, v in ranks[0]["state"].items():
        torch.testing.assert_close(ranks[1]["state"][k], v, rtol=0, atol=0)
    losses, Z = ranks[0]["losses"], ranks[0]["Z"].numpy()
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert KNeighborsClassifier(1).fit(Z[train], y[train]).score(Z[test], y[test]) > 0.9


@pytest.mark.slow
def test_torchrun_entry_point_saves_a_usable_model(tmp_path):
    out = tmp_path / "iris.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "hraml_core.distributed", "--dataset", "iris", "--epochs", "20", "--batch-size", "32",
           "--sampler", "hard", "--hidden", "64", "--dim", "16", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 ranks" in proc.stdout
    model = HRAML.load(out)
    from sklearn.datasets import load_iris

    from hraml_core.preprocessing import Preprocessor

    pre = Preprocessor.load(tmp_path / "iris.preprocess.safetensors")
    X, y = load_iris(return_X_y=True)
    # The standardisation is fitted on the rows of both shards, not on rank 0's alone.
    np.testing.assert_allclose(pre.scale_mean_, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(pre.scale_, X.std(0), rtol=1e-12)
    Z = model.transform(pre.transform(X))
    assert Z.shape == (150, 16) and list(model.classes_) == [0, 1, 2] and model.sampler == "hard"
    from sklearn.neighbors import KNeighborsClassifier

    assert KNeighborsClassifier(1).fit(Z[::2], y[::2]).score(Z[1::2], y[1::2]) > 0.85


@pytest.mark.parametrize("args, message", [
    (["--sampler", "pairs"], "--sampler pairs draws one pair per step and cannot pair across ranks: add --no-cross-rank-pairs"),
    (["--hidden", "64,x"], "argument --hidden: hidden must be integers separated by commas, got '64,x'"),
    (["--lr", "-1"], "lr must be a positive finite number"),
])
def test_torchrun_entry_point_refuses_bad_settings_before_starting(args, message, capsys):
    from hraml_core.distributed import main

    with pytest.raises(SystemExit) as exit_:
        main(args)  # no process group exists: the check comes first
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not dist.is_initialized()


def _label_facts(rank, world, port, out):
    with _gloo_group(rank, world, port):
        y = [np.array([0, 1, 1]), np.array([2, 1])][rank]  # class 0 only on rank 0, class 2 only on rank 1
        classes = global_classes(y)
        # Distributions whose largest L1 distance (2) lies between the shards; within each it is 0.2.
        Y = [np.array([[1.0, 0.0], [0.9, 0.1]]), np.array([[0.0, 1.0], [0.1, 0.9]])][rank]
        scale = global_relation_scale(TrainConfig(relation="l1", scale="max"), Y)

        def fails_on_rank_1():
            if rank == 1:
                raise ValueError("no such file")
            return "fine"

        try:
            on_every_rank(fails_on_rank_1)
            refused = None
        except SetupRefused as exc:
            refused = str(exc)
        torch.save({"classes": classes, "Y": one_hot(y, classes), "scale": scale, "refused": refused},
                   os.path.join(out, f"rank{rank}.pt"))


def test_ranks_agree_on_the_classes_the_relation_scale_and_a_failure(tmp_path, gloo):
    gloo.spawn(_label_facts, args=(2, free_port(), str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for r in ranks:
        np.testing.assert_array_equal(r["classes"], [0, 1, 2])
        assert r["scale"] == pytest.approx(REACHABLE_D2 / 2.0)  # not REACHABLE_D2 / 0.2, each shard's own
        assert r["refused"] == "rank 1: no such file"  # raised on rank 1 alone, reported on both
    np.testing.assert_array_equal(ranks[0]["Y"], [[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(ranks[1]["Y"], [[0, 0, 1], [0, 1, 0]])


def _entry_point(rank, world, port, out, argvs):
    """``main`` as torchrun would start it (the process group from the environment), stderr kept."""
    from hraml_core.distributed import main

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argvs[rank])
    torch.save({"code": code, "err": err.getvalue()}, os.path.join(out, f"rank{rank}.pt"))


def blobs_dataset(n=64):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 5)) + 3 * np.eye(3, 5)[y]
    return Dataset(name="blobs", X=X, Y=y, task="classification")


def node_folders(layout, tmp_path, nodes):
    """A folder per node holding the manifest and only the shards listed for it."""
    folders = []
    for k, shards in enumerate(nodes):
        folder = tmp_path / f"node{k}" / "blobs"
        folder.mkdir(parents=True)
        shutil.copy(layout.folder / MANIFEST, folder)
        for s in shards:
            for f in layout.shards[s]["files"]:
                shutil.copy(layout.folder / f["name"], folder)
        folders.append(folder)
    return folders


@pytest.mark.parametrize("case, message", [
    ("three shards", "3 shards cannot be shared equally by 2 ranks"),
    pytest.param("a shard nowhere", "shard 3 is on no node", marks=pytest.mark.slow),
    pytest.param("two layouts", "the ranks' shard folders hold different layouts: rank 0 (", marks=pytest.mark.slow),
])
def test_a_sharded_job_that_cannot_start_stops_every_rank_with_one_message(tmp_path, gloo, case, message):
    ds = blobs_dataset()
    if case == "three shards":
        layout = write_shards(ds, tmp_path / "all", 3)
        folders = [layout.folder, layout.folder]
    elif case == "a shard nowhere":
        folders = node_folders(write_shards(ds, tmp_path / "all", 4), tmp_path, [(0, 1), (2,)])
    else:
        folders = [write_shards(ds, tmp_path / "a", 4, seed=0).folder, write_shards(ds, tmp_path / "b", 4, seed=1).folder]
    argvs = [["--dataset", str(f), "--out", str(tmp_path / "run")] for f in folders]
    gloo.spawn(_entry_point, args=(2, free_port(), str(tmp_path), argvs))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["code"] for r in ranks] == [2, 2]
    assert message in ranks[0]["err"] and ranks[1]["err"] == ""  # rank 0 says it, once
    assert not (tmp_path / "run").exists()


def test_the_entry_point_reads_a_data_file_as_hraml_train_does(tmp_path, gloo, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.normal(size=(60, 3)) + 3 * np.eye(3)[y]
    path = tmp_path / "export.txt"  # a CSV whose label is its first column, with an identifier beside it
    path.write_text("kind,id,a,b,c\n" + "\n".join(f"{'xyz'[k]},{1000 + i},{r[0]},{r[1]},{r[2]}"
                                                   for i, (k, r) in enumerate(zip(y, X))) + "\n")
    out = tmp_path / "run"
    argv = ["--dataset", str(path), "--format", "csv", "--label-columns", "kind", "--ignore-columns", "id",
            "--epochs", "2", "--test-size", "0.25", "--hidden", "8", "--dim", "4", "--out", str(out)]
    gloo.spawn(_entry_point, args=(2, free_port(), str(tmp_path), [argv, argv]))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["code"] for r in ranks] == [0, 0], ranks[0]["err"]
    from hraml_core.cli import main as hraml
    from hraml_core.runs import open_run

    run = open_run(out)
    assert run.dataset["label_columns"] == "kind" and run.dataset["ignore_columns"] == "id"
    assert list(run.load_model().classes_) == ["x", "y", "z"]
    assert hraml(["evaluate", str(out), "--no-progress"]) == 0  # read again as it was
    assert "on 15 held-out samples (its own held-out rows)" in capsys.readouterr().out
    # a shard folder was written with its columns chosen: the options are refused, once
    layout = write_shards(blobs_dataset(), tmp_path / "shards", 2)
    argv = ["--dataset", str(layout.folder), "--label-columns", "kind", "--out", str(tmp_path / "no")]
    gloo.spawn(_entry_point, args=(2, free_port(), str(tmp_path), [argv, argv]))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["code"] for r in ranks] == [2, 2] and ranks[1]["err"] == ""
    assert "--label-columns: for a data file; the shard folder" in ranks[0]["err"]


def _node_agents(folders, out, flags, log_dir, timeout=300):
    """Two torchrun node agents on this machine, one per folder, meeting at a c10d rendezvous on
    loopback; each agent (and its workers) in a process group of its own, killed if the agents
    have not both ended by ``timeout``. Returns their exit codes and logs."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    agents, logs = [], []
    try:
        for k, folder in enumerate(folders):
            log = open(log_dir / f"agent{k}.log", "w")
            logs.append(log)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "hraml-test",
                   "-m", "hraml_core.distributed", "--dataset", str(folder), "--out", str(out), *flags]
            agents.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                           start_new_session=True))
        deadline = time.monotonic() + timeout
        for agent in agents:
            agent.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
        for log in logs:
            log.close()
    return [a.returncode for a in agents], [(log_dir / f"agent{k}.log").read_text() for k in range(len(agents))]


@pytest.mark.slow
def test_two_node_agents_on_localhost_train_the_one_process_model_on_the_union_batches(tmp_path):
    """Multi-node on one machine: two torchrun agents (c10d rendezvous on 127.0.0.1), each given a
    folder holding only its node's shards; the model is the one a single process trains when it
    steps the same union batches."""
    from hraml_core.preprocessing import Preprocessor
    from hraml_core.runs import open_run

    ds = blobs_dataset()
    layout = write_shards(ds, tmp_path / "all", 4)
    folders = node_folders(layout, tmp_path, [(0, 1), (2, 3)])
    flags = ["--epochs", "3", "--batch-size", "8", "--hidden", "8", "--dim", "4", "--seed", "0"]
    codes, logs = _node_agents(folders, tmp_path / "run", flags, tmp_path)
    assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)
    run = open_run(tmp_path / "run")
    assert run.status == "finished" and run.dataset["n_samples"] == 64 and run.dataset["shards"]["id"] == layout.id
    assignment = run.info["info"]["shards"]  # rank -> shards; which node gets rank 0 is the rendezvous's choice
    assert sorted(assignment) == [[0, 1], [2, 3]]

    # One process on the same union batches: each rank's rows in its order, its sampler replayed.
    pre = Preprocessor.load(tmp_path / "run" / "preprocess.safetensors")
    X32 = ds.X.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(pre.scale_mean_, X32.mean(0), rtol=1e-9)  # fitted over both nodes' shards
    np.testing.assert_allclose(pre.scale_, X32.std(0), rtol=1e-9)
    parts = [read_shards(layout, shards) for shards in assignment]
    X = np.concatenate([pre.transform(p.X) for p in parts])
    Y = np.concatenate([one_hot(p.y, np.arange(3)) for p in parts])
    samplers = [make_sampler("batch", len(p.rows), torch.Generator().manual_seed(0 + 1 + r), 8) for r, p in enumerate(parts)]
    first = np.cumsum([0] + [len(p.rows) for p in parts])
    single = TrainingRun(X, Y, "classification", TrainConfig(hidden=(8,), dim=4, batch_size=16, seed=0))
    single.sampler.batch_indices = lambda: torch.cat([s.batch_indices() + int(f) for s, f in zip(samplers, first)])
    steps = min(s.steps_per_epoch for s in samplers) * 3
    for _ in range(steps):
        single.step()
    assert run.progress["step"] == steps == 12  # 32 rows a rank, batches of 8, 3 epochs
    np.testing.assert_allclose(run.scalars["loss"].dropna().to_numpy(), single.state.losses, rtol=1e-5)
    np.testing.assert_allclose(run.load_model().transform(X), single.embed(X), atol=1e-6)
