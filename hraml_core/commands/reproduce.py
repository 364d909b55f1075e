"""``hraml reproduce``: the paper's protocol over datasets and methods, tables beside the paper's."""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from . import CommandError

DEFAULT_DATASETS = "binalpha,uspst,news20,emotions,flags"


def register(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run the paper's cross-validation protocol and print Tables 1-3 beside the published numbers",
        description=(
            "Cross-validate HRAML, the raw-feature evaluator and any baselines on datasets, with model "
            "selection and the number of epochs chosen on validation parts of the training folds (never "
            "the test fold), and print tables shaped like the paper's with its published numbers beside "
            "them. docs/RESULTS.md has the numbers and how the protocol's settings were chosen."
        ),
    )
    p.add_argument("--datasets", default=DEFAULT_DATASETS, help=f"comma-separated names (default {DEFAULT_DATASETS})")
    p.add_argument("--methods", default="hraml,raw", help="comma-separated: hraml, raw and baseline names (default hraml,raw)")
    p.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    p.add_argument("--max-folds", type=int, default=None, help="run only the first N folds (quick looks)")
    p.add_argument("--pca", type=int, default=100, help="PCA components for candidates that use PCA (default 100; 0 turns PCA off)")
    p.add_argument("--knn-k", type=int, default=4, help="k of the kNN classifier for accuracy (default 4, the authors')")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="largest number of epochs model selection considers (default: the protocol's, 200)")
    p.add_argument("--workers", type=int, default=1,
                   help="folds run in this many processes, one torch thread each (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold split (fold i seeds its models with seed + i)")
    p.add_argument("--data-dir", default=None, help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    p.add_argument("--out", default=None, help="write results.json and results.csv into this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _methods(text: str) -> list[str]:

    methods = [m.strip() for m in text.split(",") if m.strip()]
    known = {"hraml", "raw"}
    try:
        from ..baselines import BASELINES

        known |= set(BASELINES)
    except ImportError:  # pragma: no cover - the baselines ship with the package
        pass
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise CommandError(f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(sorted(known))}")
    return methods


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data import load_dataset
    from ..protocol import ProtocolConfig, compare_with_paper, cross_validate, format_tables, summarize
    from ..training import torch_threads

    methods = _methods(args.methods)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if not names:
        raise CommandError("no datasets given")
    datasets = [load_dataset(n, data_dir=args.data_dir) for n in names]  # fail fast on a missing one
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    extra = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
    try:
        config = ProtocolConfig(folds=args.folds, seed=args.seed, pca_components=args.pca, knn_k=args.knn_k, **extra)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    folds = min(args.folds, args.max_folds or args.folds)
    bar = tqdm(total=len(datasets) * folds * len(methods), disable=args.no_progress, unit="fit", dynamic_ncols=True)
    results = []
    t0 = time.perf_counter()
    with torch_threads(1):
        for ds in datasets:
            def on_result(r, ds=ds):
                bar.set_description(f"{ds.name} fold {r.fold + 1}/{folds} {r.method}")
                bar.update(1)

            results += cross_validate(ds, methods, config, on_result=on_result, max_folds=folds, n_jobs=args.workers)
    bar.close()
    elapsed = time.perf_counter() - t0
    rows = summarize(results)
    print(format_tables(rows))
    verdicts = compare_with_paper(rows)
    if verdicts:
        met = sum(v["meets"] for v in verdicts)
        print(f"\nHRAML meets or beats the paper's best on {met} of {len(verdicts)} (dataset, metric) cells.")
        for v in verdicts:
            if not v["meets"]:
                print(f"  short: {v['dataset']} {v['metric']}: {v['mean']:.4f} vs {v['paper_best']:.4f} "
                      f"({v['paper_best_method']}), gap {abs(v['gap']):.4f}")
    chosen: dict[str, dict[str, int]] = {}
    for r in results:
        if r.method == "hraml":
            counts = chosen.setdefault(r.dataset, {})
            counts[r.chosen] = counts.get(r.chosen, 0) + 1
    if chosen:
        print("\nChosen on validation (candidate@epochs: folds):")
        for name, counts in chosen.items():
            print(f"  {name}: " + ", ".join(f"{c}: {n}" for c, n in sorted(counts.items(), key=lambda cn: -cn[1])))
    print(f"\n{len(results)} fits in {elapsed:.0f} s ({args.workers} worker{'s' if args.workers > 1 else ''})")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        records = [{k: r[k] for k in ("dataset", "method", "metric", "mean", "std")} for r in rows]
        (out / "results.json").write_text(json.dumps(records, indent=2) + "\n")
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["dataset", "method", "metric", "mean", "std", "n_folds", "seconds", "paper"])
            w.writeheader()
            w.writerows(rows)
        folds_path = out / "folds.json"
        folds_path.write_text(json.dumps([r.__dict__ for r in results], indent=2) + "\n")
        print(f"wrote {out / 'results.json'}, {out / 'results.csv'} and {folds_path}")
    return 0
