"""``hraml train`` and ``hraml evaluate``: fit HRAML on one dataset, report the task's metrics, save.

A trained model is a folder: ``model.safetensors`` (the encoder, see HRAML.save),
``preprocess.safetensors`` (the fitted preprocessing) and ``run.json`` (dataset, split and metrics).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from . import CommandError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="a dataset name or a data file (default digits)")
    p.add_argument("--data-dir", default=None, help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    p.add_argument("--label-columns", default=None, help="CSV/Parquet: label column names or indices, comma-separated")
    p.add_argument("--test-size", type=float, default=0.3, help="held-out fraction (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training (default 0)")
    p.add_argument("--knn-k", type=int, default=None, help="k of the evaluator (default: 1 for kNN, 10 MLkNN, 4 AA-kNN)")


def register(sub) -> None:
    from .. import params
    from ..preprocessing import KINDS

    t = sub.add_parser("train", help="fit HRAML on a dataset, report held-out metrics, save the model")
    _add_data_args(t)
    t.add_argument("--preprocessing", choices=KINDS, default="standardize", help="fitted on the training split (default standardize)")
    t.add_argument("--pca", type=int, default=100, help="PCA components when preprocessing uses PCA (default 100)")
    t.add_argument("--out", default=None, help="folder to save the model in (default runs/<dataset>)")
    params.add_arguments(t)  # every hyperparameter, from its one declaration
    t.set_defaults(func=run_train)

    e = sub.add_parser("evaluate", help="evaluate a saved model on its dataset's held-out split (or another dataset)")
    e.add_argument("model", help="a folder written by `hraml train`")
    _add_data_args(e)
    e.add_argument("--no-progress", action="store_true", help="no progress bars (on stderr by default)")
    e.add_argument("--threads", type=int, default=None, help="threads of the neighbour search (default: all CPUs)")
    e.set_defaults(func=run_evaluate, dataset=None, test_size=None, seed=None)


def _label_columns(text):
    if text is None:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    return [int(c) if c.lstrip("-").isdigit() else c for c in cols]


def _load(name: str, data_dir, label_columns):
    from ..data import load_dataset, load_file

    cols = _label_columns(label_columns)
    if cols is not None or Path(name).is_file():
        return load_file(name, label_columns=cols)
    return load_dataset(name, data_dir=data_dir)


def _split(ds, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    from ..tasks import CLASSIFICATION, can_stratify

    if not 0 < test_size < 1:
        raise CommandError(f"--test-size must lie between 0 and 1, got {test_size}")
    stratify = ds.Y if ds.task == CLASSIFICATION and can_stratify(ds.Y, test_size) else None
    idx = list(range(ds.n_samples))
    return train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)


def _metrics(task, Z_train, Y_train, Z_test, Y_test, k):
    from ..evaluate import evaluate_embedding

    return evaluate_embedding(task, Z_train, Y_train, Z_test, Y_test, k=k)


def _full(task, embed, X_train, Y_train, X_test, Y_test, what: str, *, k, threads: int, progress_bar: bool) -> dict:
    """hraml_core.heldout.full_evaluation with a tqdm bar on stderr (rows embedded, then searched)."""
    from tqdm import tqdm

    from ..heldout import full_evaluation

    with tqdm(desc=f"evaluating {what}", unit="rows", disable=not progress_bar, mininterval=0.5, leave=False) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        return full_evaluation(task, embed, X_train, Y_train, X_test, Y_test, k=k, progress=progress, threads=threads)


def _print_metrics(task: str, learned: dict, raw: dict) -> None:
    from ..evaluate import METRIC_DIRECTIONS

    print(f"{'metric':<22}{'HRAML':>10}{'raw':>10}")
    for name, value in learned.items():
        arrow = "up" if METRIC_DIRECTIONS[name] == "max" else "down"
        print(f"{name + ' (' + arrow + ')':<22}{value:>10.4f}{raw[name]:>10.4f}")


def run_train(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import HRAML, params
    from ..preprocessing import Preprocessor

    ds = _load(args.dataset, args.data_dir, args.label_columns)
    train, test = _split(ds, args.test_size, args.seed)
    pre = Preprocessor(args.preprocessing, args.pca, random_state=args.seed)
    X_train, X_test = pre.fit_transform(ds.X[train]), pre.transform(ds.X[test])
    Y_train, Y_test = ds.Y[train], ds.Y[test]
    try:
        model = HRAML(**params.values_from_args(args), task=ds.task, random_state=args.seed)
        print(f"{ds.name}: {ds.summary()}; training on {len(train)}, evaluating on {len(test)}")
        model.fit(X_train, Y_train)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    learned = _metrics(ds.task, model.transform(X_train), Y_train, model.transform(X_test), Y_test, args.knn_k)
    raw = _metrics(ds.task, X_train, Y_train, X_test, Y_test, args.knn_k)
    print(f"{model.n_iter_} epochs, {model.n_steps_} steps, {model.n_pairs_seen_:,} pairs; final loss {model.loss_curve_[-1]:.5f}")
    _print_metrics(ds.task, learned, raw)

    out = Path(args.out or Path("runs") / ds.name)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.safetensors")
    pre.save(out / "preprocess.safetensors")
    run = {
        "dataset": args.dataset, "data_dir": args.data_dir, "label_columns": args.label_columns,
        "task": ds.task, "test_size": args.test_size, "seed": args.seed, "knn_k": args.knn_k,
        "train_rows": [int(i) for i in train], "test_rows": [int(i) for i in test],
        "metrics": learned, "raw_metrics": raw, "loss_curve": [float(v) for v in np.asarray(model.loss_curve_)],
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print(f"saved to {out}/")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .. import HRAML
    from ..preprocessing import Preprocessor

    folder = Path(args.model)
    try:
        run = json.loads((folder / "run.json").read_text())
        model = HRAML.load(folder / "model.safetensors")
        pre = Preprocessor.load(folder / "preprocess.safetensors")
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(f"{folder}: not a model folder written by `hraml train` ({exc})") from None
    dataset = args.dataset or run["dataset"]
    data_dir = args.data_dir if args.data_dir is not None else run.get("data_dir")
    labels = args.label_columns if args.label_columns is not None else run.get("label_columns")
    ds = _load(dataset, data_dir, labels)
    if ds.task != model.task_:
        raise CommandError(f"the model was trained for {model.task_}, {ds.name} is a {ds.task} dataset")
    test_size = args.test_size if args.test_size is not None else run["test_size"]
    seed = args.seed if args.seed is not None else run["seed"]
    k = args.knn_k if args.knn_k is not None else run.get("knn_k")
    same_split = args.dataset is None and args.test_size is None and args.seed is None
    if same_split and "test_rows" in run:  # the exact rows the model was trained and held out on
        train, test = run["train_rows"], run["test_rows"]
    else:
        train, test = _split(ds, test_size, seed)
    try:
        X_train, X_test = pre.transform(ds.X[train]), pre.transform(ds.X[test])
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads must be positive, got {args.threads}")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    # Exact: every held-out row against every training row, in chunks, with a progress bar each.
    evaluate = dict(k=k, threads=threads, progress_bar=not args.no_progress)
    learned = _full(ds.task, model.transform, X_train, ds.Y[train], X_test, ds.Y[test], "HRAML", **evaluate)
    raw = _full(ds.task, None, X_train, ds.Y[train], X_test, ds.Y[test], "raw features", **evaluate)
    print(f"{ds.name}: evaluating {folder} on {len(test)} held-out samples"
          + (" (its own held-out rows)" if same_split and "test_rows" in run else f" (split seed {seed})"))
    _print_metrics(ds.task, learned, raw)
    return 0
