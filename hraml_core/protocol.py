"""The paper's evaluation protocol: k-fold cross-validation, model selection inside the training
folds, and the task's nearest-neighbour evaluation on the test fold.

Per fold (PROTOCOL.md, from the authors' code):

1. Split: stratified k-fold for classes, shuffled k-fold otherwise (10 folds by default).
2. Preprocessing fitted on the training fold only (optional PCA to 100 dimensions; standardisation).
3. HRAML: every candidate (a preprocessing and a set of HRAML parameters) is trained with early
   stopping on a validation part carved from the training fold; the candidate with the best
   validation score wins and is retrained on the whole training fold for the number of epochs
   that validation chose. The test fold is never seen before step 4.
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

from .evaluate import LDL_METRICS, METRIC_DIRECTIONS, MULTILABEL_METRICS, evaluate_embedding
from .paper import PAPER_RESULTS, paper_best, paper_value
from .preprocessing import Preprocessor
from .tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL

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


#: The grid searched per fold when none is given (docs/RESULTS.md says how it was chosen).
DEFAULT_CANDIDATES: dict[str, tuple[Candidate, ...]] = {
    CLASSIFICATION: (
        Candidate("pca"),
        Candidate("pca+standardize"),
    ),
    MULTILABEL: (
        Candidate("standardize"),
        Candidate("standardize", {"relation": "jaccard"}),
    ),
    DISTRIBUTION: (
        Candidate("standardize"),
        Candidate("pca"),
    ),
}


@dataclass(frozen=True)
class ProtocolConfig:
    folds: int = 10
    seed: int = 0
    pca_components: int = 100
    knn_k: int = 4
    validation_fraction: float = 0.15
    max_epochs: int = 200
    n_iter_no_change: int = 15
    candidates: tuple[Candidate, ...] | None = None  # None: DEFAULT_CANDIDATES[task]
    hraml_params: dict = field(default_factory=dict)  # applied to every candidate
    baseline_preprocessing: str | None = None  # None: the first candidate's
    refit: bool = True  # retrain the chosen candidate on the whole training fold

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k must be positive, got {self.knn_k}")

    def candidates_for(self, task: str) -> tuple[Candidate, ...]:
        return self.candidates or DEFAULT_CANDIDATES[task]

    def preprocessing_for_baselines(self, task: str) -> str:
        return self.baseline_preprocessing or self.candidates_for(task)[0].preprocessing


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


def fit_hraml(task, X_train, Y_train, config: ProtocolConfig, seed: int):
    """Model selection on the training fold; returns (preprocessor, model, chosen candidate, scores)."""
    from .estimator import HRAML

    best = None
    scores = {}
    for cand in config.candidates_for(task):
        pre = Preprocessor(cand.preprocessing, config.pca_components, random_state=seed)
        Z = pre.fit_transform(X_train)
        params = {
            "max_epochs": config.max_epochs,
            "early_stopping": True,
            "validation_fraction": config.validation_fraction,
            "n_iter_no_change": config.n_iter_no_change,
            "task": task,
            "random_state": seed,
            **config.hraml_params,
            **cand.params,
        }
        model = HRAML(**params).fit(Z, Y_train)
        score = model.best_validation_score_
        scores[cand.label()] = score
        sign = 1 if METRIC_DIRECTIONS[_primary(task)] == "max" else -1
        if best is None or sign * score > sign * best[3]:
            best = (pre, model, cand, score, Z, params)
    pre, model, cand, score, Z, params = best
    if config.refit:
        # The validation part cost the model 15% of its training data; retrain on all of the
        # training fold for the number of epochs that validation picked.
        epochs = int(np.argmax(np.asarray(model.validation_scores_) * sign)) + 1
        model = HRAML(**{**params, "early_stopping": False, "max_epochs": epochs}).fit(Z, Y_train)
    return pre, model, cand, scores


def _primary(task: str) -> str:
    from .evaluate import PRIMARY_METRIC

    return PRIMARY_METRIC[task]


def run_method(method: str, task: str, X_train, Y_train, X_test, Y_test, config: ProtocolConfig, seed: int):
    """Fit ``method`` on the training fold and evaluate it on the test fold: (metrics, chosen)."""
    if method == "hraml":
        pre, model, cand, _ = fit_hraml(task, X_train, Y_train, config, seed)
        Z_train, Z_test = model.transform(pre.transform(X_train)), model.transform(pre.transform(X_test))
        return _evaluate(task, Z_train, Y_train, Z_test, Y_test, config), cand.label()
    pre = Preprocessor(config.preprocessing_for_baselines(task), config.pca_components, random_state=seed)
    P_train, P_test = pre.fit_transform(X_train), pre.transform(X_test)
    if method == "raw":
        return _evaluate(task, P_train, Y_train, P_test, Y_test, config), pre.kind
    from .baselines import get_baseline

    model = get_baseline(method, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # metric-learn on scikit-learn 1.7
        model.fit(P_train, Y_train)
    return _evaluate(task, model.transform(P_train), Y_train, model.transform(P_test), Y_test, config), pre.kind


def cross_validate(
    dataset,
    methods: Sequence[str],
    config: ProtocolConfig = ProtocolConfig(),
    on_result: Callable[[FoldResult], None] | None = None,
    max_folds: int | None = None,
) -> list[FoldResult]:
    """Run every method on every fold of ``dataset`` (a hraml_core.data.Dataset).

    ``max_folds`` stops after the first folds of the ``config.folds``-fold split (for quick looks).
    """
    X, Y, task = dataset.X, dataset.Y, dataset.task
    results = []
    splits = fold_splits(task, Y, config.folds, config.seed)
    for fold, (train, test) in enumerate(splits[:max_folds]):
        for method in methods:
            t0 = time.perf_counter()
            metrics, chosen = run_method(method, task, X[train], Y[train], X[test], Y[test], config, config.seed + fold)
            result = FoldResult(dataset.name, method, fold, metrics, time.perf_counter() - t0, chosen)
            results.append(result)
            if on_result:
                on_result(result)
    return results


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
