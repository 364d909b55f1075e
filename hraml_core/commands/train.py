"""``hraml train`` and ``hraml evaluate``: fit HRAML on one dataset, report the task's metrics, save.

A trained model is a run directory (docs/RUNS.md): ``model.safetensors`` (the encoder, see
HRAML.save), ``preprocess.safetensors`` (the fitted preprocessing), ``split.json`` (the rows trained
on and held out) and ``run.json`` (dataset, settings, status, the held-out metrics under
``results``), plus the training's scalars and snapshots. ``hraml evaluate`` also reads the model
folders of earlier versions (one flat run.json with the split and the metrics).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..data.formats import FORMATS
from . import CommandError


def add_file_arguments(p: argparse.ArgumentParser, of_model: bool = False) -> None:
    """``--format``, ``--label-columns``, ``--ignore-columns``: how a data file is read (``train``,
    ``evaluate``, the torchrun entry point; :func:`load_data` takes them)."""
    own = " (default: the model's own)" if of_model else ""
    p.add_argument("--format", default=None, choices=FORMATS,
                   help="the data file's format where its extension does not say it (a CSV named .txt, say)" + own)
    p.add_argument("--label-columns", default=None, help="CSV/Parquet: label column names or indices, comma-separated")
    p.add_argument("--ignore-columns", default=None,
                   help="CSV/Parquet: columns that are neither features nor labels (an identifier, a text note), "
                        "names or indices, comma-separated" + own)


def _add_data_args(p: argparse.ArgumentParser, of_model: bool = False) -> None:
    """The data options of ``train``; ``of_model``: those of ``evaluate``, whose defaults are the
    model's own (its dataset, its split, its evaluator's k)."""
    own = "default: the model's own"
    p.add_argument("--dataset", default=None if of_model else "digits",
                   help=f"a dataset name or a data file ({own + ' dataset' if of_model else 'default digits'})")
    p.add_argument("--data-dir", default=None, help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    add_file_arguments(p, of_model)
    p.add_argument("--test-size", type=float, default=None if of_model else 0.3,
                   help=f"held-out fraction ({own + ' held-out rows' if of_model else 'default 0.3'})")
    p.add_argument("--seed", type=int, default=None if of_model else 0,
                   help=f"seed of the split ({own + ' split' if of_model else 'and of training; default 0'})")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars on stderr (reading a large data file" + (", the evaluation)" if of_model else ")"))
    p.add_argument("--knn-k", type=int, default=None,
                   help=f"k of the evaluator ({own if of_model else 'default'}: 1 for kNN, 10 MLkNN, 4 AA-kNN, "
                        "at most what the training rows allow)")


def register(sub) -> None:
    from .. import params
    from ..preprocessing import KINDS

    t = sub.add_parser("train", help="fit HRAML on a dataset, report held-out metrics, save the model")
    _add_data_args(t)
    t.add_argument("--preprocessing", choices=KINDS, default="standardize",
                   help="fitted on the training split (default standardize). Sparse features (text) stay sparse "
                        "with none, are reduced by TruncatedSVD with pca, made dense by standardize")
    t.add_argument("--pca", type=int, default=100, help="PCA components when preprocessing uses PCA (default 100)")
    t.add_argument("--out", default=None,
                   help="run directory to write: model, scalars, snapshots (default <runs>/<dataset>, <runs> being "
                        "$HRAML_RUNS_DIR or ./runs: where `hraml runs` and the dashboard look)")
    params.add_arguments(t)  # every hyperparameter, from its one declaration
    t.set_defaults(func=run_train)

    e = sub.add_parser("evaluate", help="evaluate a saved model on its dataset's held-out split (or another dataset)")
    e.add_argument("model", help="a folder written by `hraml train`")
    _add_data_args(e, of_model=True)
    e.add_argument("--threads", type=int, default=None, help="threads of the neighbour search (default: all CPUs)")
    e.set_defaults(func=run_evaluate)


def _columns(text):
    """``--label-columns`` / ``--ignore-columns``: names, or indices, separated by commas."""
    if text is None:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    return [int(c) if c.lstrip("-").isdigit() else c for c in cols]


def data_file_path(name: str) -> str | None:
    """The absolute path of ``name`` when it is a data file (what a run records, so that `hraml
    evaluate` finds the file from any folder), else None (a registry name)."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_file() else None


def load_data(name: str, data_dir, label_columns, ignore_columns=None, format=None, progress: bool = False):
    """The dataset a command names: a file (``progress``: a bar on stderr while a large one is
    read, for the formats read in blocks) or a registry name."""
    from ..data import load_dataset, load_file
    from ..data.formats import detect_format
    from ..data.loaders import FORMAT_OPTIONS
    from ..data.tabular import STREAM_MIN_BYTES

    cols, ignored = _columns(label_columns), _columns(ignore_columns)
    path = Path(name)
    is_file = path.is_file()
    if cols is not None or ignored is not None or format is not None or is_file:
        try:
            large = is_file and path.stat().st_size >= STREAM_MIN_BYTES
            bar = progress and large and "progress" in FORMAT_OPTIONS[format or detect_format(path)]
        except (OSError, ValueError, KeyError):  # load_file says what is wrong with the file
            bar = False
        more = {"progress": True} if bar else {}
        return load_file(name, format=format, label_columns=cols, ignore_columns=ignored, **more)
    return load_dataset(name, data_dir=data_dir)


def split_rows(ds, test_size: float, seed: int):
    """The training and held-out rows of ``ds`` (stratified for classes where possible)."""
    from ..splits import holdout_split

    if not 0 < test_size < 1:
        raise CommandError(f"--test-size must lie between 0 and 1, got {test_size}")
    part = holdout_split(ds.Y, ds.task, seed, test_size=test_size)
    return part.train.tolist(), part.test.tolist()


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


def _default_out(name: str) -> Path:
    """``<runs>/<name>``, shown relative to the working directory when it lies below it."""
    from ..runs.root import runs_root

    out = runs_root() / name
    try:
        return out.relative_to(Path.cwd().resolve())
    except ValueError:
        return out


def run_train(args: argparse.Namespace) -> int:
    from .. import HRAML, params
    from ..data.advice import dataset_warnings
    from ..evaluate import PRIMARY_METRIC
    from ..preprocessing import Preprocessor
    from ..runs.format import CREATED, FAILED, RUN_FILE
    from ..runs.writer import RunWriter, prepare_run
    from ..training import usable_device

    ds = load_data(args.dataset, args.data_dir, args.label_columns, args.ignore_columns, args.format,
               progress=not args.no_progress)
    for warning in dataset_warnings(ds):
        print(f"hraml train: warning: {ds.name}: {warning}", file=sys.stderr)
    train, test = split_rows(ds, args.test_size, args.seed)
    pre = Preprocessor(args.preprocessing, args.pca, random_state=args.seed)
    X_train, X_test = pre.fit_transform(ds.X[train]), pre.transform(ds.X[test])
    Y_train, Y_test = ds.Y[train], ds.Y[test]
    out = Path(args.out) if args.out else _default_out(ds.name)
    try:
        model = HRAML(**params.values_from_args(args), task=ds.task, random_state=args.seed, log_dir=out)
        usable_device(model.train_config().device)  # bad settings fail here, before the run directory is touched
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:  # so does an evaluator that cannot run (k too large for the data)
        raw = _metrics(ds.task, X_train, Y_train, X_test, Y_test, args.knn_k)
    except ValueError as exc:
        raise CommandError(f"{exc} (the evaluator's k: --knn-k)") from None
    try:
        prepare_run(
            out, source="hraml train",
            dataset={"name": args.dataset, "path": data_file_path(args.dataset), "data_dir": args.data_dir,
                     "format": args.format,
                     "label_columns": args.label_columns, "ignore_columns": args.ignore_columns,
                     "n_samples": ds.n_samples, "preprocessing": args.preprocessing, "pca": args.pca},
            split={"test_size": args.test_size, "seed": args.seed,
                   "train_rows": [int(i) for i in train], "test_rows": [int(i) for i in test]},
        )
        print(f"{ds.summary()}; training on {len(train)}, evaluating on {len(test)}")
        model.fit(X_train, Y_train)
    except ValueError as exc:
        if (out / RUN_FILE).is_file():  # refused before training began: the run says so, not "created"
            with RunWriter.reopen(out) as run:
                if run.status == CREATED:
                    run.finish(FAILED, str(exc))
        raise CommandError(str(exc)) from None
    learned = _metrics(ds.task, model.transform(X_train), Y_train, model.transform(X_test), Y_test, args.knn_k)
    print(f"{model.n_iter_} epochs, {model.n_steps_} steps, {model.n_pairs_seen_:,} pairs; final loss {model.loss_curve_[-1]:.5f}")
    _print_metrics(ds.task, learned, raw)

    metric = PRIMARY_METRIC[ds.task]
    with RunWriter.reopen(out) as run:
        run.log(model.n_steps_, epoch=float(model.n_iter_), **{metric: learned[metric]})  # the held-out metric
        run.update(raw_metric=raw[metric], results={"metrics": learned, "raw_metrics": raw, "knn_k": args.knn_k})
        run.save_model(model, pre)
    print(f"saved to {out}/")
    return 0


def model_folder_info(folder: Path) -> dict:
    """What ``hraml evaluate`` needs of a model folder, flat: dataset, path, data_dir, format, label_columns,
    ignore_columns, test_size, seed, knn_k and (where known) train_rows / test_rows. Reads a run directory
    (run.json + split.json) or the single run.json that earlier versions wrote."""
    from ..runs.format import FORMAT, RUN_FILE, SPLIT_FILE

    info = json.loads((folder / RUN_FILE).read_text())
    if info.get("format") != FORMAT:
        return info  # an earlier version's flat run.json
    dataset = info.get("dataset") or {}
    out = {"dataset": dataset["name"], "path": dataset.get("path"), "data_dir": dataset.get("data_dir"),
           "format": dataset.get("format"),
           "label_columns": dataset.get("label_columns"),
           "ignore_columns": dataset.get("ignore_columns"), "knn_k": (info.get("results") or {}).get("knn_k")}
    try:
        split = json.loads((folder / SPLIT_FILE).read_text())
    except FileNotFoundError:
        raise ValueError(f"{SPLIT_FILE} is missing") from None
    out.update({k: split[k] for k in ("test_size", "seed", "train_rows", "test_rows") if k in split})
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    from .. import HRAML
    from ..preprocessing import Preprocessor

    folder = Path(args.model)
    try:
        run = model_folder_info(folder)
        model = HRAML.load(folder / "model.safetensors")
        pre = Preprocessor.load(folder / "preprocess.safetensors")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"{folder}: not a model folder written by `hraml train` ({exc})") from None
    dataset = args.dataset or run.get("path") or run["dataset"]
    if args.dataset is None and run.get("path") and not Path(run["path"]).is_file():
        raise CommandError(f"{run['path']}: the data file the model was trained on is not there any more; pass "
                           "--dataset FILE where it is now (the run's label and ignored columns still apply; add "
                           "--format if the file's name has no known extension)")
    data_dir = args.data_dir if args.data_dir is not None else run.get("data_dir")
    labels = args.label_columns if args.label_columns is not None else run.get("label_columns")
    ignored = args.ignore_columns if args.ignore_columns is not None else run.get("ignore_columns")
    fmt = args.format if args.format is not None or args.dataset is not None else run.get("format")
    ds = load_data(dataset, data_dir, labels, ignored, fmt, progress=not args.no_progress)
    if ds.task != model.task_:
        raise CommandError(f"the model was trained for {model.task_}, {ds.name} is a {ds.task} dataset")
    test_size = args.test_size if args.test_size is not None else run["test_size"]
    seed = args.seed if args.seed is not None else run["seed"]
    k = args.knn_k if args.knn_k is not None else run.get("knn_k")
    same_split = args.dataset is None and args.test_size is None and args.seed is None
    if same_split and "test_rows" in run:  # the exact rows the model was trained and held out on
        train, test = run["train_rows"], run["test_rows"]
        if not test:
            raise CommandError(f"{folder}: the model was trained on every row of {ds.name}; "
                               "pass --test-size (and --seed) to evaluate it on a split anyway")
    else:
        train, test = split_rows(ds, test_size, seed)
    try:
        X_train, X_test = pre.transform(ds.X[train]), pre.transform(ds.X[test])
    except ValueError as exc:
        raise CommandError(f"{ds.name} does not fit the model {folder} (trained on {run['dataset']}): {exc}") from None
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
