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

Two presets (:data:`PROTOCOLS`, :func:`get_protocol`):

- ``"project"`` (``ProtocolConfig()``, the default): this project's grid of candidates and its
  validation curve up to 200 epochs, chosen on exploration splits (docs/RESULTS.md).
- ``"authors"`` (``ProtocolConfig.authors()``): the authors' settings as a whole
  (../shared/reference/PROTOCOL.md, read from their MATLAB code): PCA-100, one hidden layer of
  100, output size = input size, tanh + L2 normalisation, SGD with momentum 0.9 on 40-pair
  batches of input-space neighbour partners (4 per sample), the learning rate divided by ten after
  epoch 10, 20 epochs with the epoch chosen on a validation split of the training fold, kNN
  k = 4. docs/RESULTS.md lists every setting beside the paper's and the code's, and why.

Beside k-fold cross-validation (:func:`cross_validate`), :func:`evaluate_fixed_split` trains on a
given training set and tests on a given test set: Mulan's fixed splits of emotions and flags
(:func:`hraml_core.data.load_fixed_split`), the ones the paper's Table 2 used.

    from hraml_core.data import load_dataset
    from hraml_core.protocol import get_protocol, cross_validate, summarize, compare_with_paper

    rows = summarize(cross_validate(load_dataset("uspst"), ["hraml", "raw"], get_protocol("authors")))
    compare_with_paper(rows)  # gap to the paper's best, standard error, verdict per cell
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from .evaluate import LDL_METRICS, METRIC_DIRECTIONS, MULTILABEL_METRICS, PRIMARY_METRIC, evaluate_embedding
from .paper import PAPER_RESULTS, paper_best, paper_value
from .preprocessing import Preprocessor
from .splits import holdout_split
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
    name: str = ""  # a short name for labels (else the parameters are listed)

    def label(self) -> str:
        extra = self.name or ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
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


#: A candidate's ``dim="input"``: the embedding as wide as the features after preprocessing (the
#: authors' output size = input size), resolved per fold by :func:`resolve_params`.
INPUT_DIM = "input"

#: The authors' network and optimisation (../shared/reference/PROTOCOL.md; their HRAML.m and
#: crossvalidate1.m). Their SGD step is ``lr`` times the *sum* of the gradients of a batch's 40
#: pairs; ours averages over the pairs (hraml_core.loss), so the same step needs 40 x their rate:
#: 0.01 -> 0.4, 0.001 -> 0.04. Their weight decay (beta = 1e-4) is spread over an epoch's batches,
#: ``batch / (n * pairsize) * beta * theta`` per batch: on our mean it is an L2 coefficient of
#: beta / (4 n) (``weight_decay`` = beta / (8 n), 1e-8 to 2e-7 here), which shrinks the weights by
#: about 0.01 % over the 20 epochs whatever n: it is left out (weight_decay 0). docs/RESULTS.md,
#: "Deviations", has the arithmetic.
AUTHORS_HRAML: dict = {
    "hidden": (100,),
    "dim": INPUT_DIM,
    "out_activation": "tanh",
    "init": "paper",
    "relation": "l1",
    "optimizer": "sgd",
    "momentum": 0.9,
    "lr": 0.4,
    "lr_drop_epoch": 10,
    "weight_decay": 0.0,
    "sampler": "neighbors",
    "batch_size": 40,
    "partners": 4,
    "balance": 0.5,
    # The authors' metric is the network's embedding alone, trained on clean inputs: not this
    # project's multi-label defaults (params.py, task_defaults).
    "input_skip": 0.0,
    "input_noise": 0.0,
}

#: The authors' preset per task: PCA-100 (their "PCA100" file); for label sets PCA-100 then
#: standardisation (the authors' code is silent; on emotions and flags, with 72 and 19 features,
#: it is standardisation alone, which reproduces the paper's raw MLkNN row on emotions' fixed
#: split: docs/RESULTS.md). For classes the target of a different-class pair is 1, not eq. 11's 2:
#: the code that picks their partners (get_distance_index.m) finds other-class partners as those
#: with relation 1 (``dis = 1``), which only works with 0/1 targets (``scale=0.5`` of the l1 g).
AUTHORS_CANDIDATES: dict[str, tuple[Candidate, ...]] = {
    CLASSIFICATION: (Candidate("pca", {**AUTHORS_HRAML, "scale": 0.5}, "authors"),),
    MULTILABEL: (Candidate("pca+standardize", AUTHORS_HRAML, "authors"),),
    DISTRIBUTION: (Candidate("pca", AUTHORS_HRAML, "authors"),),
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

    name: str = "project"  # which preset these settings come from (results carry it)
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
    candidates: tuple[Candidate, ...] | None = None  # every task; None: grid[task]
    grid: Mapping[str, tuple[Candidate, ...]] | None = None  # candidates per task; None: DEFAULT_CANDIDATES
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

    @classmethod
    def authors(cls, **changes) -> "ProtocolConfig":
        """The authors' protocol (see the module docstring; ``changes`` override its settings).

        10 stratified folds; per fold, PCA-100 fitted on the training fold, one validation split
        (10 %, stratified) carved from it; the network of :data:`AUTHORS_HRAML` trains on the rest
        for 20 epochs, the validation metric (kNN k = 4 accuracy; MLkNN average precision) is read
        after every epoch and the weights of the best epoch (the earliest of ties) are kept, with no
        retraining, as the authors' code keeps them; the test fold is classified by kNN (k = 4)
        against the whole training fold's embeddings."""
        preset = dict(
            name="authors", folds=10, pca_components=100, knn_k=4, validation_fraction=0.1,
            validation_repeats=1, max_epochs=20, checkpoints=tuple(range(1, 21)), smoothing=0,
            selection="curve", refit=False, grid=AUTHORS_CANDIDATES,
        )
        return cls(**{**preset, **changes})

    def replace(self, **changes) -> "ProtocolConfig":
        return dataclasses.replace(self, **changes)

    def candidates_for(self, task: str) -> tuple[Candidate, ...]:
        return self.candidates or (self.grid or DEFAULT_CANDIDATES)[task]

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


#: The named presets: this project's protocol (the default) and the authors'.
PROTOCOLS: dict[str, ProtocolConfig] = {
    "project": ProtocolConfig(),
    "authors": ProtocolConfig.authors(),
}
#: How a fold is made: cross-validation, or a given (fixed) train/test split.
SPLITS = ("cv", "fixed")


def get_protocol(name: str, **changes) -> ProtocolConfig:
    """The preset ``name`` of :data:`PROTOCOLS` with ``changes`` (e.g. ``folds``, ``seed``) applied."""
    try:
        base = PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None
    return base.replace(**changes) if changes else base


def resolve_params(params: dict, n_features: int) -> dict:
    """A candidate's HRAML parameters with the protocol's symbolic values made concrete:
    ``dim="input"`` becomes ``n_features`` (the width after preprocessing)."""
    if params.get("dim") == INPUT_DIM:
        return {**params, "dim": int(n_features)}
    return params


@dataclass(frozen=True)
class FoldResult:
    dataset: str
    method: str
    fold: int
    metrics: dict[str, float]
    seconds: float
    chosen: str = ""  # the selected candidate (hraml)
    split: str = "cv"  # "cv": a fold of cross-validation; "fixed": a given train/test split
    protocol: str = "project"  # ProtocolConfig.name


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


def _validation_split(task, Y, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) of a training fold: stratified for classes where possible."""
    part = holdout_split(Y, task, seed, test_size=fraction)
    return part.train, part.test


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
        fit, val = _validation_split(task, Y, config.validation_fraction, seed + 7919 * r)
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
        params = resolve_params({"task": task, "random_state": seed, **config.hraml_params, **cand.params}, Z.shape[1])
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


def _run_fold(name, X, Y, task, methods, config: ProtocolConfig, fold: int, train, test,
              split: str = "cv") -> list[FoldResult]:
    """Every method on one fold (one torch thread: also the body of a parallel worker)."""
    from .training import torch_threads

    out = []
    with torch_threads(1):
        for method in methods:
            t0 = time.perf_counter()
            metrics, chosen = run_method(method, task, X[train], Y[train], X[test], Y[test], config, config.seed + fold)
            out.append(FoldResult(name, method, fold, metrics, time.perf_counter() - t0, chosen, split, config.name))
    return out


@dataclass(frozen=True, eq=False)
class FoldJob:
    """One fold of one experiment: every method trained on ``X[train]`` and tested on ``X[test]``."""

    dataset: str
    X: object
    Y: np.ndarray
    task: str
    methods: tuple[str, ...]
    config: ProtocolConfig
    fold: int
    train: np.ndarray
    test: np.ndarray
    split: str = "cv"

    def run(self) -> list[FoldResult]:
        return _run_fold(self.dataset, self.X, self.Y, self.task, self.methods, self.config, self.fold,
                         self.train, self.test, self.split)


def cv_jobs(dataset, methods: Sequence[str], config: ProtocolConfig = ProtocolConfig(),
            max_folds: int | None = None) -> list[FoldJob]:
    """The folds of ``config.folds``-fold cross-validation of ``dataset`` (the first ``max_folds``)."""
    splits = fold_splits(dataset.task, dataset.Y, config.folds, config.seed)[:max_folds]
    return [FoldJob(dataset.name, dataset.X, dataset.Y, dataset.task, tuple(methods), config, fold, train, test)
            for fold, (train, test) in enumerate(splits)]


def fixed_split_job(train, test, methods: Sequence[str], config: ProtocolConfig = ProtocolConfig()) -> FoldJob:
    """Training on ``train`` and testing on ``test`` (two hraml_core.data.Dataset of one set) as one
    job: fold 0, split ``"fixed"``, models seeded with ``config.seed``."""
    import scipy.sparse as sp

    if train.task != test.task:
        raise ValueError(f"the training set is {train.task} but the test set is {test.task}")
    if train.X.shape[1] != test.X.shape[1]:
        raise ValueError(f"the training set has {train.X.shape[1]} features but the test set {test.X.shape[1]}")
    X = sp.vstack([train.X, test.X]).tocsr() if sp.issparse(train.X) else np.concatenate([train.X, test.X])
    Y = np.concatenate([train.Y, test.Y])
    n = train.X.shape[0]
    return FoldJob(train.name, X, Y, train.task, tuple(methods), config, 0, np.arange(n),
                   np.arange(n, n + test.X.shape[0]), "fixed")


def run_jobs(jobs: Sequence[FoldJob], n_jobs: int = 1,
             on_result: Callable[[FoldResult], None] | None = None) -> list[FoldResult]:
    """Run fold jobs, in that many worker processes (joblib, one torch thread each) when
    ``n_jobs`` > 1; ``on_result`` hears of each result as it comes. Returns the results in the order
    of ``jobs`` (within a job: the order of its methods), the same with any ``n_jobs``: every
    fold is seeded by its index.

    Workers take jobs in the order given: put the longest first so that none is left alone with a
    long job at the end (``hraml reproduce`` orders them so)."""
    results: dict[int, list[FoldResult]] = {}
    if n_jobs == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            results[i] = job.run()
            for r in results[i]:
                if on_result:
                    on_result(r)
    else:
        from joblib import Parallel, delayed

        calls = (delayed(_tagged_job)(i, job) for i, job in enumerate(jobs))
        for i, fold_results in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(calls):
            results[i] = fold_results
            for r in fold_results:
                if on_result:
                    on_result(r)
    return [r for i in range(len(jobs)) for r in results[i]]


def _tagged_job(i: int, job: FoldJob) -> tuple[int, list[FoldResult]]:
    return i, job.run()


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
    return run_jobs(cv_jobs(dataset, methods, config, max_folds), n_jobs, on_result)


def evaluate_fixed_split(
    train,
    test,
    methods: Sequence[str],
    config: ProtocolConfig = ProtocolConfig(),
    on_result: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Every method trained on ``train`` and evaluated on ``test`` (two hraml_core.data.Dataset of
    one set, e.g. :func:`hraml_core.data.load_fixed_split`): one result per method, fold 0, split
    ``"fixed"``. Model selection carves its validation parts from ``train`` only, as in a fold;
    models are seeded with ``config.seed``."""
    return run_jobs([fixed_split_job(train, test, methods, config)], 1, on_result)


#: The keys of a summary record that say which experiment it is.
RECORD_KEYS = ("dataset", "method", "metric", "split", "protocol")


def summarize(results: Sequence[FoldResult]) -> list[dict]:
    """One record per (dataset, method, metric, split, protocol): mean and sample std (ddof=1,
    MATLAB's ``std``) over folds (std 0 for a single fold, e.g. a fixed split)."""
    groups: dict[tuple[str, str, str, str, str], list[float]] = {}
    seconds: dict[tuple[str, str, str, str], float] = {}
    for r in results:
        for metric, value in r.metrics.items():
            groups.setdefault((r.dataset, r.method, metric, r.split, r.protocol), []).append(value)
        key = (r.dataset, r.method, r.split, r.protocol)
        seconds[key] = seconds.get(key, 0.0) + r.seconds
    rows = []
    for (data, method, metric, split, proto), values in groups.items():
        v = np.asarray(values, dtype=float)
        rows.append({
            "dataset": data,
            "method": method,
            "metric": metric,
            "split": split,
            "protocol": proto,
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n_folds": len(v),
            "seconds": seconds[(data, method, split, proto)],
            "paper": paper_value(data, method, metric),
        })
    return rows


def _cell(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f}±{std:.4f}"


def format_tables(rows: Sequence[dict]) -> str:
    """Plain-text tables shaped like the paper's Tables 1-3, published numbers beside ours.

    One line per (dataset, split, metric); one column per (method, protocol), headed
    ``method/protocol``; a fixed split's single evaluation shows its value alone (no spread)."""
    def split_of(r):
        return r.get("split", "cv")

    def proto_of(r):
        return r.get("protocol", "project")

    by_key = {(r["dataset"], split_of(r), r["metric"], r["method"], proto_of(r)): r for r in rows}
    lines_keys = list(dict.fromkeys((r["dataset"], split_of(r)) for r in rows))
    columns = list(dict.fromkeys((r["method"], proto_of(r)) for r in rows))
    out = []
    for title, metrics in (
        ("Table 1: single-label kNN accuracy", TASK_METRICS[CLASSIFICATION]),
        ("Table 2: multi-label (MLkNN on the learned metric)", TASK_METRICS[MULTILABEL]),
        ("Table 3: label distribution learning (AA-kNN)", TASK_METRICS[DISTRIBUTION]),
    ):
        sets = [(d, sp) for d, sp in lines_keys if any((d, sp, metrics[0], m, p) in by_key for m, p in columns)]
        if not sets:
            continue
        header = ["dataset", "split", "metric", *(f"{m}/{p}" for m, p in columns), "paper HRAML", "paper best"]
        lines = [header]
        for d, sp in sets:
            for metric in metrics:
                row = [d, sp, f"{metric} ({'up' if METRIC_DIRECTIONS[metric] == 'max' else 'down'})"]
                for m, p in columns:
                    r = by_key.get((d, sp, metric, m, p))
                    row.append("-" if r is None else _cell(r["mean"], r["std"] if r.get("n_folds", 2) > 1 else None))
                row.append(_cell(paper_value(d, "hraml", metric)))
                best = paper_best(d, metric)
                row.append(f"{best[1]:.4f} ({best[0]})" if best else "-")
                lines.append(row)
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
        out.append(f"{title}\n{text}")
    return "\n\n".join(out)


#: The four verdicts of :func:`verdict`, best first.
VERDICTS = ("meets", "meets, within noise", "short, within noise", "short")


def standard_error(std: float, n_folds: int) -> float:
    """The standard error of a mean over ``n_folds`` folds: std / sqrt(n_folds) (0 for one fold)."""
    return float(std) / math.sqrt(n_folds) if n_folds > 1 else 0.0


def verdict(gap: float, se: float) -> str:
    """``gap`` (ours minus the paper's best, signed so that positive is better) against the
    standard error ``se`` of our mean: "meets" / "short" when |gap| >= se, with ", within noise"
    when |gap| < se (the margin is smaller than one standard error)."""
    within = abs(gap) < se
    if gap >= 0:
        return "meets, within noise" if within else "meets"
    return "short, within noise" if within else "short"


def compare_with_paper(rows: Sequence[dict], method: str = "hraml") -> list[dict]:
    """For each (dataset, metric, split, protocol) of ``method`` with a published best: the gap
    to the best published value (positive: ours is better), the standard error of our mean
    (std / sqrt(n_folds)) and the :func:`verdict`; ``meets`` is ``gap >= 0``."""
    verdicts = []
    for r in rows:
        if r["method"] != method or r["dataset"] not in PAPER_RESULTS:
            continue
        best = paper_best(r["dataset"], r["metric"])
        if best is None:
            continue
        higher = METRIC_DIRECTIONS[r["metric"]] == "max"
        gap = r["mean"] - best[1] if higher else best[1] - r["mean"]
        se = standard_error(r.get("std", 0.0), r.get("n_folds", 1))
        verdicts.append({**r, "paper_best": best[1], "paper_best_method": best[0], "meets": gap >= 0, "gap": gap,
                         "se": se, "within_noise": abs(gap) < se, "verdict": verdict(gap, se)})
    return verdicts


def best_of_protocols(verdicts: Sequence[dict]) -> list[dict]:
    """Per (dataset, metric, split): the verdict of the protocol with the largest gap (the issue's
    target: each cell met by one of the protocols)."""
    best: dict[tuple[str, str, str], dict] = {}
    for v in verdicts:
        key = (v["dataset"], v["metric"], v.get("split", "cv"))
        if key not in best or v["gap"] > best[key]["gap"]:
            best[key] = v
    return list(best.values())
