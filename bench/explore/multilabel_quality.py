"""Issue 8: MLkNN on HRAML embeddings vs MLkNN on raw standardised features, nine multi-label sets.

Protocol per set: KFold(5, shuffle=True, random_state=SEED); a standardisation fitted on the
training fold; HRAML fitted on the training fold only (random_state = fold index); MLkNN (k=10,
s=1) on the embeddings vs on the standardised features; the five metrics. Raw results are cached
per (set, seed) in ml_results/raw_seed{SEED}.json; each variant's results go to
ml_results/{variant}_seed{SEED}.json (per fold: the five metrics, fit seconds, fit attributes).

    python bench/explore/multilabel_quality.py run VARIANT [VARIANT ...] --seed 1 --sets all
    python bench/explore/multilabel_quality.py show VARIANT [...] --seed 1 --sets all [--md]

``--sets``: ``dev`` (emotions, yeast, plant978, Arts1500, CAL500, looked at while iterating),
``check`` (flags, human3106, Business1500, rcv1subset1500, run only on a chosen candidate),
``all``, or a comma-separated list.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

torch.set_num_threads(1)
# This worktree's hraml_core, not whatever checkout the interpreter's site-packages point at.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sklearn.model_selection import KFold

from hraml_core import HRAML
from hraml_core.data import load_dataset
from hraml_core.evaluate import MULTILABEL_METRICS, METRIC_DIRECTIONS, evaluate_embedding
from hraml_core.preprocessing import Preprocessor

DATA = os.environ.get("HRAML_DATA_DIR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")
OUT = Path(__file__).resolve().parent / "ml_results"
DEV = ["emotions", "yeast", "plant978", "Arts1500", "CAL500"]
CHECK = ["flags", "human3106", "Business1500", "rcv1subset1500"]
ALL = ["emotions", "flags", "yeast", "CAL500", "plant978", "human3106", "Arts1500", "Business1500", "rcv1subset1500"]
FOLDS = 5

#: Variants: HRAML keyword arguments. "default" is what HRAML() does on a 0/1 label matrix; the
#: others take one of its multi-label defaults away (the ablation in docs/RESULTS.md).
VARIANTS: dict[str, dict] = {
    "default": {},
    "embedding-only": {"input_skip": 0.0, "input_noise": 0.0},
    "no-noise": {"input_noise": 0.0},
    "no-skip": {"input_skip": 0.0},
    "jaccard": {"relation": "jaccard"},
}


def load(name: str):
    ds = load_dataset(name) if name == "yeast" else load_dataset(name, data_dir=DATA)
    X = ds.X.toarray() if sp.issparse(ds.X) else np.asarray(ds.X)
    return np.asarray(X, dtype=np.float64), np.asarray(ds.Y).astype(np.int8)


def folds(n: int, seed: int):
    return list(KFold(FOLDS, shuffle=True, random_state=seed).split(np.arange(n)))


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def raw_results(name: str, seed: int, X, Y) -> list[dict]:
    path = OUT / f"raw_seed{seed}.json"
    cache = _read(path)
    if name not in cache:
        rows = []
        for tr, te in folds(len(X), seed):
            pre = Preprocessor("standardize")
            Xtr = pre.fit_transform(X[tr])
            Xte = pre.transform(X[te])
            rows.append(evaluate_embedding("multilabel", Xtr, Y[tr], Xte, Y[te]))
        cache = _read(path)
        cache[name] = rows
        _write(path, cache)
    return cache[name]


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


FIT_ATTRS = ("n_iter_", "relation_scale_", "input_skip_")


def run_variant(variant: str, name: str, seed: int, X, Y, force: bool = False) -> list[dict]:
    path = OUT / f"{variant}_seed{seed}.json"
    cache = _read(path)
    if name in cache and not force:
        return cache[name]
    params = dict(VARIANTS[variant])
    # keys in upper case override the estimator's class attributes (prototype constants)
    consts = {k: params.pop(k) for k in list(params) if k.isupper()}
    Est = type("HRAMLVariant", (HRAML,), consts) if consts else HRAML
    rows = []
    for f, (tr, te) in enumerate(folds(len(X), seed)):
        pre = Preprocessor("standardize")
        Xtr = pre.fit_transform(X[tr])
        Xte = pre.transform(X[te])
        t0 = time.perf_counter()
        model = Est(random_state=f, **params).fit(Xtr, Y[tr])
        fit_s = time.perf_counter() - t0
        Ztr, Zte = model.transform(Xtr), model.transform(Xte)
        m = evaluate_embedding("multilabel", Ztr, Y[tr], Zte, Y[te])
        m["fit_s"] = fit_s
        for a in FIT_ATTRS:
            if hasattr(model, a):
                m[a] = _jsonable(getattr(model, a))
        rows.append(m)
        print(f"  {variant} {name} fold {f}: AP {m['average_precision']:.4f} fit {fit_s:.1f}s", flush=True)
    cache = _read(path)
    cache[name] = rows
    _write(path, cache)
    return rows


def sets_arg(s: str) -> list[str]:
    return {"dev": DEV, "check": CHECK, "all": ALL}.get(s) or s.split(",")


def _se(v) -> float:
    v = np.asarray(v, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def summarise(variant: str, seed: int, sets: list[str]) -> list[dict]:
    raw_all, var_all = _read(OUT / f"raw_seed{seed}.json"), _read(OUT / f"{variant}_seed{seed}.json")
    out = []
    for name in sets:
        if name not in var_all or name not in raw_all:
            continue
        h, r = var_all[name], raw_all[name]
        row = {"set": name}
        for met in MULTILABEL_METRICS:
            hv = np.array([x[met] for x in h])
            rv = np.array([x[met] for x in r])
            d = hv - rv
            sign = 1 if METRIC_DIRECTIONS[met] == "max" else -1
            # verdict: "win" (better), "ok" (worse by < 1 SE of the paired difference), "LOSS"
            good = sign * d.mean()
            se = _se(d)
            verdict = "win" if good > 0 else ("ok" if -good <= se else "LOSS")
            row[met] = dict(h=hv.mean(), h_se=_se(hv), r=rv.mean(), r_se=_se(rv), d=d.mean(), d_se=se, verdict=verdict)
        row["fit_s"] = float(np.mean([x["fit_s"] for x in h]))
        row["n_iter"] = [x.get("n_iter_") for x in h]
        out.append(row)
    return out


def show(variant: str, seed: int, sets: list[str], md: bool = False) -> None:
    rows = summarise(variant, seed, sets)
    short = {"hamming_loss": "HL", "ranking_loss": "RL", "one_error": "OE", "coverage": "Cov"}
    if md:
        print(f"\n**{variant}** (seed {seed})\n")
        print("| set | AP HRAML | AP raw | diff ± SE | HL | RL | OE | Cov | fit s |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"\n== {variant} (seed {seed})")
    total_fit = 0.0
    for row in rows:
        ap = row["average_precision"]
        verd = " ".join(f"{row[m]['verdict']}" for m in short)
        verd_md = " | ".join(
            f"{row[m]['verdict']} ({row[m]['d']:+.4f}±{row[m]['d_se']:.4f})" if row[m]["verdict"] == "LOSS" else row[m]["verdict"]
            for m in short
        )
        total_fit += row["fit_s"] * FOLDS
        ap_v = "WIN" if ap["d"] > 0 else ("lose<1SE" if -ap["d"] <= ap["d_se"] else "LOSE")
        if md:
            print(f"| {row['set']} | {ap['h']:.4f} ± {ap['h_se']:.4f} | {ap['r']:.4f} ± {ap['r_se']:.4f} | "
                  f"{ap['d']:+.4f} ± {ap['d_se']:.4f} | {verd_md} | {row['fit_s']:.1f} |")
        else:
            extra = ""
            if any(n is not None for n in row["n_iter"]):
                extra = f" epochs={row['n_iter']}"
            print(f"{row['set']:15s} AP {ap['h']:.4f}±{ap['h_se']:.4f} raw {ap['r']:.4f}±{ap['r_se']:.4f} "
                  f"d {ap['d']:+.4f}±{ap['d_se']:.4f} {ap_v:8s} [HL RL OE Cov: {verd}] fit {row['fit_s']:.1f}s{extra}")
    if not md:
        print(f"total fit time over {len(rows)} sets x {FOLDS} folds: {total_fit:.0f}s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=["run", "show"])
    p.add_argument("variants", nargs="+")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sets", default="all")
    p.add_argument("--force", action="store_true")
    p.add_argument("--md", action="store_true")
    a = p.parse_args(argv)
    sets = sets_arg(a.sets)
    for v in a.variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    if a.cmd == "run":
        for v in a.variants:
            t0 = time.perf_counter()
            for name in sets:
                X, Y = load(name)
                raw_results(name, a.seed, X, Y)
                run_variant(v, name, a.seed, X, Y, force=a.force)
            print(f"{v}: {time.perf_counter() - t0:.0f}s wall", flush=True)
    for v in a.variants:
        show(v, a.seed, sets, md=a.md)


if __name__ == "__main__":
    main()
