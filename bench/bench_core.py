"""Core speed: pairs/s of the samplers, and a default HRAML fit on digits.

    python bench/bench_core.py [--write]

Targets (issue "hraml_core"): `batch` >= 1e7 pairs/s for a 64->256->64 MLP at batch 512 on one
thread, >= 1000x the pairs/s of `pairs` (Algorithm 1), default HRAML fits digits in <= 2 s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, machine, write_section  # noqa: E402

from hraml_core import HRAML  # noqa: E402
from hraml_core.tasks import encode_targets  # noqa: E402
from hraml_core.training import TrainConfig, TrainingRun  # noqa: E402


def pairs_per_second(sampler: str, steps: int, batch_size: int = 512, device: str = "cpu",
                     check_every: int | None = None, fused: bool = True) -> tuple[float, float]:
    """(pairs/s, ms/step) of a 64 -> 256 -> 64 encoder on random 64-d samples, 10 classes.

    ``fused=False`` swaps in torch's multi-tensor (foreach) Adam, the CUDA default before fusing."""
    rng = np.random.default_rng(0)
    n = max(4096, batch_size)
    X = rng.normal(size=(n, 64)).astype(np.float32)
    t = encode_targets(rng.integers(0, 10, n))
    run = TrainingRun(X, t.Y, t.task, TrainConfig(hidden=(256,), dim=64, sampler=sampler, batch_size=batch_size, device=device,
                                                    check_every=check_every))
    if not fused:
        run.optimizer = torch.optim.Adam(run.encoder.parameters(), lr=run.config.lr,
                                         weight_decay=2.0 * run.config.weight_decay, foreach=True)
    for _ in range(min(20, steps)):  # warm-up
        run.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    p0, t0 = run.state.pairs_seen, time.perf_counter()
    for _ in range(steps):
        run.step()
    run.flush()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return (run.state.pairs_seen - p0) / dt, 1000 * dt / steps


def digits_fit_seconds() -> tuple[float, float]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    sc = StandardScaler().fit(Xtr)
    Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
    model = HRAML(random_state=0)
    seconds = best_of(lambda: model.fit(Xtr, ytr), repeat=3)
    acc = KNeighborsClassifier(1).fit(model.transform(Xtr), ytr).score(model.transform(Xte), yte)
    return seconds, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true", help="write the results into docs/BENCHMARKS.md")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)

    rows = []
    batch_rate, batch_ms = pairs_per_second("batch", 200, device=args.device)
    hard_rate, hard_ms = pairs_per_second("hard", 200, device=args.device)
    single_rate, single_ms = pairs_per_second("pairs", 2000, device=args.device)
    rows.append(("batch (all pairs in a batch of 512)", batch_rate, batch_ms))
    rows.append(("hard (4 mined partners per anchor, batch 512)", hard_rate, hard_ms))
    rows.append(("pairs (Algorithm 1: one pair per step)", single_rate, single_ms))
    for b in (256, 1024) if args.device == "cpu" else (256, 1024, 4096, 8192):
        r, ms = pairs_per_second("batch", 100, batch_size=b, device=args.device)
        rows.append((f"batch, batch size {b}", r, ms))
    fit_s, acc = digits_fit_seconds() if args.device == "cpu" else (float("nan"), float("nan"))
    checks = []  # on a GPU, against the default: the loss read every step; Adam not fused
    if args.device != "cpu":
        for b in (256, 1024, 8192):
            default = pairs_per_second("batch", 300, batch_size=b, device=args.device)[1]
            every = pairs_per_second("batch", 300, batch_size=b, device=args.device, check_every=1)[1]
            unfused = pairs_per_second("batch", 300, batch_size=b, device=args.device, fused=False)[1]
            checks.append((b, default, every, unfused))

    lines = [
        f"Machine: {machine()}, one torch thread, device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "") + ".",
        "",
        "Encoder 64 -> 256 -> 64 (tanh, L2-normalised), 64 random features, 10 classes.",
        "",
        "| sampler | pairs/s | ms/step |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {rate:.3g} | {ms:.3f} |" for name, rate, ms in rows]
    lines += [
        "",
        f"- `batch` / `pairs` pairs/s ratio: **{batch_rate / single_rate:,.0f}x** (target >= 1000x).",
        f"- `batch` at 512: **{batch_rate:.3g} pairs/s** (target >= 1e7).",
    ]
    if checks:
        lines += ["", "ms/step of the `batch` sampler, the default (loss read every 16 steps, fused Adam) against "
                  "each choice undone, in the same process:", "",
                  "| batch size | default | loss read every step | Adam not fused (foreach) |", "|---:|---:|---:|---:|"]
        lines += [f"| {b} | {d:.3f} | {e:.3f} ({e / d:.2f}x) | {u:.3f} ({u / d:.2f}x) |" for b, d, e, u in checks]
    if args.device == "cpu":
        lines.append(
            f"- Default `HRAML(random_state=0).fit` on digits (1257 x 64 after a 70/30 split): "
            f"**{fit_s:.2f} s** (best of 3; target <= 2 s), 1-NN test accuracy {acc:.4f}."
        )
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("Core: pairs per second and fit time" + ("" if args.device == "cpu" else f" ({args.device})"), body)


if __name__ == "__main__":
    main()
