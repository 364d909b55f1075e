"""Exploration runs behind the protocol-wide grid of ``hraml_core.protocol`` (docs/RESULTS.md).

Two modes, both on an *exploration* split (``--split-seed``, default 1) that differs from the
split of the reported run (``hraml reproduce --seed 0``):

- ``curves``: for each configuration (a preprocessing and HRAML parameters), train once per fold
  for the largest checkpoint and evaluate the test fold at every checkpoint epoch (kNN with k = 1
  and k = 4 for classes; MLkNN for label sets). Tells which fixed settings are good protocol-wide.
- ``protocol``: run ``hraml_core.protocol.run_method("hraml", ...)`` per fold with ProtocolConfig
  variants (model selection on validation inside the training folds) and report test-fold means.
- ``selection``: per fold and candidate of the default grid, every validation split's curve and
  the refit's test curve; ``rules`` replays selection rules on them offline (docs/RESULTS.md,
  Table E).
- ``export``: write the datasets to .npz files (``--out`` folder); with ``HRAML_NPZ_DIR`` pointing
  there, the other modes read those instead (for a machine without the loaders' dependencies).

Results go to a JSON-lines file (one record per dataset / fold / configuration / checkpoint);
``--summary`` prints means over folds. Workers: one process each, one torch and one BLAS thread.

    python bench/explore_protocol.py curves --datasets uspst --grid classification --workers 1 --out /tmp/c.jsonl
    python bench/explore_protocol.py summary /tmp/c.jsonl
    python bench/explore_protocol.py protocol --protocols bench/explore/protocols_classification.json --out /tmp/p.jsonl
    python bench/explore_protocol.py selection --repeats 3,news20=2,emotions=5,flags=5 --out /tmp/s.jsonl
    python bench/explore_protocol.py rules /tmp/s.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA_DIR = os.environ.get("HRAML_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

# name -> (preprocessing, HRAML params). Checkpoints are epochs at which the test fold is scored.
GRIDS: dict[str, dict[str, tuple[str, dict]]] = {
    "classification": {
        "pca/default": ("pca", {}),
        "pca+std/default": ("pca+standardize", {}),
        "none/default": ("none", {}),
        "pca/h512": ("pca", {"hidden": (512,)}),
        "pca/h512-256": ("pca", {"hidden": (512, 256)}),
        "pca/d32": ("pca", {"dim": 32}),
        "pca/d128": ("pca", {"dim": 128}),
        "pca/h512-d128": ("pca", {"hidden": (512,), "dim": 128}),
        "pca/lr1e-3": ("pca", {"lr": 1e-3}),
        "pca/lr1e-2": ("pca", {"lr": 1e-2}),
        "pca/wd0": ("pca", {"weight_decay": 0.0}),
        "pca/wd5e-4": ("pca", {"weight_decay": 5e-4}),
        "pca/hard": ("pca", {"sampler": "hard"}),
        "pca/outnone": ("pca", {"out_activation": "none"}),
        "pca/bs128": ("pca", {"batch_size": 128}),
        "pca/bs512": ("pca", {"batch_size": 512}),
        "pca/scale0.5": ("pca", {"scale": 0.5}),
        "pca/h1024": ("pca", {"hidden": (1024,)}),
        "none/h512": ("none", {"hidden": (512,)}),
    },
    "multilabel": {
        "std/l1": ("standardize", {}),
        "std/l1-max": ("standardize", {"scale": "max"}),
        "std/jaccard": ("standardize", {"relation": "jaccard"}),
        "std/jaccard-max": ("standardize", {"relation": "jaccard", "scale": "max"}),
        "std/hamming": ("standardize", {"relation": "hamming", "scale": "max"}),
        "std/cosine": ("standardize", {"relation": "cosine"}),
        "std/l1-h512": ("standardize", {"hidden": (512,)}),
        "std/l1-d32": ("standardize", {"dim": 32}),
        "std/l1-wd5e-4": ("standardize", {"weight_decay": 5e-4}),
        "std/l1-lr1e-3": ("standardize", {"lr": 1e-3}),
        "std/hard": ("standardize", {"sampler": "hard"}),
        "std/hard-jaccard": ("standardize", {"sampler": "hard", "relation": "jaccard"}),
        "std/l1-outnone": ("standardize", {"out_activation": "none"}),
        "none/l1": ("none", {}),
    },
}
#: news20 (8014 sparse features, 3970 rows) gets a shorter list: "none" would densify it.
SHORT = {"news20": ("pca/default", "pca+std/default", "pca/h512", "pca/d128", "pca/hard", "pca/lr1e-3")}
CHECKPOINTS = (5, 10, 20, 30, 50, 75, 100, 150, 200)


def _setup():
    import torch

    torch.set_num_threads(1)


_DATA: dict = {}


def _dataset(name):
    """The dataset, or its export in $HRAML_NPZ_DIR (``export`` mode; for machines without the loaders)."""
    if name in _DATA:
        return _DATA[name]
    npz = os.environ.get("HRAML_NPZ_DIR")
    if npz:
        import types

        import numpy as np
        import scipy.sparse as sp

        d = np.load(Path(npz) / f"{name}.npz", allow_pickle=False)
        X = sp.load_npz(Path(npz) / f"{name}.X.npz") if (Path(npz) / f"{name}.X.npz").exists() else d["X"]
        _DATA[name] = types.SimpleNamespace(name=name, X=X, Y=d["Y"], task=str(d["task"]))
    else:
        from hraml_core.data import load_dataset

        _DATA[name] = load_dataset(name, data_dir=DATA_DIR)
    return _DATA[name]


def export(names, folder):
    import numpy as np
    import scipy.sparse as sp

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        ds = _dataset(name)
        if sp.issparse(ds.X):
            sp.save_npz(folder / f"{name}.X.npz", ds.X.tocsr())
            np.savez_compressed(folder / f"{name}.npz", Y=ds.Y, task=ds.task)
        else:
            np.savez_compressed(folder / f"{name}.npz", X=ds.X, Y=ds.Y, task=ds.task)


def curve_job(job):
    """Train one configuration on one fold; test-fold metrics at each checkpoint."""
    _setup()

    from hraml_core import HRAML
    from hraml_core.evaluate import evaluate_embedding
    from hraml_core.preprocessing import Preprocessor
    from hraml_core.protocol import fold_splits
    from hraml_core.tasks import CLASSIFICATION, encode_targets
    from hraml_core.training import TrainingRun

    ds = _dataset(job["dataset"])
    X, Y, task = ds.X, ds.Y, ds.task
    train, test = fold_splits(task, Y, job["folds"], job["split_seed"])[job["fold"]]
    seed = job["split_seed"] + job["fold"]
    pre = Preprocessor(job["pre"], job.get("pca", 100), random_state=seed)
    Z, Zt = pre.fit_transform(X[train]), pre.transform(X[test])
    model = HRAML(task=task, **job["params"])
    targets = encode_targets(Y[train], task)
    run = TrainingRun(Z, targets.Y, targets.task, model.train_config(seed))
    t0 = time.perf_counter()
    out = []
    steps = run.sampler.steps_per_epoch
    for epoch in range(1, max(job["checkpoints"]) + 1):
        for _ in range(steps):
            run.step()
        if epoch in job["checkpoints"]:
            E, Et = run.embed(Z), run.embed(Zt)
            ks = (1, 4) if task == CLASSIFICATION else (None,)
            for k in ks:
                m = evaluate_embedding(task, E, Y[train], Et, Y[test], k=k)
                out.append({**{x: job[x] for x in ("dataset", "fold", "config")}, "epoch": epoch, "k": k,
                            "metrics": m, "seconds": time.perf_counter() - t0})
    if job.get("raw"):
        ks = (1, 4) if task == CLASSIFICATION else (None,)
        for k in ks:
            m = evaluate_embedding(task, Z, Y[train], Zt, Y[test], k=k)
            out.append({"dataset": job["dataset"], "fold": job["fold"], "config": "raw/" + job["pre"], "epoch": 0,
                        "k": k, "metrics": m, "seconds": 0.0})
    return out


def selection_job(job):
    """Validation curves (each split apart) and the refit's test curve for every default candidate.

    With these, selection rules (argmax, smoothed argmax, number of splits) are compared offline:
    a refit for E epochs is the first E epochs of the refit run (same seed, no schedule).
    """
    _setup()
    import numpy as np

    from hraml_core import HRAML
    from hraml_core.evaluate import evaluate_embedding
    from hraml_core.preprocessing import Preprocessor
    from hraml_core.protocol import DEFAULT_CANDIDATES, ProtocolConfig, _validation_split, fold_splits
    from hraml_core.tasks import CLASSIFICATION, encode_targets
    from hraml_core.training import TrainingRun

    ds = _dataset(job["dataset"])
    X, Y, task = ds.X, ds.Y, ds.task
    config = ProtocolConfig(folds=job["folds"], seed=job["split_seed"])
    train, test = fold_splits(task, Y, config.folds, config.seed)[job["fold"]]
    seed = config.seed + job["fold"]
    points = config.epoch_checkpoints()
    k = config.knn_k if task == CLASSIFICATION else None
    out = []
    t0 = time.perf_counter()
    for cand in DEFAULT_CANDIDATES[task]:
        pre = Preprocessor(cand.preprocessing, config.pca_components, random_state=seed)
        Z, Zt = pre.fit_transform(X[train]), pre.transform(X[test])
        Ytr = Y[train]
        params = {"task": task, "random_state": seed, **cand.params}

        def curve(rows, eval_rows=None, Xeval=None, Yeval=None):
            targets = encode_targets(Ytr[rows], task)
            run = TrainingRun(Z[rows], targets.Y, targets.task, HRAML(**params).train_config(seed))
            res = []
            for epoch in range(1, config.max_epochs + 1):
                for _ in range(run.sampler.steps_per_epoch):
                    run.step()
                if epoch in points:
                    Ze = run.embed(Xeval if Xeval is not None else Z[eval_rows])
                    Ye = Yeval if Yeval is not None else Ytr[eval_rows]
                    res.append(evaluate_embedding(task, run.embed(Z[rows]), Ytr[rows], Ze, Ye, k=k))
            return res

        vals = []
        for r in range(job["repeats"]):
            fit, val = _validation_split(task, len(Z), Ytr, config.validation_fraction, seed + 7919 * r)
            vals.append(curve(fit, val))
        tests = curve(np.arange(len(Z)), Xeval=Zt, Yeval=Y[test])
        out.append({"dataset": job["dataset"], "fold": job["fold"], "config": "selection", "candidate": cand.label(),
                    "epoch": -2, "k": k, "points": points, "val": vals, "test": tests,
                    "metrics": tests[-1], "seconds": time.perf_counter() - t0})
    return out


def protocol_job(job):
    _setup()
    from hraml_core.protocol import Candidate, ProtocolConfig, fold_splits, run_method

    ds = _dataset(job["dataset"])
    X, Y, task = ds.X, ds.Y, ds.task
    cfg = dict(job["config_kwargs"])
    if "candidates" in cfg:
        cfg["candidates"] = tuple(Candidate(p, dict(c)) for p, c in cfg["candidates"])
    config = ProtocolConfig(folds=job["folds"], seed=job["split_seed"], **cfg)
    train, test = fold_splits(task, Y, config.folds, config.seed)[job["fold"]]
    t0 = time.perf_counter()
    metrics, chosen = run_method("hraml", task, X[train], Y[train], X[test], Y[test], config, config.seed + job["fold"])
    return [{"dataset": job["dataset"], "fold": job["fold"], "config": job["config"], "epoch": -1, "k": config.knn_k,
             "metrics": metrics, "chosen": chosen, "seconds": time.perf_counter() - t0}]


def _run(fn, jobs, workers, out_path):
    out = open(out_path, "a")
    t0 = time.perf_counter()
    if workers <= 1:
        it = map(fn, jobs)
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(workers, maxtasksperchild=20)
        it = pool.imap_unordered(fn, jobs)
    for i, recs in enumerate(it):
        for r in recs:
            out.write(json.dumps(r) + "\n")
        out.flush()
        print(f"[{time.perf_counter() - t0:7.1f}s] {i + 1}/{len(jobs)} {recs[0]['dataset']} fold {recs[0]['fold']} "
              f"{recs[0]['config']}", flush=True)
    out.close()


def summary(paths, datasets=None):
    import numpy as np

    recs = [json.loads(line) for p in paths for line in open(p)]
    groups: dict = {}
    for r in recs:
        if datasets and r["dataset"] not in datasets:
            continue
        key = (r["dataset"], r["config"], r["epoch"], r["k"])
        groups.setdefault(key, []).append(r)
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], str(k[3]))):
        rs = groups[key]
        names = list(rs[0]["metrics"])
        cells = []
        for m in names:
            v = np.array([r["metrics"][m] for r in rs])
            cells.append(f"{m[:8]} {v.mean():.4f}±{v.std(ddof=1) if len(v) > 1 else 0:.4f}")
        secs = np.mean([r["seconds"] for r in rs])
        print(f"{key[0]:9s} {key[1]:28s} ep {key[2]:4d} k {str(key[3]):4s} n={len(rs):2d} {secs:6.1f}s  " + "  ".join(cells))


def rules(paths, specs=("r=0,w=0", "r=0,w=1", "r=1,w=0", "r=1,w=1", "r=3,w=0", "r=3,w=1", "r=0,w=1,min=20")):
    """Offline comparison of selection rules on ``selection`` records (test-fold means per rule).

    A rule ``r=R,w=W,min=M``: the mean validation curve of the first R splits (0: as many as the
    protocol's ``repeats_for``), each point averaged with W checkpoints either side, checkpoints
    below M epochs left out; the best (candidate, checkpoint) gives the refit's test metrics.
    """
    import numpy as np

    from hraml_core.evaluate import METRIC_DIRECTIONS, PRIMARY_METRIC
    from hraml_core.protocol import ProtocolConfig

    recs = [json.loads(line) for p in paths for line in open(p)]
    by: dict = {}
    for r in recs:
        by.setdefault((r["dataset"], r["fold"]), []).append(r)
    datasets = list(dict.fromkeys(d for d, _ in by))
    cfg = ProtocolConfig()
    for spec in specs:
        opts = dict(kv.split("=") for kv in spec.split(","))
        R, W, M = int(opts.get("r", 0)), int(opts.get("w", 0)), int(opts.get("min", 0))
        for d in datasets:
            folds = [v for (dd, _), v in sorted(by.items()) if dd == d]
            metric = "accuracy" if "accuracy" in folds[0][0]["test"][0] else PRIMARY_METRIC["multilabel"]
            sign = 1 if METRIC_DIRECTIONS[metric] == "max" else -1
            picked, chosen = [], []
            for cands in folds:
                best = None
                for c in cands:
                    reps = R or min(len(c["val"]), cfg.repeats_for(_n_train(d, cfg)))
                    curve = np.mean([[v[metric] for v in split] for split in c["val"][:reps]], axis=0)
                    sm = np.array([curve[max(0, i - W): i + W + 1].mean() for i in range(len(curve))])
                    for i, e in enumerate(c["points"]):
                        if e < M:
                            continue
                        if best is None or sign * sm[i] > sign * best[0]:
                            best = (sm[i], c["test"][i], f"{c['candidate']}@{e}")
                picked.append(best[1])
                chosen.append(best[2])
            names = list(picked[0])
            cells = "  ".join(f"{m[:8]} {np.mean([p[m] for p in picked]):.4f}" for m in names)
            print(f"{spec:16s} {d:9s} n={len(picked)} {cells}")


def _n_train(name, cfg):
    n = _dataset(name).X.shape[0]
    return n - n // cfg.folds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("curves", "protocol", "selection", "rules", "summary", "export"))
    ap.add_argument("--repeats", default="3", help="selection mode: validation splits per candidate, "
                    "one number or name=number pairs (news20=2,3)")
    ap.add_argument("paths", nargs="*", help="summary: JSON-lines files")
    ap.add_argument("--datasets", default="binalpha,uspst,news20,emotions,flags")
    ap.add_argument("--grid", default=None, help="grid name (default: the task's); or a JSON file {name: [pre, params]}")
    ap.add_argument("--configs", default=None, help="comma-separated config names from the grid (default all)")
    ap.add_argument("--protocols", default=None, help="protocol mode: JSON file {name: ProtocolConfig kwargs}")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--fold-list", default=None, help="comma-separated fold indices (default all)")
    ap.add_argument("--split-seed", type=int, default=1)
    ap.add_argument("--checkpoints", default=",".join(map(str, CHECKPOINTS)))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="/tmp/explore.jsonl")
    args = ap.parse_args(argv)
    names = [d for d in args.datasets.split(",") if d]
    if args.mode == "rules":
        rules(args.paths)
        return 0
    if args.mode == "summary":
        summary(args.paths, names if args.datasets != ap.get_default("datasets") else None)
        return 0
    if args.mode == "export":
        export(names, args.out)
        return 0
    folds = [int(f) for f in args.fold_list.split(",")] if args.fold_list else list(range(args.folds))
    jobs = []
    for name in names:
        task = _dataset(name).task
        if args.mode == "curves":
            grid = GRIDS[task] if args.grid is None else (
                GRIDS[args.grid] if args.grid in GRIDS else json.loads(Path(args.grid).read_text()))
            chosen = args.configs.split(",") if args.configs else list(SHORT.get(name, grid))
            seen_pre = set()
            for cname in chosen:
                pre, params = grid[cname]
                for fold in folds:
                    jobs.append({"dataset": name, "fold": fold, "config": cname, "pre": pre, "params": params,
                                 "folds": args.folds, "split_seed": args.split_seed,
                                 "checkpoints": [int(c) for c in args.checkpoints.split(",")],
                                 "raw": pre not in seen_pre})
                seen_pre.add(pre)
        elif args.mode == "selection":
            reps = dict(x.split("=") for x in args.repeats.split(",") if "=" in x)
            default = next((x for x in args.repeats.split(",") if "=" not in x), "3")
            for fold in folds:
                jobs.append({"dataset": name, "fold": fold, "folds": args.folds, "split_seed": args.split_seed,
                             "repeats": int(reps.get(name, default)), "config": "selection"})
        else:
            protos = json.loads(Path(args.protocols).read_text())
            for pname, kwargs in protos.items():
                if kwargs.get("_task") not in (None, task):
                    continue
                kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
                for fold in folds:
                    jobs.append({"dataset": name, "fold": fold, "config": pname, "config_kwargs": kwargs,
                                 "folds": args.folds, "split_seed": args.split_seed})
    # longest first: better packing over workers
    jobs.sort(key=lambda j: -_dataset(j["dataset"]).X.shape[0])
    fn = {"curves": curve_job, "protocol": protocol_job, "selection": selection_job}[args.mode]
    _run(fn, jobs, args.workers, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
