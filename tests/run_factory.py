"""Run directories made for the dashboard's tests: small, fast to write, with geometry that changes
smoothly from snapshot to snapshot (embeddings drift from random points to their class centres)."""
from __future__ import annotations

import numpy as np

from hraml_core.runs import RunWriter


def _unit(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def _sq(Z):
    d = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, 0.0)
    return d.astype(np.float32)


def make_run(path, snapshots: int = 6, every: int = 10, probe: int = 24, display: int = 60, dim: int = 8,
             classes: int = 3, relation: str = "l1", dataset: str = "iris", seed: int = 0, finish: bool = True,
             config: dict | None = None, metric: str | None = "accuracy") -> RunWriter:
    """A run of ``snapshots`` snapshots ``every`` steps apart (steps 0, every, 2 every, ...), a loss
    row per step and the metric every ``every`` steps. Returns the writer (finished unless ``finish``
    is False, then still running: a live run)."""
    rng = np.random.default_rng(seed)
    probe_labels = np.sort(np.arange(probe) % classes)
    display_labels = np.arange(display) % classes
    centres = _unit(rng.normal(size=(classes, dim)))
    start_p, start_d = rng.normal(size=(probe, dim)), rng.normal(size=(display, dim))
    noise_p, noise_d = rng.normal(size=(probe, dim)), rng.normal(size=(display, dim))
    conf = {"relation": relation, "lr": 0.003, "seed": 0, "hidden": [16], "dim": dim, "probe_size": probe,
            "display_size": display}
    conf.update(config or {})
    w = RunWriter(path, config=conf, task="classification", metric=metric, dataset={"name": dataset},
                  source="test", flush_every_s=0.05)
    E = 2.0 * (probe_labels[:, None] != probe_labels[None, :]).astype(np.float32)
    w.write_probe(E, np.arange(probe), probe_labels, np.arange(display), display_labels,
                  classes=[f"c{k}" for k in range(classes)], relation_scale=1.0)
    if metric:
        w.update(raw_metric=0.5)
    last = (snapshots - 1) * every
    for k in range(snapshots):
        step = k * every
        t = k / max(snapshots - 1, 1)
        # towards the class centres, keeping some spread (a picture like a trained run's)
        Zp = _unit((1 - t) * start_p + 3 * t * centres[probe_labels] + 0.4 * t * noise_p)
        Zd = _unit((1 - t) * start_d + 3 * t * centres[display_labels] + 0.4 * t * noise_d)
        for s in range(max(step - every + 1, 1), step + 1) if step else ():
            w.log(s, time=1000.0 + s, loss=1.0 / (1 + s), epoch=s / 50)
        if metric and step:
            w.log(step, **{metric: 0.5 + 0.5 * t})
        w.snapshot(step, _sq(Zp), Zd.astype(np.float32), time=1000.0 + step, epoch=step / 50,
                   loss=1.0 / (1 + step) if step else None, metric=(0.5 + 0.5 * t) if metric and step else None)
    w.flush()
    if finish:
        w.finish(message=f"finished at step {last}")
    return w
