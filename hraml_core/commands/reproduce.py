"""``hraml reproduce``: the paper's experiments over datasets, methods, protocols and splits, with
tables beside the paper's numbers and a verdict per cell."""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from . import CommandError

#: Every Table 1 row at hand (Mpeg7 is not obtainable) and Table 2's emotions and flags.
DEFAULT_DATASETS = "binalpha,caltech101,MnistData_05,news20,TDT2_20,uspst,emotions,flags"
DEFAULT_PROTOCOLS = "project"
DEFAULT_SPLITS = "cv,fixed"


def register(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run the paper's experiments (10-fold CV, Mulan's fixed splits) and print Tables 1-3 beside the "
             "published numbers",
        description=(
            "Evaluate HRAML, the raw-feature evaluator and any baselines on datasets, under this project's "
            "protocol or the authors' (--protocol), by 10-fold cross-validation or on Mulan's fixed train/test "
            "splits of emotions and flags (--split). Model selection and the number of epochs are chosen on "
            "validation parts of the training data, never the test data. Prints tables shaped like the paper's "
            "with its published numbers beside them, and a verdict per cell with the standard error of our "
            "mean. docs/RESULTS.md has the numbers, the rule behind the verdicts and the deviations from the paper."
        ),
    )
    p.add_argument("--datasets", default=DEFAULT_DATASETS, help=f"comma-separated names (default {DEFAULT_DATASETS})")
    p.add_argument("--methods", default="hraml,raw", help="comma-separated: hraml, raw and baseline names (default hraml,raw)")
    p.add_argument("--protocol", default=DEFAULT_PROTOCOLS,
                   help="comma-separated: project (this project's model selection, the default) and/or authors "
                        "(the authors' settings: PCA-100, 100 hidden, SGD on 40-pair batches of neighbour "
                        "partners, 20 epochs, kNN k = 4)")
    p.add_argument("--split", default=DEFAULT_SPLITS,
                   help="comma-separated: cv (k-fold cross-validation) and/or fixed (train on Mulan's train file, "
                        f"test on its test file: emotions and flags only) (default {DEFAULT_SPLITS})")
    p.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    p.add_argument("--max-folds", type=int, default=None, help="run only the first N folds (quick looks)")
    p.add_argument("--pca", type=int, default=100, help="PCA components for candidates that use PCA (default 100; 0 turns PCA off)")
    p.add_argument("--knn-k", type=int, default=4, help="k of the kNN classifier for accuracy (default 4, the authors')")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="largest number of epochs model selection considers (default: the protocol's: project "
                        "200, authors 20)")
    p.add_argument("--workers", type=int, default=1,
                   help="folds run in this many processes, one torch thread each (default 1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the fold split (fold i seeds its models with seed + i; a fixed split with seed)")
    p.add_argument("--data-dir", default=None, help="data directory (default: $HRAML_DATA_DIR or datasets/files)")
    p.add_argument("--out", default=None, help="write results.json, results.csv, verdicts.csv and folds.json into this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _list(text: str, what: str, known) -> list[str]:
    """A comma-separated list of names, each one of ``known``."""
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in items if t not in known]
    if unknown or not items:
        raise CommandError(f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    return items


def _methods(text: str) -> list[str]:
    known = {"hraml", "raw"}
    try:
        from ..baselines import BASELINES

        known |= set(BASELINES)
    except ImportError:  # pragma: no cover - the baselines ship with the package
        pass
    return _list(text, "method(s)", sorted(known))


def _verdict_lines(verdicts: list[dict]) -> list[str]:
    """The verdicts as text: one line per cell, then counts per protocol and for the best of them."""
    from ..paper import PAPER_SPLIT
    from ..protocol import best_of_protocols

    lines = ["Verdicts against the paper's best (gap: ours minus best, positive = better; se = std / sqrt(folds); "
             "within noise: |gap| < se):"]
    for v in verdicts:
        lines.append(
            f"  {v['dataset']} {v['split']} {v['protocol']} {v['metric']}: {v['mean']:.4f} vs {v['paper_best']:.4f} "
            f"({v['paper_best_method']}), gap {v['gap']:+.4f}, se {v['se']:.4f}: {v['verdict']}"
        )
    own = [v for v in verdicts if PAPER_SPLIT.get(v["dataset"]) == v["split"]]
    if own:
        lines.append("On the paper's own split (Table 1: cv; Table 2: fixed):")
        for proto in dict.fromkeys(v["protocol"] for v in own):
            cells = [v for v in own if v["protocol"] == proto]
            met = sum(v["meets"] for v in cells)
            noise = sum(v["verdict"] == "meets, within noise" for v in cells)
            lines.append(f"  protocol {proto}: HRAML meets or beats the paper's best on {met} of {len(cells)} cells"
                         f" ({noise} of them within noise)")
        best = best_of_protocols(own)
        if len({v["protocol"] for v in own}) > 1:
            met = sum(v["meets"] for v in best)
            lines.append(f"  best of the protocols: {met} of {len(best)} cells")
        for v in best:
            if not v["meets"]:
                lines.append(f"  short: {v['dataset']} {v['split']} {v['metric']}: best protocol {v['protocol']} "
                             f"{v['mean']:.4f} vs {v['paper_best']:.4f}, by {-v['gap']:.4f} (se {v['se']:.4f})")
    return lines


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data import load_dataset, load_fixed_split
    from ..data.fixed_splits import has_fixed_split
    from ..protocol import PROTOCOLS, SPLITS, compare_with_paper, cv_jobs, fixed_split_job, format_tables, \
        get_protocol, run_jobs, summarize
    from ..training import torch_threads

    methods = _methods(args.methods)
    protocols = _list(args.protocol, "protocol(s)", list(PROTOCOLS))
    splits = _list(args.split, "split(s)", list(SPLITS))
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if not names:
        raise CommandError("no datasets given")
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    if args.max_folds is not None and args.max_folds < 1:
        raise CommandError(f"--max-folds must be at least 1, got {args.max_folds}")
    extra = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
    try:
        configs = {p: get_protocol(p, folds=args.folds, seed=args.seed, pca_components=args.pca, knn_k=args.knn_k,
                                   **extra) for p in protocols}
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    # Load everything first: a missing file fails the run before any training.
    datasets = {n: load_dataset(n, data_dir=args.data_dir) for n in names} if "cv" in splits else {}
    fixed = {}
    if "fixed" in splits:
        fixed = {n: load_fixed_split(n, data_dir=args.data_dir) for n in names if has_fixed_split(n)}
        skipped = [n for n in names if not has_fixed_split(n)]
        if skipped:
            print(f"--split fixed: no fixed train/test split for {', '.join(skipped)} (skipped; "
                  f"only emotions and flags have one)")
    folds = min(args.folds, args.max_folds or args.folds)
    runs = []  # (dataset name, protocol, split)
    for n in names:
        for proto in protocols:
            for split in splits:
                if (split == "cv" and n in datasets) or (split == "fixed" and n in fixed):
                    runs.append((n, proto, split))
    if not runs:
        raise CommandError("nothing to run: no dataset has the requested split")

    jobs, bars = [], {}
    for i, (name, proto, split) in enumerate(runs, 1):
        try:
            if split == "cv":
                these = cv_jobs(datasets[name], methods, configs[proto], max_folds=folds)
            else:
                these = [fixed_split_job(*fixed[name], methods, configs[proto])]
        except ValueError as exc:  # e.g. more folds than samples
            raise CommandError(f"{name}: {exc}") from None
        jobs += these
        # One bar per run, ticking once per fold and method; in parallel runs they fill side by side.
        bars[(name, split, proto)] = tqdm(
            total=len(these) * len(methods), desc=f"[{i}/{len(runs)}] {name} {split} {proto}",
            disable=args.no_progress, unit="fit", dynamic_ncols=True, leave=True, position=i - 1)
    if args.workers > 1:
        # Workers take jobs in order: the largest training sets first (the project's grid before the
        # authors' single network), so that no worker is left alone with a long fold at the end.
        jobs.sort(key=lambda j: (-len(j.train), j.config.name != "project"))

    def on_result(r):
        bar = bars[(r.dataset, r.split, r.protocol)]
        bar.set_postfix_str(f"fold {r.fold + 1} {r.method} {r.seconds:.0f}s", refresh=False)
        bar.update(1)

    t0 = time.perf_counter()
    with torch_threads(1):
        results = run_jobs(jobs, n_jobs=args.workers, on_result=on_result)
    for bar in bars.values():
        bar.close()
    order = {run: i for i, run in enumerate(runs)}
    results.sort(key=lambda r: (order[(r.dataset, r.protocol, r.split)], r.fold, methods.index(r.method)))
    elapsed = time.perf_counter() - t0
    rows = summarize(results)
    print(format_tables(rows))
    verdicts = compare_with_paper(rows)
    if verdicts:
        print()
        print("\n".join(_verdict_lines(verdicts)))
    chosen: dict[tuple[str, str, str], dict[str, int]] = {}
    for r in results:
        if r.method == "hraml":
            counts = chosen.setdefault((r.dataset, r.split, r.protocol), {})
            counts[r.chosen] = counts.get(r.chosen, 0) + 1
    if chosen:
        print("\nChosen on validation (candidate@epochs: folds):")
        for (name, split, proto), counts in chosen.items():
            print(f"  {name} {split} {proto}: "
                  + ", ".join(f"{c}: {n}" for c, n in sorted(counts.items(), key=lambda cn: -cn[1])))
    print(f"\n{len(results)} fits in {elapsed:.0f} s ({args.workers} worker{'s' if args.workers > 1 else ''})")
    if args.out:
        _write(Path(args.out), rows, verdicts, results)
    return 0


def _write(out: Path, rows, verdicts, results) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = ("dataset", "method", "metric", "mean", "std", "split", "protocol")
    (out / "results.json").write_text(json.dumps([{k: r[k] for k in keys} for r in rows], indent=2) + "\n")
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*keys, "n_folds", "seconds", "paper"])
        w.writeheader()
        w.writerows(rows)
    with open(out / "verdicts.csv", "w", newline="") as f:
        fields = [*keys, "n_folds", "se", "paper_best", "paper_best_method", "gap", "verdict"]
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(verdicts)
    (out / "folds.json").write_text(json.dumps([r.__dict__ for r in results], indent=2) + "\n")
    print(f"wrote results.json, results.csv, verdicts.csv and folds.json in {out}")
