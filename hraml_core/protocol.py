"""The paper's evaluation protocol: k-fold cross-validation, model selection inside the training
folds, and the task's nearest-neighbour evaluation on the test fold.

Per fold (../shared/reference/PROTOCOL.md, from the authors' code):

1. Split: stratified k-fold for classes, shuffled k-fold otherwise (10 folds by default).
2. Preprocessing fitted on the training fold only (optional PCA to 100 dimensions; standardisation).
3. HRAML: every candidate (a preprocessing and a set of HRAML parameters) is trained on the fit
   part of one or more validation splits carved from the training fold, and its validation
   metric is read at fixed epoch counts (``ProtocolConfig.checkpoints``; the default
   ``selection="curve"``), or with HRAML's early stopping (``selection="early_stopping"``). The
   best (candidate, epoch count) wins and is retrained on the whole training fold for that many
   epochs. The test fold is never seen before step 4.
4. Evaluation on the test fold: kNN accuracy (k = 4, the authors' ``pairsize``), MLkNN's five
   metrics, or AA-kNN's six measures, on the embedding (or on the preprocessed features for
   ``raw``, or on a baseline's transform).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from .evaluate import LDL_METRICS, METRIC_DIRECTIONS, MULTILABEL_METRICS, PRIMARY_METRIC, evaluate_embedding
from .paper import PAPER_RESULTS, paper_best, paper_value
from .preprocessing import Preprocessor
from .tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL, can_stratify

TASK_METRICS = {
    CLASSIFICATION: ("accuracy",),
    MULTILABEL: MULTILABEL_METRICS,
    DISTRIBUTION: LDL_METRICS,
}


@dataclass(frozen=True)
class Candidate:
    """One point of the model-selection grid."""

    preprocessing: str
    params: dict = field(default_factory=dict)

    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return self.preprocessing + (f"[{extra}]" if extra else "")


#: The grid searched per fold when none is given. Chosen once for the whole protocol from
#: exploration runs on another fold split (seed 1, bench/explore_protocol.py); docs/RESULTS.md has
#: the numbers. Per fold, the candidate and its number of epochs are picked on validation parts of
#: the training fold only.
#: - classes: PCA-100 (the authors' "PCA100") with the default network, and a deeper (512, 256)
#:   network that is better on binalpha; PCA + standardisation lost everywhere (whitening noise).
#: - label sets: standardised features (Mulan's features have very different scales) with the
#:   all-pairs batch loss, and the same loss on 4 random partners per anchor ("hard" sampler with
#:   sampling_power 0), better on emotions on two exploration splits.
DEFAULT_CANDIDATES: dict[str, tuple[Candidate, ...]] = {
    CLASSIFICATION: (
        Candidate("pca"),
        Candidate("pca", {"hidden": (512, 256)}),
    ),
    MULTILABEL: (
        Candidate("standardize"),
        Candidate("standardize", {"sampler": "hard", "sampling_power": 0.0}),
    ),
    DISTRIBUTION: (
        Candidate("standardize"),
        Candidate("pca"),
    ),
}


SELECTIONS = ("curve", "early_stopping")


@dataclass(frozen=True)
class ProtocolConfig:
    """Settings of the protocol (docs/RESULTS.md says how the defaults were chosen).

    Model selection (``selection``) happens on validation parts carved from the training fold:

    - ``"curve"``: each candidate trains for ``max_epochs`` on the fit part of each of
      ``validation_repeats`` stratified splits (0: enough splits for about
      ``validation_rows`` validation rows, at most 5); the validation metric is read at the epoch
      counts ``checkpoints`` and averaged over the splits, then each point with ``smoothing``
      checkpoints on either side (a noisy validation part otherwise picks lucky spikes, often
      very early epochs); the best (candidate, epoch count) of the smoothed curves wins.
    - ``"early_stopping"``: each candidate trains with HRAML's early stopping
      (``n_iter_no_change`` epochs of patience, one split) and the best validation score wins.

    With ``refit`` the winner is retrained on the whole training fold for the chosen number of
    epochs; otherwise the weights trained on the fit part are used.
    """

    folds: int = 10
    seed: int = 0
    pca_components: int = 100
    knn_k: int = 4
    validation_fraction: float = 0.1
    validation_repeats: int = 0
    validation_rows: int = 250
    max_epochs: int = 200
    checkpoints: tuple[int, ...] = (5, 10, 20, 30, 50, 75, 100, 150, 200)
    smoothing: int = 1
    selection: str = "curve"
    n_iter_no_change: int = 15
    candidates: tuple[Candidate, ...] | None = None  # None: DEFAULT_CANDIDATES[task]
    hraml_params: dict = field(default_factory=dict)  # applied to every candidate
    baseline_preprocessing: str | None = None  # None: the first candidate's
    refit: bool = True  # retrain the chosen candidate on the whole training fold

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if self.pca_components < 0:
            raise ValueError(f"pca_components must be >= 0 (0: no PCA), got {self.pca_components}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k must be positive, got {self.knn_k}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction}")
        if self.validation_repeats < 0:
            raise ValueError(f"validation_repeats must be >= 0, got {self.validation_repeats}")
        if self.max_epochs < 1 or any(c < 1 for c in self.checkpoints):
            raise ValueError(f"max_epochs and checkpoints must be positive, got {self.max_epochs}, {self.checkpoints}")
        if self.smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {self.smoothing}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")

    def candidates_for(self, task: str) -> tuple[Candidate, ...]:
        return self.candidates or DEFAULT_CANDIDATES[task]

    def preprocessing_for_baselines(self, task: str) -> str:
        return self.baseline_preprocessing or self.candidates_for(task)[0].preprocessing

    def preprocessor(self, kind: str, seed: int) -> Preprocessor:
        """The preprocessing ``kind`` of a candidate; ``pca_components=0`` turns its PCA step off."""
        if not self.pca_components:
            kind = {"pca": "none", "pca+standardize": "standardize"}.get(kind, kind)
        return Preprocessor(kind, self.pca_components or 1, random_state=seed)

    def repeats_for(self, n_train: int) -> int:
        """Validation splits per candidate: ``validation_repeats``, or (0) enough for about
        ``validation_rows`` validation rows in all, at most 5."""
        if self.validation_repeats:
            return self.validation_repeats
        n_val = max(1, round(n_train * self.validation_fraction))
        return int(min(5, max(1, -(-self.validation_rows // n_val))))

    def epoch_checkpoints(self) -> list[int]:
        """Epoch counts at which ``"curve"`` selection reads the validation metric (up to ``max_epochs``)."""
        return sorted({c for c in self.checkpoints if c <= self.max_epochs} | {self.max_epochs})


@dataclass(frozen=True)
class FoldResult:
    dataset: str
    method: str
    fold: int
    metrics: dict[str, float]
    seconds: float
    chosen: str = ""  # the selected candidate (hraml)


def fold_splits(task: str, Y, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    n = len(Y)
    if folds > n:
        raise ValueError(f"{folds} folds need at least {folds} samples, got {n}")
    if task == CLASSIFICATION:
        _, counts = np.unique(Y, return_counts=True)
        if counts.min() >= folds:
            return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(n), Y))
        warnings.warn(
            f"a class has only {counts.min()} samples, fewer than {folds} folds: using unstratified folds",
            stacklevel=2,
        )
    return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n)))


def _evaluate(task, Z_train, Y_train, Z_test, Y_test, config: ProtocolConfig) -> dict[str, float]:
    k = config.knn_k if task == CLASSIFICATION else None
    return evaluate_embedding(task, Z_train, Y_train, Z_test, Y_test, k=k)


def _validation_split(task, n: int, Y, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) of a training fold: stratified for classes where possible."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    stratify = Y if task == CLASSIFICATION and can_stratify(Y, fraction) else None
    fit, val = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(val)


def validation_curve(task, Z, Y, params: dict, config: ProtocolConfig, seed: int):
    """Mean validation metric at ``config.epoch_checkpoints()`` over the candidate's validation splits.

    Only rows of ``Z`` / ``Y`` (the training fold) are used. Returns (checkpoints, mean scores,
    the weights at each checkpoint of the first split's run, that run).
    """
    from .estimator import HRAML
    from .tasks import encode_targets
    from .training import TrainingRun

    points = config.epoch_checkpoints()
    metric = PRIMARY_METRIC[task]
    k = config.knn_k if task == CLASSIFICATION else None
    curves, states, first_run = [], [], None
    for r in range(config.repeats_for(len(Z))):
        fit, val = _validation_split(task, len(Z), Y, config.validation_fraction, seed + 7919 * r)
        targets = encode_targets(Y[fit], task)
        model = HRAML(**params)
        run = TrainingRun(Z[fit], targets.Y, targets.task, model.train_config(seed))
        steps, curve = run.sampler.steps_per_epoch, []
        for epoch in range(1, config.max_epochs + 1):
            for _ in range(steps):
                run.step()
            run.flush()
            if epoch in points:
                scores = evaluate_embedding(task, run.embed(Z[fit]), Y[fit], run.embed(Z[val]), Y[val], k=k)
                curve.append(scores[metric])
                if r == 0 and not config.refit:
                    states.append(run.state_dict())
        curves.append(curve)
        if r == 0:
            first_run = run
    return points, np.mean(curves, axis=0), states, first_run


def smooth_curve(curve, half_width: int) -> np.ndarray:
    """Each point replaced by the mean of itself and ``half_width`` neighbours on either side
    (fewer at the ends)."""
    curve = np.asarray(curve, dtype=float)
    w = int(half_width)
    return np.array([curve[max(0, i - w): i + w + 1].mean() for i in range(len(curve))])


def fit_hraml(task, X_train, Y_train, config: ProtocolConfig, seed: int):
    """Model selection on the training fold; returns (preprocessor, model, chosen candidate, scores).

    ``X_train`` / ``Y_train`` are the training fold only: the validation parts that pick the
    candidate and its number of epochs are carved from them (the test fold is never seen here).
    ``scores`` maps each candidate's label to (its best validation score, the epoch count that
    reached it); for ``"curve"`` selection the score is that of the smoothed curve.
    """
    from .estimator import HRAML

    sign = 1 if METRIC_DIRECTIONS[PRIMARY_METRIC[task]] == "max" else -1
    best = None
    scores = {}
    fitted_pre: dict[str, tuple[Preprocessor, np.ndarray]] = {}
    for cand in config.candidates_for(task):
        if cand.preprocessing not in fitted_pre:
            pre = config.preprocessor(cand.preprocessing, seed)
            fitted_pre[cand.preprocessing] = (pre, pre.fit_transform(X_train))
        pre, Z = fitted_pre[cand.preprocessing]
        params = {"task": task, "random_state": seed, **config.hraml_params, **cand.params}
        if config.selection == "curve":
            points, curve, states, run = validation_curve(task, Z, Y_train, params, config, seed)
            curve = smooth_curve(curve, config.smoothing)
            i = int(np.argmax(sign * curve))  # the earliest of tied checkpoints
            score, epochs, model = float(curve[i]), points[i], None
            if not config.refit:
                run.load_state_dict(states[i])
                model = HRAML.from_training_run(run, classes=np.unique(Y_train) if task == CLASSIFICATION else None)
            scores[cand.label()] = (score, epochs)
        else:
            model = HRAML(**{
                "max_epochs": config.max_epochs,
                "early_stopping": True,
                "validation_fraction": config.validation_fraction,
                "n_iter_no_change": config.n_iter_no_change,
                **params,
            }).fit(Z, Y_train)
            score = model.best_validation_score_
            epochs = int(np.argmax(np.asarray(model.validation_scores_) * sign)) + 1
            scores[cand.label()] = (score, epochs)
        if best is None or sign * score > sign * best[3]:
            best = (pre, model, cand, score, Z, params, epochs)
    pre, model, cand, score, Z, params, epochs = best
    if config.refit:
        # The validation part cost the model part of its training data: retrain on all of the
        # training fold for the number of epochs that validation picked.
        model = HRAML(**{**params, "early_stopping": False, "max_epochs": epochs}).fit(Z, Y_train)
    return pre, model, cand, scores


def run_method(method: str, task: str, X_train, Y_train, X_test, Y_test, config: ProtocolConfig, seed: int):
    """Fit ``method`` on the training fold and evaluate it on the test fold: (metrics, chosen)."""
    if method == "hraml":
        pre, model, cand, scores = fit_hraml(task, X_train, Y_train, config, seed)
        Z_train, Z_test = model.transform(pre.transform(X_train)), model.transform(pre.transform(X_test))
        return _evaluate(task, Z_train, Y_train, Z_test, Y_test, config), f"{cand.label()}@{scores[cand.label()][1]}"
    pre = config.preprocessor(config.preprocessing_for_baselines(task), seed)
    P_train, P_test = pre.fit_transform(X_train), pre.transform(X_test)
    if method == "raw":
        return _evaluate(task, P_train, Y_train, P_test, Y_test, config), pre.kind
    from .baselines import get_baseline

    model = get_baseline(method, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # metric-learn on scikit-learn 1.7
        model.fit(P_train, Y_train)
    return _evaluate(task, model.transform(P_train), Y_train, model.transform(P_test), Y_test, config), pre.kind


def _run_fold(name, X, Y, task, methods, config: ProtocolConfig, fold: int, train, test) -> list[FoldResult]:
    """Every method on one fold (one torch thread: also the body of a parallel worker)."""
    from .training import torch_threads

    out = []
    with torch_threads(1):
        for method in methods:
            t0 = time.perf_counter()
            metrics, chosen = run_method(method, task, X[train], Y[train], X[test], Y[test], config, config.seed + fold)
            out.append(FoldResult(name, method, fold, metrics, time.perf_counter() - t0, chosen))
    return out


def cross_validate(
    dataset,
    methods: Sequence[str],
    config: ProtocolConfig = ProtocolConfig(),
    on_result: Callable[[FoldResult], None] | None = None,
    max_folds: int | None = None,
    n_jobs: int = 1,
) -> list[FoldResult]:
    """Run every method on every fold of ``dataset`` (a hraml_core.data.Dataset).

    ``max_folds`` stops after the first folds of the ``config.folds``-fold split (for quick looks).
    ``n_jobs`` > 1 runs folds in that many worker processes (joblib), each with one torch thread;
    results are the same as with one job (every fold is seeded by its index) and come back in
    fold order.
    """
    X, Y, task = dataset.X, dataset.Y, dataset.task
    splits = fold_splits(task, Y, config.folds, config.seed)[:max_folds]
    results: list[FoldResult] = []
    if n_jobs == 1 or len(splits) == 1:
        for fold, (train, test) in enumerate(splits):
            for result in _run_fold(dataset.name, X, Y, task, methods, config, fold, train, test):
                results.append(result)
                if on_result:
                    on_result(result)
        return results
    from joblib import Parallel, delayed

    jobs = (delayed(_run_fold)(dataset.name, X, Y, task, methods, config, fold, train, test)
            for fold, (train, test) in enumerate(splits))
    for fold_results in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
        for result in fold_results:
            results.append(result)
            if on_result:
                on_result(result)
    order = {m: i for i, m in enumerate(methods)}
    return sorted(results, key=lambda r: (r.fold, order[r.method]))


def summarize(results: Sequence[FoldResult]) -> list[dict]:
    """One record per (dataset, method, metric): mean and sample std (ddof=1, MATLAB's ``std``) over folds."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    seconds: dict[tuple[str, str], float] = {}
    for r in results:
        for metric, value in r.metrics.items():
            groups.setdefault((r.dataset, r.method, metric), []).append(value)
        seconds[(r.dataset, r.method)] = seconds.get((r.dataset, r.method), 0.0) + r.seconds
    rows = []
    for (data, method, metric), values in groups.items():
        v = np.asarray(values, dtype=float)
        rows.append({
            "dataset": data,
            "method": method,
            "metric": metric,
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n_folds": len(v),
            "seconds": seconds[(data, method)],
            "paper": paper_value(data, method, metric),
        })
    return rows


def _cell(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f}±{std:.4f}"


def format_tables(rows: Sequence[dict]) -> str:
    """Plain-text tables shaped like the paper's Tables 1-3, published numbers beside ours."""
    by_key = {(r["dataset"], r["method"], r["metric"]): r for r in rows}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for title, metrics in (
        ("Table 1: single-label kNN accuracy", TASK_METRICS[CLASSIFICATION]),
        ("Table 2: multi-label (MLkNN on the learned metric)", TASK_METRICS[MULTILABEL]),
        ("Table 3: label distribution learning (AA-kNN)", TASK_METRICS[DISTRIBUTION]),
    ):
        sets = [d for d in datasets if any((d, m, metrics[0]) in by_key for m in methods)]
        if not sets:
            continue
        header = ["dataset", "metric", *methods, "paper HRAML", "paper best"]
        lines = [header]
        for d in sets:
            for metric in metrics:
                row = [d, f"{metric} ({'up' if METRIC_DIRECTIONS[metric] == 'max' else 'down'})"]
                for m in methods:
                    r = by_key.get((d, m, metric))
                    row.append(_cell(r["mean"], r["std"]) if r else "-")
                row.append(_cell(paper_value(d, "hraml", metric)))
                best = paper_best(d, metric)
                row.append(f"{best[1]:.4f} ({best[0]})" if best else "-")
                lines.append(row)
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
        out.append(f"{title}\n{text}")
    return "\n\n".join(out)


def compare_with_paper(rows: Sequence[dict], method: str = "hraml") -> list[dict]:
    """For each (dataset, metric) of ``method`` with a published best: does it meet or beat it?"""
    verdicts = []
    for r in rows:
        if r["method"] != method or r["dataset"] not in PAPER_RESULTS:
            continue
        best = paper_best(r["dataset"], r["metric"])
        if best is None:
            continue
        higher = METRIC_DIRECTIONS[r["metric"]] == "max"
        gap = r["mean"] - best[1] if higher else best[1] - r["mean"]
        verdicts.append({**r, "paper_best": best[1], "paper_best_method": best[0], "meets": gap >= 0, "gap": gap})
    return verdicts
