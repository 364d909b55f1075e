"""CUDA checks: skipped on machines without a GPU (CI has none); run where one is lent."""

import numpy as np
import pytest
import torch

from hraml_core import HRAML, TrainConfig, Trainer
from support import wait_for

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


@pytest.mark.parametrize("sampler", ["batch", "hard", "pairs"])
def test_estimator_fits_on_cuda_and_matches_cpu_quality(sampler):
    from sklearn.neighbors import KNeighborsClassifier

    Xtr, Xte, ytr, yte = digits_split()
    epochs = 100 if sampler != "pairs" else 1
    gpu = HRAML(device="cuda", sampler=sampler, max_epochs=epochs, random_state=0).fit(Xtr, ytr)
    assert next(gpu.encoder_.parameters()).device.type == "cpu"  # fitted model comes back to the CPU
    acc = KNeighborsClassifier(1).fit(gpu.transform(Xtr), ytr).score(gpu.transform(Xte), yte)
    if sampler == "batch":
        cpu = HRAML(sampler=sampler, max_epochs=epochs, random_state=0).fit(Xtr, ytr)
        cpu_acc = KNeighborsClassifier(1).fit(cpu.transform(Xtr), ytr).score(cpu.transform(Xte), yte)
        assert abs(acc - cpu_acc) < 0.01
        assert acc >= 0.975
    gpu_ml = HRAML(device="cuda", sampler=sampler, max_epochs=2, random_state=0).fit(Xtr, np.eye(10)[ytr] + np.eye(10)[(ytr + 1) % 10])
    assert gpu_ml.task_ == "multilabel"


def test_background_trainer_on_cuda():
    Xtr, Xte, ytr, yte = digits_split()
    t = Trainer(Xtr, ytr, TrainConfig(device="cuda"), X_val=Xte, Y_val=yte, eval_every_s=0.2)
    t.start()
    assert wait_for(lambda: t.snapshot().step > 50 and t.snapshot().last_metric is not None, 120)
    t.stop()
    snap = t.snapshot()
    assert snap.status == "stopped" and snap.last_metric > 0.9
    assert snap.A.shape == (300, 300)
