"""Data-parallel training on torch.distributed (gloo on CPU), two real processes."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hraml_core import HRAML
from hraml_core.distributed import DistributedRun, fit_distributed, shard_rows
from hraml_core.tasks import encode_targets
from hraml_core.training import TrainConfig, TrainingRun

CONFIG = TrainConfig(hidden=(8,), dim=4, batch_size=16, optimizer="sgd", momentum=0.0, lr=0.1, weight_decay=0.0, seed=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blobs(n=80, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(size=(n, d)) + 3 * np.eye(3, d)[y]).astype(np.float32), encode_targets(y).Y


def _one_step(rank, world, port, out, X, Y):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        rows = shard_rows(len(X), rank, world)
        run = DistributedRun(X[rows], Y[rows], "classification", CONFIG, global_scale=1.0)
        init = run.state_dict()
        run.step()
        torch.save({"init": init, "after": run.state_dict()}, os.path.join(out, f"rank{rank}.pt"))
        del run  # DDP's reducer must go before its process group
    finally:
        dist.barrier()  # no rank tears gloo down while another still talks to it
        dist.destroy_process_group()


def _train(rank, world, port, out, X, Y):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        rows = shard_rows(len(X), rank, world)
        run = fit_distributed(X[rows], Y[rows], "classification", CONFIG.replace(optimizer="adam", lr=1e-2), max_epochs=10)
        torch.save({"state": run.state_dict(), "losses": run.state.losses, "steps": run.state.step},
                   os.path.join(out, f"rank{rank}.pt"))
        del run  # DDP's reducer must go before its process group
    finally:
        dist.barrier()  # no rank tears gloo down while another still talks to it
        dist.destroy_process_group()


def test_shards_partition_the_rows():
    parts = [shard_rows(10, r, 3, seed=1) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert [len(p) for p in parts] == [4, 3, 3]
    with pytest.raises(ValueError, match="rank 3"):
        shard_rows(10, 3, 3)


def test_one_ddp_step_equals_the_average_of_the_ranks_gradients(tmp_path):
    X, Y = blobs()
    mp.spawn(_one_step, args=(2, free_port(), str(tmp_path), X, Y), nprocs=2, join=True)
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


def test_distributed_training_learns_and_ranks_stay_identical(tmp_path):
    X, Y = blobs(n=120)
    mp.spawn(_train, args=(2, free_port(), str(tmp_path), X, Y), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 10 * 4  # 60 rows per shard, batch 16
    for k, v in ranks[0]["state"].items():
        torch.testing.assert_close(ranks[1]["state"][k], v, rtol=0, atol=0)
    losses = ranks[0]["losses"]
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])


@pytest.mark.slow
def test_torchrun_entry_point_saves_a_usable_model(tmp_path):
    out = tmp_path / "iris.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "hraml_core.distributed", "--dataset", "iris", "--epochs", "20", "--batch-size", "32", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 ranks" in proc.stdout
    model = HRAML.load(out)
    from sklearn.datasets import load_iris

    from hraml_core.preprocessing import Preprocessor

    pre = Preprocessor.load(tmp_path / "iris.preprocess.safetensors")
    X, y = load_iris(return_X_y=True)
    Z = model.transform(pre.transform(X))
    assert Z.shape == (150, 64) and list(model.classes_) == [0, 1, 2]
    from sklearn.neighbors import KNeighborsClassifier

    assert KNeighborsClassifier(1).fit(Z[::2], y[::2]).score(Z[1::2], y[1::2]) > 0.85
