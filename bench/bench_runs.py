"""Run directories: what recording snapshots costs a training loop, and what reading them back costs a replay.

    python bench/bench_runs.py [--write] [--snapshots 200] [--steps-per-snapshot 10]

Target (issue 10): replaying 200 snapshots of digits, slider to frame in <= 0.3 s. This script
measures the read part of that (a fresh ``open_run``, then ``snapshot(step)`` at random steps, as
a slider does) and, with ``--replay``, the whole of it: a slider change to the five figures built
(snapshot read, aligned frame, figures, what the page is sent for them: _common.refresh_bytes), against one live
refresh of the Train page measured in the same run, plus the same through one AppTest rerun of the
Runs page. It also times the writer against the training step of the same run: a digits run with
the default settings, a snapshot every ``--steps-per-snapshot`` steps, each of 300 probe rows (A, E)
and 1797 display rows.

``--watchers N`` (target, issue 11: 30 watchers of one run, every page >= 1 Hz, server memory
<= 20 MB per watcher) serves ``hraml dashboard --runs`` on a run being written (a snapshot a second,
as the Trainer writes) and opens N Chromium tabs on its watch link; it reports the server's memory
after the first tab and after all N, and each tab's refresh rate counted in the browser.

    python bench/bench_runs.py --replay --watchers 10 [--write]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, refresh_bytes, write_section  # noqa: E402

from hraml_core.runs import RunWriter, list_runs, open_run  # noqa: E402
from hraml_core.runs.recorder import choose_probe, square_distances  # noqa: E402
from hraml_core.tasks import encode_targets  # noqa: E402
from hraml_core.training import TrainConfig, TrainingRun  # noqa: E402
from hraml_dashboard.geometry import pca_2d  # noqa: E402


def ms(seconds) -> str:
    return f"{1000 * seconds:.2f} ms"


def write_run(folder: Path, n_snapshots: int, every: int) -> dict:
    """Train digits, writing a snapshot every ``every`` steps; per-step and per-snapshot times (s)."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    targets = encode_targets(y)
    run = TrainingRun(X, targets.Y, targets.task, TrainConfig())
    probe = choose_probe(targets.Y, run.seed, 300, 2000)
    Xp, Xd = X[probe.index], X[probe.display_index]
    writer = RunWriter(folder, config={"relation": "l1"}, task=targets.task, dataset={"name": "digits"}, source="bench")
    writer.write_probe(run.relation_matrix(run.Y[probe.index]).numpy(), probe.index, probe.codes, probe.display_index,
                       probe.display_codes, classes=targets.classes, relation_scale=run.scale)
    for _ in range(20):  # warm-up (first optimiser step imports torch._dynamo)
        run.step()
    step_s, embed_s, write_s, log_s = [], [], [], []
    logged = len(run.state.losses)
    for i in range(n_snapshots * every):
        t0 = time.perf_counter()
        run.step()
        step_s.append(time.perf_counter() - t0)
        if (i + 1) % every:
            continue
        t0 = time.perf_counter()
        losses = run.state.losses
        for k in range(logged, len(losses)):
            writer.log(k + 1, loss=losses[k])
        logged = len(losses)
        t1 = time.perf_counter()
        A, D = square_distances(run.embed(Xp)), run.embed(Xd)
        t2 = time.perf_counter()
        writer.snapshot(run.state.step, A, D, epoch=run.epoch, loss=losses[-1])
        t3 = time.perf_counter()
        log_s.append(t1 - t0)
        embed_s.append(t2 - t1)
        write_s.append(t3 - t2)
    writer.finish()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"step": np.array(step_s), "embed": np.array(embed_s), "write": np.array(write_s), "log": np.array(log_s),
            "size_mb": size / 2**20, "every": every}


def fit_with_and_without_log_dir(folder: Path) -> dict:
    """Seconds of HRAML's default digits fit without and with log_dir (snapshots within their time
    budget, hraml_core.runs.recorder.MAX_OVERHEAD), and the snapshots it wrote."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from hraml_core import HRAML

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    HRAML(max_epochs=2, random_state=0).fit(X, y)  # warm-up
    times = {}
    for name, log_dir in (("plain", None), ("log_dir", folder), ("plain again", None)):
        t0 = time.perf_counter()
        HRAML(random_state=0, log_dir=log_dir).fit(X, y)
        times[name] = time.perf_counter() - t0
    run = open_run(folder)
    return {"plain": min(times["plain"], times["plain again"]), "log_dir": times["log_dir"],
            "snapshots": len(run.snapshot_steps), "steps": run.progress["step"]}


def read_run(folder: Path, frames: int = 60, seed: int = 0) -> dict:
    """Times (s) of a fresh open_run, of snapshot(step) at distinct random steps, of an idle refresh."""
    opens = []
    for _ in range(5):
        t0 = time.perf_counter()
        run = open_run(folder)
        _ = run.scalars
        opens.append(time.perf_counter() - t0)
    steps = np.random.default_rng(seed).permutation(run.snapshot_steps)[:frames]
    frame = []
    for s in steps:  # distinct steps: every read misses the Run's cache, as a slider dragged along does
        t0 = time.perf_counter()
        snap = run.snapshot(int(s))
        frame.append(time.perf_counter() - t0)
        assert snap.A.shape == snap.E.shape
    first = []
    for s in steps[:10]:  # the first frame a page shows: a new Run, then one snapshot
        t0 = time.perf_counter()
        open_run(folder).snapshot(int(s))
        first.append(time.perf_counter() - t0)
    idle = []
    for _ in range(50):
        t0 = time.perf_counter()
        run.refresh()
        idle.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    summaries = list_runs(folder.parent)
    listed = time.perf_counter() - t0
    return {"open": np.array(opens), "frame": np.array(frame), "first": np.array(first), "idle": np.array(idle),
            "list": listed, "n_runs": len(summaries), "n_snapshots": len(run.snapshot_steps), "rows": len(run.scalars)}


def replay_run(folder: Path, frames: int = 60, seed: int = 0) -> dict:
    """Slider to frame on a recorded run, against a live refresh of the Train page (same process)."""
    from hraml_dashboard import figures, replay
    from hraml_dashboard.prepare import prepare_dataset
    from hraml_core.data import load_dataset
    from hraml_core.trainer import Trainer

    run = open_run(folder)
    t0 = time.perf_counter()
    chain = replay.FrameChain(run, "pca")
    chain.ensure()
    chain.wait()
    chain_s = time.perf_counter() - t0
    view = open_run(folder)  # its own snapshot cache: every read below misses it, as a dragged slider does
    steps = np.random.default_rng(seed).permutation(view.snapshot_steps)[:frames]
    out = {"chain_s": chain_s, "n": len(view.snapshot_steps)}
    for as_images in (False, True):
        view = open_run(folder)
        times, size = [], 0
        for s in steps:
            t = time.perf_counter()
            figs = figures.replay_figures(view, view.snapshot(int(s)), chain.frame(int(s)), as_images=as_images)
            size = refresh_bytes(figs, as_images)
            times.append(time.perf_counter() - t)
        out["images" if as_images else "heatmaps"] = {"t": np.array(times), "kb": size / 1e3}
    # the baseline: one refresh of the live page (trainer snapshot -> live figures -> JSON), app defaults
    p = prepare_dataset(load_dataset("digits"))
    trainer = Trainer(np.array(p.X_train), np.array(p.Y_train), X_val=np.array(p.X_val), Y_val=np.array(p.Y_val),
                      probe_size=300, display_size=2000)
    trainer.start()
    time.sleep(3)
    trainer.pause()
    snap = trainer.snapshot()
    frame = replay.ReplayFrame(pca_2d(snap.embeddings), np.asarray(snap.embedding_labels), "pca", snap.step)
    live = []
    for _ in range(20):
        t = time.perf_counter()
        refresh_bytes(figures.live_figures(snap, frame, live=True), True)
        live.append(time.perf_counter() - t)
    trainer.stop()
    out["live"] = np.array(live)
    return out


def replay_apptest(root: Path, name: str, reruns: int = 10, seed: int = 0) -> dict:
    """One AppTest rerun after a slider change on the Runs page, against a rerun of the Train page."""
    import os

    os.environ.update(HRAML_RUNS_DIR=str(root), HRAML_DASHBOARD_UMAP="0")
    from streamlit.testing.v1 import AppTest

    from hraml_dashboard import run_store

    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    train = []
    for _ in range(reruns):
        t = time.perf_counter()
        at.run()
        train.append(time.perf_counter() - t)
    at.query_params["run"] = name
    at.switch_page("runs_page.py")
    at.run()
    run_store.shared_run(root / name).chain("pca").wait()
    at.run()
    steps = run_store.shared_run(root / name).run.snapshot_steps
    slider = []
    for s in np.random.default_rng(seed).choice(steps, reruns, replace=False):
        t = time.perf_counter()
        next(w for w in at.slider if w.label == "Step").set_value(int(s)).run()
        slider.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    from hraml_dashboard.state import close_all_sessions

    close_all_sessions()
    run_store.close_shared_runs()
    return {"train": np.array(train), "slider": np.array(slider)}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def watch_run(n: int, seconds: float) -> dict:
    """N Chromium tabs watching one run being written: server memory and each tab's refresh rate."""
    import threading

    from bench_dashboard import CHARTS, CHROMIUM, CHROMIUM_ARGS, Server, _cpu_by_group
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support import count_metric_changes_js, metric_changes
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="hraml-bench-watch-"))
    stop = threading.Event()
    rng = np.random.default_rng(0)
    labels = np.sort(np.arange(300) % 10)
    writer = RunWriter(root / "teacher", config={"relation": "l1"}, task="classification", metric="accuracy",
                       dataset={"name": "digits"}, source="bench")
    writer.write_probe(2.0 * (labels[:, None] != labels[None, :]), np.arange(300), labels, np.arange(2000),
                       np.arange(2000) % 10, classes=list(range(10)), relation_scale=1.0)

    def train():  # a Trainer's records: a loss row every 10 ms, a snapshot every second
        step, last = 0, 0.0
        while not stop.is_set():
            step += 1
            writer.log(step, loss=1.0 / step)
            if time.monotonic() - last >= 1.0:
                Z = rng.normal(size=(2000, 64)).astype(np.float32)
                P = rng.normal(size=(300, 64)).astype(np.float32)
                writer.snapshot(step, square_distances(P), Z / np.linalg.norm(Z, axis=1, keepdims=True))
                last = time.monotonic()
            time.sleep(0.01)

    th = threading.Thread(target=train, daemon=True)
    th.start()
    srv = Server({"HRAML_RUNS_DIR": str(root), "HRAML_DASHBOARD_UMAP": "0"})
    out = {"n": n}
    try:
        srv.wait_healthy()
        out["rss_idle"] = _rss_mb(srv.proc.pid)
        with sync_playwright() as pw:
            # every tab is a watcher in the foreground: no timer throttling of background tabs
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
                "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
                "--disable-renderer-backgrounding"])
            pages = []
            for i in range(n):
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                page.goto(f"{srv.url}/?watch=teacher", timeout=120_000)
                page.wait_for_selector(CHARTS, timeout=120_000)
                pages.append(page)
                if i == 0:
                    time.sleep(5)
                    out["rss_1"] = _rss_mb(srv.proc.pid)
            time.sleep(5)
            for page in pages:
                page.evaluate(count_metric_changes_js("Step"))
            cpu0 = _cpu_by_group(srv.proc.pid)
            time.sleep(seconds)
            cpu1 = _cpu_by_group(srv.proc.pid)
            out["rates"] = [metric_changes(page) / seconds for page in pages]
            out["cpu"] = {k: (cpu1[k] - cpu0[k]) / seconds for k in cpu0}  # cores used in the window
            out["rss_n"] = _rss_mb(srv.proc.pid)
            browser.close()
    finally:
        stop.set()
        th.join()
        writer.finish()
        srv.close()
        shutil.rmtree(root, ignore_errors=True)
    out["per_watcher_mb"] = (out["rss_n"] - out["rss_1"]) / max(n - 1, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshots", type=int, default=200)
    ap.add_argument("--steps-per-snapshot", type=int, default=10)
    ap.add_argument("--replay", action="store_true", help="also time slider to frame (figures, AppTest) on the run")
    ap.add_argument("--watchers", type=int, default=0, help="also open N Chromium tabs on a watch link (0: no)")
    ap.add_argument("--watch-seconds", type=float, default=20.0, help="window over which the tabs' refreshes are counted")
    ap.add_argument("--write", action="store_true", help="write the results into docs/BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as the dashboard does: a second BLAS thread only spins on 2 vCPUs
    root = Path(tempfile.mkdtemp(prefix="hraml-bench-runs-"))
    rp = ra = wt = None
    try:
        w = write_run(root / "digits", args.snapshots, args.steps_per_snapshot)
        r = read_run(root / "digits")
        if args.replay:
            rp = replay_run(root / "digits")
            ra = replay_apptest(root, "digits")
        f = fit_with_and_without_log_dir(root / "fit")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.watchers:
        wt = watch_run(args.watchers, args.watch_seconds)

    step, write, embed = np.median(w["step"]), np.median(w["write"]), np.median(w["embed"])
    overhead = (w["write"].sum() + w["embed"].sum() + w["log"].sum()) / w["step"].sum()
    rows = [
        ("training step (median)", ms(step), "1.00"),
        ("snapshot: file write only, as the Trainer (median)", ms(write), f"{write / step:.2f}"),
        ("snapshot: embed + A + write, as fit / torchrun (median)", ms(write + embed), f"{(write + embed) / step:.2f}"),
        (f"scalars: buffering {w['every']} rows (median)", ms(np.median(w["log"])), f"{np.median(w['log']) / step:.3f}"),
    ]
    reads = [
        ("open_run + scalars (fresh, median of 5)", ms(np.median(r["open"]))),
        (f"snapshot(step), {len(r['frame'])} distinct random steps: median / p95 / max",
         f"{ms(np.median(r['frame']))} / {ms(np.percentile(r['frame'], 95))} / {ms(r['frame'].max())}"),
        ("open_run + snapshot(step) (a page's first frame, max of 10)", ms(r["first"].max())),
        ("refresh() with nothing new (median)", ms(np.median(r["idle"]))),
        (f"list_runs over {r['n_runs']} run", ms(r["list"])),
    ]
    body = [
        f"Machine: {machine()}. Digits (1797 x 64), default settings, one torch thread; "
        f"{r['n_snapshots']} snapshots ({args.steps_per_snapshot} steps apart; 300 probe rows, 1797 display rows), "
        f"{r['rows']} scalars rows, {w['size_mb']:.1f} MB on disk. `python bench/bench_runs.py`.",
        "",
        "| writing, in the training loop | time | / step |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        f"Recording every {args.steps_per_snapshot} steps added {100 * overhead:.1f}% to the training time "
        "when every snapshot is taken (the Trainer reuses the arrays it publishes: only the write is its cost). "
        f"`HRAML().fit` on digits: {f['plain']:.2f} s, with `log_dir` {f['log_dir']:.2f} s "
        f"({f['log_dir'] / f['plain']:.2f}x), {f['snapshots']} snapshots over {f['steps']} steps "
        "(snapshots keep within half the training time).",
        "",
        "| reading, for a replay (target: slider to frame <= 300 ms) | time |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in reads],
    ]
    if rp is not None:
        live = np.median(rp["live"])
        hm, im = rp["heatmaps"], rp["images"]
        body += [
            "",
            f"Replay (`--replay`): the run above, {rp['n']} snapshots. A slider change costs reading the snapshot, its "
            "aligned projection frame (computed once per run for the whole server), the five figures and their "
            "what the page is sent for them (`_common.refresh_bytes`: ECharts options and the SVG heatmaps while a view refreshes, plotly JSON when still); the baseline is one refresh of the Train page (a digits "
            "Trainer's snapshot, the five live figures, their JSON), measured in the same process.",
            "",
            "| replay (target: slider to frame <= 300 ms) | time | / live refresh |",
            "|---|---|---|",
            f"| aligned PCA frames for all {rp['n']} snapshots (once per run, in the background) | {rp['chain_s']:.2f} s | |",
            f"| live refresh of the Train page (median of 20) | {ms(live)} | 1.00 |",
            f"| slider to frame, heatmaps with hover values (paused): median / p95 / max, {hm['kb']:.0f} kB | "
            f"{ms(np.median(hm['t']))} / {ms(np.percentile(hm['t'], 95))} / {ms(hm['t'].max())} | {np.median(hm['t']) / live:.2f} |",
            f"| slider to frame, heatmaps as images (playing, live): median / p95 / max, {im['kb']:.0f} kB | "
            f"{ms(np.median(im['t']))} / {ms(np.percentile(im['t'], 95))} / {ms(im['t'].max())} | {np.median(im['t']) / live:.2f} |",
        ]
    if ra is not None:
        body += [
            f"| AppTest: a rerun of the Train page, idle (median of {len(ra['train'])}) | {ms(np.median(ra['train']))} | |",
            f"| AppTest: slider change on the Runs page, rerun (median / max of {len(ra['slider'])}) | "
            f"{ms(np.median(ra['slider']))} / {ms(ra['slider'].max())} | {np.median(ra['slider']) / np.median(ra['train']):.2f} x the Train rerun |",
        ]
    if wt is not None:
        rates = np.array(wt["rates"])
        body += [
            "",
            f"Watching (`--watchers {wt['n']}`): `hraml dashboard --runs` serving one run being written (a loss row every "
            f"10 ms, a snapshot of 300 probe / 2000 display rows a second), {wt['n']} Chromium tabs on its watch link "
            "(one browser, same machine).",
            "",
            "| watchers | value | target |",
            "|---|---|---|",
            f"| server memory (RSS): idle / 1 watcher / {wt['n']} watchers | {wt['rss_idle']:.0f} / {wt['rss_1']:.0f} / "
            f"{wt['rss_n']:.0f} MB | |",
            f"| memory per additional watcher | **{wt['per_watcher_mb']:.1f} MB** | <= 20 MB |",
            f"| refreshes per second of each tab (changes of the shown step, counted in the browser over "
            f"{args.watch_seconds:.0f} s): min / median / max | {rates.min():.2f} / {np.median(rates):.2f} / {rates.max():.2f} | >= 1 |",
            f"| CPU in the window (cores): server / Chromium / other processes | {wt['cpu']['server']:.2f} / "
            f"{wt['cpu']['chromium']:.2f} / {wt['cpu']['other']:.2f} | |",
        ]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section("Run directories", text)


if __name__ == "__main__":
    main()
