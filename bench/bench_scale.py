"""Scale: a million rows on one machine (numbers for docs/BENCHMARKS.md, section "Scale").

    python bench/bench_scale.py [--write] [--quick] [--sizes 1e4,1e5,1e6] [--full-eval] [--neighbours]

1. Rows (synthetic 128-d, 20 classes, 70/30 split; each size in a fresh process, so that its peak
   RSS is its own): one epoch of HRAML().fit (seconds, samples/s), transform, one live held-out
   refresh (``Trainer._evaluate``: the fixed sample) against the whole-set refresh the trainer
   made before (every row embedded, every held-out row searched among every training row; not run
   at 1e6, where it is O(n_train x n_val)), the time ``pause()`` and ``stop()`` take to act during
   training, peak RSS; with ``--full-eval`` also ``Trainer.evaluate_full``.
2. Algorithm 1 (``pairs``): the closed-form step against the autograd + torch.optim step it
   replaces, side by side in one process (pairs/s).
3. Cold start: in a fresh process, ``import torch``, then the first and the second fit; and, in
   another fresh process, what building the first torch.optim optimiser costs (the import of
   torch._dynamo the first fit used to pay).
4. The `batch` loss in row blocks: ms/step at a large batch, whole against blocked.
5. ``--neighbours``: exact neighbour search on 64-d unit vectors (clustered like trained embeddings,
   and uniform): scikit-learn brute force, k-d tree, ball tree, and pynndescent (approximate),
   the measurement behind the choice in hraml_core.evaluate.
6. GPU: the CUDA-graph step against the eager step, where CUDA is available.
7. The dashboard at 1e6 rows (``bench_dashboard.bench_scale_page``): a generated 1,000,000 x 100
   Parquet file (synthetic, 20 classes, in a temporary data directory, deleted afterwards) chosen in
   the page (`streamlit run` + Chromium): the read, the time from choosing it to the first screen,
   page refreshes/s and the trainer's steps/s against a headless Trainer on the same data, and the
   server's process-tree memory. Needs Chromium (``$HRAML_CHROMIUM``, default /usr/bin/chromium)
   and Playwright; skipped, with a line saying so, without them.

Targets (issue "Scale"): live refresh <= 0.5 s at every size; samples/s at 1e6 within 1.5x of 1e4;
``pairs`` >= 10x its pairs/s before; the first fit in a fresh process costs at most a quarter of
``import torch``'s time more than the second; the dashboard's first screen within 15 s of choosing
a 1e6-row file (after the read), >= 1 page refresh/s, training >= 70% of the headless steps/s.
``--quick`` is a smoke run (small sizes, few steps) to check the script works; its numbers are not
for publishing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_section  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def machine_line() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    import torch

    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{model}, {os.cpu_count()} vCPU, {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, one torch thread; load average at start {load}")


def child(code: str, timeout: float = 3600) -> dict:
    """Run ``code`` in a fresh Python process; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- 1. rows ---------------------------------------------------------------------------------------
ROWS_CHILD = r"""
import json, resource, sys, time, threading
import numpy as np, torch
torch.set_num_threads(1)
from hraml_core import HRAML
from hraml_core.trainer import Trainer
from hraml_core.evaluate import evaluate_embedding

n, full_eval, old_refresh = {n}, {full_eval}, {old_refresh}  # noqa
rng = np.random.default_rng(0)
centres = rng.normal(size=(20, 128)).astype(np.float32)
y = rng.integers(0, 20, n)
X = rng.standard_normal(size=(n, 128), dtype=np.float32)  # made in place: no float64 or temporary copies
X *= 2.0
for a in range(0, n, 65536):
    X[a : a + 65536] += centres[y[a : a + 65536]]
cut = int(0.7 * n)
Xtr, ytr, Xva, yva = X[:cut], y[:cut], X[cut:], y[cut:]
out = {{"n": n, "train": cut, "val": n - cut}}

t = time.perf_counter(); model = HRAML(max_epochs=1, random_state=0).fit(Xtr, ytr); out["fit_s"] = time.perf_counter() - t
out["steps"] = model.n_steps_
t = time.perf_counter(); model.transform(X); out["transform_s"] = time.perf_counter() - t

tr = Trainer(Xtr, ytr, X_val=Xva, Y_val=yva)
for _ in range(20):
    tr.run.step()
tr.run.flush()
tr._evaluate()  # the first one also computes the raw-feature reference
t = time.perf_counter(); tr._evaluate(); out["refresh_s"] = time.perf_counter() - t
out["sample"] = list(tr.snapshot().metric_sample)
if old_refresh:  # what the trainer did before: every row embedded and searched
    t = time.perf_counter()
    evaluate_embedding("classification", tr.run.embed(Xtr), ytr, tr.run.embed(Xva), yva)
    out["old_refresh_s"] = time.perf_counter() - t

# pause and stop while training and evaluating in the thread
tr.start()
while len(tr.snapshot().metric_values) < 2:
    time.sleep(0.05)
e0, s0_ = tr._budget.total_seconds, tr._thread_seconds  # the share over a window of steady training
time.sleep({window})
out["eval_share"] = (tr._budget.total_seconds - e0) / (tr._thread_seconds - s0_)
t = time.perf_counter(); tr.pause()
last, s0 = t, tr.run.state.step
while time.perf_counter() < t + 3.0:  # when did the step count last move?
    s1 = tr.run.state.step
    if s1 != s0:
        last, s0 = time.perf_counter(), s1
    time.sleep(0.002)
out["pause_s"] = last - t
tr.resume(); time.sleep(1.0)
t = time.perf_counter(); tr.stop(); out["stop_s"] = time.perf_counter() - t
if full_eval:
    t = time.perf_counter(); tr.evaluate_full(threads=1); out["full_eval_s"] = time.perf_counter() - t
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(out))
"""


def rows_section(sizes: list[int], full_eval: bool, window: float) -> list[str]:
    results = []
    for n in sizes:
        print(f"rows {n:,} ...", flush=True)
        results.append(child(ROWS_CHILD.format(n=n, full_eval=full_eval, old_refresh=n <= 100_000, window=window)))
        print(results[-1], flush=True)
    lines = [
        "Synthetic 128-d rows, 20 classes (Gaussian blobs), 70/30 split; each size in a fresh process. "
        "Fit: one epoch of `HRAML(random_state=0)` (defaults: batch 256, 128 -> 256 -> 64). Live refresh: one "
        "`Trainer._evaluate()` (the fixed sample); whole-set refresh: what it did before this change "
        "(every row embedded, every held-out row searched among all training rows). Pause: from `pause()` "
        "to the last step; stop: `stop()`'s duration, both while the trainer is training and evaluating. "
        f"Eval share: the live evaluations' share of the training thread's time over {window:g} s of training "
        "(after the first two evaluations).",
        "",
        "| rows | fit s/epoch | samples/s | transform s | live refresh s (sample val x ref) | whole-set refresh s | "
        "pause s | stop s | eval share | peak RSS GB |" + (" full eval s |" if full_eval else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if full_eval else ""),
    ]
    for r in results:
        old = f"{r['old_refresh_s']:.3f}" if "old_refresh_s" in r else "not run (O(n_train x n_val))"
        lines.append(
            f"| {r['n']:,} | {r['fit_s']:.2f} | {r['train'] / r['fit_s']:,.0f} | {r['transform_s']:.2f} | "
            f"{r['refresh_s']:.3f} ({r['sample'][0]:,} x {r['sample'][1]:,}) | {old} | {r['pause_s']:.3f} | "
            f"{r['stop_s']:.3f} | {r['eval_share']:.1%} | {r['peak_rss_gb']:.2f} |"
            + (f" {r['full_eval_s']:.1f} |" if full_eval else "")
        )
    first, last = results[0], results[-1]
    ratio = (first["train"] / first["fit_s"]) / (last["train"] / last["fit_s"])
    lines += ["", f"- samples/s at {first['n']:,} rows / at {last['n']:,} rows: **{ratio:.2f}x** (target <= 1.5x).",
              f"- slowest live refresh: **{max(r['refresh_s'] for r in results):.3f} s** (target <= 0.5 s)."]
    return lines


# -- 7. the dashboard ---------------------------------------------------------------------------------
def dashboard_section(rows: int, features: int, seconds: float, rounds: int) -> list[str]:
    """The dashboard on a generated file of ``rows`` x ``features`` (bench_dashboard.bench_scale_page)."""
    import importlib.util

    import bench_dashboard

    if not Path(bench_dashboard.CHROMIUM).exists() or importlib.util.find_spec("playwright") is None:
        return [f"Not measured: needs Chromium at {bench_dashboard.CHROMIUM} (`$HRAML_CHROMIUM`) and Playwright."]
    result = bench_dashboard.bench_scale_page(rows, features, seconds, rounds)
    print(result, flush=True)
    return bench_dashboard.scale_rows(result)


# -- 2. pairs ----------------------------------------------------------------------------------------
def pairs_section(steps: int) -> list[str]:
    import numpy as np
    import torch

    from hraml_core.tasks import encode_targets
    from hraml_core.training import TrainConfig, TrainingRun

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4096, 64)).astype(np.float32)
    t = encode_targets(rng.integers(0, 10, 4096))
    runs = {}
    for label, closed in (("before: autograd + torch.optim.Adam", False), ("after: closed form + fused Adam", True)):
        run = TrainingRun(X, t.Y, t.task, TrainConfig(sampler="pairs"), closed_form=closed)
        if not closed:  # the step as it was: autograd, and torch.optim's Adam
            run.optimizer = torch.optim.Adam(run.encoder.parameters(), lr=run.config.lr,
                                             weight_decay=2.0 * run.config.weight_decay)
        for _ in range(200):
            run.step()
        runs[label] = run
    # Rounds alternate between the two, and each keeps its best: load from other processes then
    # weighs on both alike.
    rates = dict.fromkeys(runs, 0.0)
    for _ in range(5):
        for label, run in runs.items():
            n = steps if "after" in label else max(50, steps // 8)
            t0, p0 = time.perf_counter(), run.state.pairs_seen
            for _ in range(n):
                run.step()
            run.flush()
            rates[label] = max(rates[label], (run.state.pairs_seen - p0) / (time.perf_counter() - t0))
    before, after = rates.values()
    lines = ["Algorithm 1 (`pairs`, one pair per step), encoder 64 -> 256 -> 64, Adam, one thread, "
             "best of 5 alternating rounds, both in this process:", "",
             "| step | pairs/s | us/step |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:,.0f} | {1e6 / v:.0f} |" for k, v in rates.items()]
    lines += ["", f"- after / before: **{after / before:.1f}x** (target >= 10x)."]
    return lines


# -- 3. cold start ----------------------------------------------------------------------------------
COLD_CHILD = r"""
import json, time
t = time.perf_counter(); import torch; t_torch = time.perf_counter() - t
torch.set_num_threads(1)
import numpy as np
from hraml_core import HRAML
rng = np.random.default_rng(0)
X = rng.normal(size=(1200, 64)); y = rng.integers(0, 10, 1200)
fits = []
for _ in range(2):
    t = time.perf_counter(); HRAML(max_epochs=5, random_state=0).fit(X, y); fits.append(time.perf_counter() - t)
import sys
print(json.dumps({"import_torch": t_torch, "first": fits[0], "second": fits[1], "dynamo": "torch._dynamo" in sys.modules}))
"""
OPTIM_CHILD = r"""
import json, time
import torch
p = [torch.nn.Parameter(torch.zeros(3))]
t = time.perf_counter(); torch.optim.Adam(p); first = time.perf_counter() - t
t = time.perf_counter(); torch.optim.Adam(p); second = time.perf_counter() - t
print(json.dumps({"first_optim": first, "second_optim": second}))
"""


def cold_section(rounds: int) -> list[str]:
    runs = [child(COLD_CHILD) for _ in range(rounds)]
    optim = [child(OPTIM_CHILD) for _ in range(rounds)]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    imp = med([r["import_torch"] for r in runs])
    extra = med([r["first"] - r["second"] for r in runs])
    old = med([o["first_optim"] - o["second_optim"] for o in optim])
    return [
        f"Fresh processes, median of {rounds}: `import torch`, then `HRAML(max_epochs=5).fit` twice on 1,200 x 64 "
        "random rows; separately, the first `torch.optim.Adam` built in a fresh process against the second "
        "(the `torch._dynamo` import the first fit used to pay).", "",
        "| measure | seconds | / import torch |", "|---|---:|---:|",
        f"| import torch | {imp:.2f} | 1 |",
        f"| first fit - second fit (now) | {extra:.2f} | **{extra / imp:.2f}** |",
        f"| first torch.optim optimiser - second (what the first fit paid before) | {old:.2f} | {old / imp:.2f} |",
        "", f"- `torch._dynamo` imported by the fits: {any(r['dynamo'] for r in runs)}; target: first - second "
        "<= 0.25 x import torch.",
    ]


# -- 4. blocked loss ----------------------------------------------------------------------------------
def blocked_section(steps: int, batch: int) -> list[str]:
    import numpy as np

    from hraml_core.tasks import encode_targets
    from hraml_core.training import TrainConfig, TrainingRun

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4 * batch, 64)).astype(np.float32)
    t = encode_targets(rng.integers(0, 10, len(X)))
    rows = []
    quarter = batch * batch * 12 / 4 / 2**20  # MiB for a quarter of the B x B matrices: 4 blocks
    for label, mb in (("whole (B x B)", 1e6), (f"blocked, {quarter:g} MiB budget", quarter)):
        run = TrainingRun(X, t.Y, t.task, TrainConfig(batch_size=batch, pair_memory_mb=mb))
        run.step()
        t0 = time.perf_counter()
        for _ in range(steps):
            run.step()
        rows.append((label, run._pair_block, 1000 * (time.perf_counter() - t0) / steps))
    lines = [f"The `batch` loss at batch {batch} (encoder 64 -> 256 -> 64, one thread):", "",
             "| loss | rows per block | ms/step |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c:.1f} |" for a, b, c in rows]
    lines += ["", f"- blocked / whole: {rows[1][2] / rows[0][2]:.2f}x the time, for B x block instead of B x B "
              "matrices (the backward recomputes each block)."]
    return lines


# -- 5. neighbours ----------------------------------------------------------------------------------
def neighbours_section(sizes: list[int], queries: int, with_nndescent: bool) -> list[str]:
    import numpy as np
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)

    def unit(Z):
        return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)

    lines = [f"Exact 10 nearest neighbours of {queries} query rows among n reference rows, 64-d unit vectors "
             "(clustered: 20 centres plus noise, like trained embeddings; uniform on the sphere), one thread. "
             "Build / query seconds:", "",
             "| data | n | brute | k-d tree | ball tree |" + (" pynndescent (approximate) |" if with_nndescent else ""),
             "|---|---:|---:|---:|---:|" + ("---:|" if with_nndescent else "")]
    with threadpool_limits(1):
        for kind in ("clustered", "uniform"):
            for n in sizes:
                if kind == "uniform":
                    R = unit(rng.normal(size=(n + queries, 64)))
                else:
                    c = unit(rng.normal(size=(20, 64)))
                    R = unit(c[rng.integers(0, 20, n + queries)] + 0.15 * rng.normal(size=(n + queries, 64)))
                Q, R = R[n:], R[:n]
                cells = []
                for algo in ("brute", "kd_tree", "ball_tree"):
                    t = time.perf_counter()
                    nn = NearestNeighbors(n_neighbors=10, algorithm=algo).fit(R)
                    b = time.perf_counter() - t
                    t = time.perf_counter()
                    nn.kneighbors(Q, 10, return_distance=False)
                    cells.append(f"{b:.2f} / {time.perf_counter() - t:.2f}")
                if with_nndescent:
                    import pynndescent

                    pynndescent.NNDescent(R[:2000], n_neighbors=10, n_jobs=1, random_state=0).query(Q[:10], k=10)  # compile
                    t = time.perf_counter()
                    index = pynndescent.NNDescent(R, n_neighbors=15, n_jobs=1, random_state=0)
                    b = time.perf_counter() - t
                    t = time.perf_counter()
                    index.query(Q, k=10)
                    cells.append(f"{b:.2f} / {time.perf_counter() - t:.2f}")
                lines.append(f"| {kind} | {n:,} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    lines += ["", "The evaluators keep scikit-learn's `algorithm=\"auto\"` (brute force above 15 dimensions); "
              "the on-demand evaluation must be exact, which rules pynndescent out there."]
    return lines


# -- 6. GPU -------------------------------------------------------------------------------------------
def gpu_section(steps: int) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return ["Not measured: no GPU was lent for this run. `TrainConfig(cuda_graphs=True)` (off by default) "
                "captures the `batch` step in a CUDA graph; `python bench/bench_scale.py` measures it against the "
                "eager step where CUDA is available, and `tests/test_scale_training.py` checks it there."]
    import numpy as np

    from hraml_core.tasks import encode_targets
    from hraml_core.training import TrainConfig, TrainingRun

    rng = np.random.default_rng(0)
    lines = [f"{torch.cuda.get_device_name()}: ms/step of the `batch` sampler, eager against CUDA graph, same process:",
             "", "| batch | eager ms/step | CUDA graph ms/step | eager / graph |", "|---:|---:|---:|---:|"]
    for batch in (256, 1024, 4096):
        X = rng.normal(size=(8 * batch, 64)).astype(np.float32)
        t = encode_targets(rng.integers(0, 10, len(X)))
        ms = []
        for graphs in (False, True):
            run = TrainingRun(X, t.Y, t.task, TrainConfig(batch_size=batch, device="cuda", cuda_graphs=graphs))
            for _ in range(20):
                run.step()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(steps):
                run.step()
            run.flush()
            torch.cuda.synchronize()
            ms.append(1000 * (time.perf_counter() - t0) / steps)
        lines.append(f"| {batch} | {ms[0]:.2f} | {ms[1]:.2f} | {ms[0] / ms[1]:.2f}x |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write the section into docs/BENCHMARKS.md")
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, few steps (numbers not for publishing)")
    ap.add_argument("--sizes", default=None, help="rows, comma-separated (default 1e4,1e5,1e6)")
    ap.add_argument("--full-eval", action="store_true", help="also time Trainer.evaluate_full at each size")
    ap.add_argument("--neighbours", action="store_true", help="also measure the neighbour-search algorithms")
    ap.add_argument("--nndescent", action="store_true", help="with --neighbours: include pynndescent")
    ap.add_argument("--only", default=None, help="sections to run, comma-separated: rows, pairs, cold, blocks, "
                    "neighbours, gpu, dashboard (prints them; --write needs all)")
    ap.add_argument("--dashboard-rows", type=float, default=None,
                    help="rows of the dashboard's generated file (default 1e6; --quick: 2e4)")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if only and args.write:
        ap.error("--only prints a part of the section; --write rewrites all of it")
    if args.quick and args.write:
        ap.error("--quick is a smoke run: its numbers are not written")
    sizes = [int(float(s)) for s in (args.sizes or ("2e3,1e4" if args.quick else "1e4,1e5,1e6")).split(",")]
    head = machine_line()
    print(head, flush=True)
    parts = [f"`python bench/bench_scale.py --write` on: {head}.", ""]
    def wanted(name: str) -> bool:
        return only is None or name in only

    if wanted("rows"):
        parts += ["### Rows", ""] + rows_section(sizes, args.full_eval, 2.0 if args.quick else 10.0) + [""]
    if wanted("pairs"):
        parts += ["### Algorithm 1", ""] + pairs_section(300 if args.quick else 5000) + [""]
    if wanted("cold"):
        parts += ["### Cold start", ""] + cold_section(1 if args.quick else 5) + [""]
    if wanted("blocks"):
        parts += ["### The all-pairs loss in blocks", ""] + blocked_section(2 if args.quick else 10,
                                                                           1024 if args.quick else 4096) + [""]
    if args.neighbours or (only and "neighbours" in only):
        nn_sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
        parts += ["### Neighbour search", ""] + neighbours_section(nn_sizes, 100 if args.quick else 500, args.nndescent) + [""]
    if wanted("gpu"):
        parts += ["### GPU", ""] + gpu_section(50 if args.quick else 300) + [""]
    if wanted("dashboard"):
        n = int(args.dashboard_rows or (2e4 if args.quick else 1e6))
        parts += [f"### Dashboard at {n:,} rows", ""] + dashboard_section(
            n, 20 if args.quick else 100, 3.0 if args.quick else 10.0, 1 if args.quick else 3)
    body = "\n".join(parts)
    print(body)
    if args.write:
        write_section("Scale", body)


if __name__ == "__main__":
    main()
