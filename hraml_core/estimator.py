"""``HRAML``: the method as a scikit-learn transformer (fit, transform, get_params)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from torch.func import functional_call
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import params
from .encoder import MLPEncoder, embedding_size, with_input_skip
from .evaluate import METRIC_DIRECTIONS, PRIMARY_METRIC, evaluate_embedding
from .relations import RELATIONS
from .rows import dense_chunk_rows, sparse_input_skip
from .splits import holdout_split
from .tasks import CLASSIFICATION, encode_targets, refuse_label_set_sequences
from .training import TrainingDiverged, TrainConfig, TrainingRun, torch_threads

FORMAT = "hraml-explorer/1"
#: Rows embedded at a time by ``transform``.
TRANSFORM_CHUNK_ROWS = 16384


@params.declare_parameters(params.PARAMS)
class HRAML(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Hierarchical Relationship Alignment Metric Learning (Gu, arXiv 2103.15107).

    Learns an MLP encoder f, with L2-normalised output, such that ||f(x_i) - f(x_j)||^2 matches a
    relation g(y_i, y_j) between labels. ``fit(X, Y)`` takes class labels (1-D), a multi-label
    0/1 indicator matrix, or label distributions (rows summing to 1); ``transform`` returns f(X).
    X may be a scipy.sparse matrix (text features): it stays sparse, each step reading its batch's
    rows dense (:mod:`hraml_core.rows`).

    Every parameter is declared once, in :mod:`hraml_core.params` (this section is generated from it).

    {parameters}

    Attributes
    ----------
    encoder_ : MLPEncoder
    input_skip_ : float, the input skip used (``input_skip``, resolved for the task)
    task_ : str
    classes_ : ndarray, only for classification
    relation_scale_ : float, the factor applied to g
    loss_curve_ : list of float, mean objective per epoch
    n_pairs_seen_ : int, pairs processed by fit
    n_iter_ : int, epochs run
    n_steps_ : int, optimisation steps run
    validation_scores_ : list of float, the task's metric on the held-out part after each epoch
        (None without early_stopping)
    best_validation_score_ : float, with early_stopping: the score of the weights kept
    """

    # -- scikit-learn plumbing ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        return tags

    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def train_config(self, seed: int | None = None) -> TrainConfig:
        """The :class:`~hraml_core.training.TrainConfig` that ``fit`` trains with for these parameters
        (``seed``: the run's seed; by default the one ``random_state`` gives). For driving a
        ``TrainingRun`` yourself, e.g. a validation curve, without the two drifting apart."""
        if seed is None:
            seed = self._seed()
        values = {p.name: getattr(self, p.name) for p in TrainConfig.__params__ if p.estimator}
        return TrainConfig(**values, seed=seed)

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X, Y):
        """Learn the encoder from features X (n, d; an array or a scipy.sparse matrix) and targets Y
        (classes, label sets or distributions)."""
        refuse_label_set_sequences(Y)  # before scikit-learn's check, whose message for them is numpy's
        X, Y = validate_data(
            self, X, Y, accept_sparse="csr", multi_output=True, dtype=[np.float64, np.float32], ensure_min_samples=2,
            y_numeric=False
        )
        params.check_values(self, self.__declared_params__)
        targets = encode_targets(Y, self.task)
        self.task_ = targets.task
        if targets.classes is not None:
            self.classes_ = targets.classes
        seed = self._seed()
        config = self.train_config(seed)

        X_val = Y_val = None
        X_fit, Y_fit, y_fit = X, targets.Y, Y
        if self.early_stopping:
            part = holdout_split(Y, self.task_, seed, test_size=self.validation_fraction)
            X_fit, X_val = X[part.train], X[part.test]
            Y_fit, Y_val = targets.Y[part.train], targets.Y[part.test]
            y_fit, y_val = Y[part.train], Y[part.test]

        with torch_threads(self.n_threads):
            run = TrainingRun(X_fit, Y_fit, self.task_, config)
            recorder = self._recorder(run, X_fit, Y_fit, targets.classes)
            try:
                stopped = self._fit_epochs(run, X_fit, Y_fit, y_fit, X_val, Y_val, y_val if self.early_stopping else None,
                                           recorder)
                self.encoder_ = run.encoder.cpu().eval()
                self.input_skip_ = float(run.config.input_skip)
                self.relation_scale_ = run.scale
                self.n_pairs_seen_ = run.state.pairs_seen
                self.n_steps_ = run.state.step
            except BaseException as exc:
                if recorder is not None:
                    recorder.writer.finish("failed", f"{type(exc).__name__}: {exc}")
                raise
        if recorder is not None:
            self._end_recording(recorder.writer, stopped)
        return self

    def _recorder(self, run, X_fit, Y_fit, classes):
        """A RunRecorder writing this fit to ``log_dir`` (None without one)."""
        if self.log_dir is None:
            return None
        if sp.issparse(X_fit) and run.config.input_skip:
            # a run records its embeddings as dense arrays: these would hold every input column
            raise ValueError("log_dir cannot record a fit on sparse X with an input skip (input_skip="
                             f"{run.config.input_skip:g}): its embeddings would hold all {X_fit.shape[1]:,} input "
                             "columns densely; pass input_skip=0, or reduce X first (e.g. TruncatedSVD)")
        from .runs.recorder import RunRecorder
        from .runs.writer import RunWriter

        fit_options = {p.name: getattr(self, p.name) for p in self.__declared_params__ if p.group == "training"}
        settings = {**run.config.to_dict(describe_objects=True), **fit_options}  # task defaults resolved
        writer = RunWriter(self.log_dir, config=settings, task=self.task_, metric=PRIMARY_METRIC[self.task_],
                           source="HRAML.fit")
        try:
            recorder = RunRecorder(writer, run, X_fit, Y_fit, total_steps=self.max_epochs * run.sampler.steps_per_epoch,
                                   classes=classes)
            recorder.begin()
        except BaseException as exc:
            writer.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        return recorder

    def _end_recording(self, writer, stopped: str | None) -> None:
        """The fitted model as the run's checkpoint, then the final status."""
        message = f"{self.n_iter_} epochs, {self.n_steps_} steps"
        try:
            if isinstance(self.relation, str):  # save() stores registered relations only
                writer.checkpoint(self, self.n_steps_)
        except BaseException as exc:
            writer.finish("failed", f"saving the checkpoint failed: {type(exc).__name__}: {exc}")
            raise
        writer.finish("finished", message + (f"; {stopped}" if stopped else ""))

    def _fit_epochs(self, run, X_fit, Y_fit, y_fit, X_val, Y_val, y_val, recorder=None) -> str | None:
        """Train epoch by epoch; returns why training stopped early (a divergence), or None."""
        steps = run.sampler.steps_per_epoch
        self.loss_curve_ = []
        self.validation_scores_ = [] if X_val is not None else None
        metric = PRIMARY_METRIC[self.task_]
        sign = 1.0 if METRIC_DIRECTIONS[metric] == "max" else -1.0
        best, best_state, since_best = -math.inf, None, 0
        self.n_iter_ = 0
        stopped = None
        for epoch in range(self.max_epochs):
            try:
                for _ in range(steps):
                    run.step()
                    if recorder is not None:
                        recorder.after_step()
                run.flush()
            except TrainingDiverged as exc:
                stopped = f"stopped early: {exc}"
                warnings.warn(f"HRAML {stopped}", ConvergenceWarning, stacklevel=3)
                break
            self.n_iter_ = epoch + 1
            self.loss_curve_.append(float(np.mean(run.state.losses[-steps:])))
            if self.verbose:
                print(f"epoch {epoch + 1}: loss {self.loss_curve_[-1]:.5f}")
            if X_val is None:
                continue
            labels_fit = y_fit if self.task_ == CLASSIFICATION else Y_fit
            labels_val = y_val if self.task_ == CLASSIFICATION else Y_val
            score = evaluate_embedding(self.task_, run.embed(X_fit), labels_fit, run.embed(X_val), labels_val)[metric]
            self.validation_scores_.append(score)
            if recorder is not None:
                recorder.log(run.state.step, **{f"val_{metric}": score})
            if sign * score > best:
                best, best_state, since_best = sign * score, run.state_dict(), 0
            else:
                since_best += 1
                if since_best >= self.n_iter_no_change:
                    break
        if best_state is not None:
            run.load_state_dict(best_state)
            self.best_validation_score_ = sign * best
        if recorder is not None:
            recorder.end(weights_changed=best_state is not None)  # the last snapshot shows the weights kept
        return stopped

    @classmethod
    def from_training_run(cls, run: TrainingRun, classes=None) -> "HRAML":
        """A fitted HRAML holding a copy of ``run``'s current weights (the caller keeps them still)."""
        c = run.config
        shared = {p.name: getattr(c, p.name) for p in c.__params__ if p.estimator}
        model = cls(**shared, task=run.task, random_state=c.seed)
        encoder = MLPEncoder(run.X.shape[1], c.hidden, c.dim, c.out_activation, "torch")
        encoder.load_state_dict(run.state_dict())
        model.encoder_ = encoder.eval()
        model.input_skip_ = float(c.input_skip)
        model.task_ = run.task
        model.n_features_in_ = int(run.X.shape[1])
        model.relation_scale_ = run.scale
        st, per_epoch = run.state, run.sampler.steps_per_epoch
        model.n_pairs_seen_, model.n_steps_, model.n_iter_ = st.pairs_seen, st.step, int(run.epoch)
        model.loss_curve_ = [float(np.mean(st.losses[i : i + per_epoch])) for i in range(0, len(st.losses), per_epoch)]
        if classes is not None:
            model.classes_ = np.asarray(classes)
        return model

    # -- using the metric ---------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform``'s output: ``get_feature_names_out`` names them ``hraml0``,
        ``hraml1``, ... (scikit-learn's mixin), which also makes ``set_output`` available."""
        return embedding_size(self.n_features_in_, self.encoder_.dim, self.input_skip_)

    def transform(self, X):
        """The metric's embeddings of X: unit rows, f(X) (``dim`` columns), with the input skip
        (``input_skip_``; then ``dim`` + n_features_in_ columns) when there is one.

        For a scipy.sparse X with an input skip the result is a CSR matrix (the inputs' part stays
        sparse); otherwise an array."""
        check_is_fitted(self, "encoder_")
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32])
        # float64 input is embedded in float64 (weights upcast): each row's embedding is then
        # independent of the batch it comes in, to ~1e-16 rather than float32's ~1e-7.
        params = {k: v.to(torch.float64 if X.dtype == np.float64 else torch.float32)
                  for k, v in self.encoder_.state_dict().items()}
        # In chunks of rows (each row is embedded on its own): a million rows at once would hold
        # their hidden layer, gigabytes, and a copy of X.
        skip = self.input_skip_
        if sp.issparse(X):  # rows read dense a block at a time; the input skip's part stays sparse
            F = np.empty((X.shape[0], self.encoder_.dim), dtype=X.dtype)
            step = dense_chunk_rows(X.shape[1], TRANSFORM_CHUNK_ROWS)
            with torch.no_grad(), torch_threads(self.n_threads):
                for a in range(0, X.shape[0], step):
                    chunk = torch.from_numpy(X[a : a + step].toarray())
                    F[a : a + len(chunk)] = functional_call(self.encoder_, params, (chunk,)).numpy()
            return sparse_input_skip(X, F, skip)
        Z = np.empty((len(X), embedding_size(X.shape[1], self.encoder_.dim, skip)), dtype=X.dtype)
        with torch.no_grad(), torch_threads(self.n_threads):
            for a in range(0, len(X), TRANSFORM_CHUNK_ROWS):
                chunk = torch.tensor(X[a : a + TRANSFORM_CHUNK_ROWS])
                f = functional_call(self.encoder_, params, (chunk,))
                Z[a : a + len(chunk)] = with_input_skip(chunk, f, skip).numpy()
        return Z

    def get_metric(self):
        """A callable ``metric(a, b) = ||f(a) - f(b)||`` on two 1-D samples.

        Usable as ``KNeighborsClassifier(metric=model.get_metric(), algorithm="brute")``. It runs
        the encoder in numpy on copies of the fitted weights, so it neither holds torch state nor
        changes if the model is refitted later. (Transforming once and using Euclidean kNN on the
        embeddings gives the same neighbours far faster.)
        """
        check_is_fitted(self, "encoder_")
        layers = [(l.weight.detach().numpy().astype(np.float64), l.bias.detach().numpy().astype(np.float64))
                  for l in self.encoder_.layers]
        tanh_out = self.encoder_.out_activation == "tanh"
        skip = self.input_skip_

        def embed(x):
            x = (x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)).astype(np.float64).reshape(-1)
            h = x
            for i, (W, b) in enumerate(layers):
                h = W @ h + b
                if i < len(layers) - 1 or tanh_out:
                    h = np.tanh(h)
            z = h / max(np.linalg.norm(h), 1e-12)
            return with_input_skip(torch.from_numpy(x[None]), torch.from_numpy(z[None]), skip).numpy()[0]

        def metric(a, b):
            return float(np.linalg.norm(embed(a) - embed(b)))

        return metric

    # -- persistence (no pickle) ----------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the fitted model to one ``.safetensors`` file: weights plus a JSON config in its metadata."""
        check_is_fitted(self, "encoder_")
        if not isinstance(self.relation, str) or self.relation not in RELATIONS:
            raise ValueError("save() supports registered relation names only, not a custom callable")
        declared = params.check_values(self, self.__declared_params__)
        if not isinstance(declared["random_state"], (int, type(None))):
            declared["random_state"] = None  # a RandomState object is not a value to save
        saved = {name: params.get(name).to_json(v) for name, v in declared.items()}
        fitted = {
            "task_": self.task_,
            "n_features_in_": int(self.n_features_in_),
            "relation_scale_": float(self.relation_scale_),
            "input_skip_": float(self.input_skip_),
            "loss_curve_": [float(v) for v in self.loss_curve_],
            "n_pairs_seen_": int(self.n_pairs_seen_),
            "n_iter_": int(self.n_iter_),
            "n_steps_": int(self.n_steps_),
        }
        if hasattr(self, "classes_"):
            fitted["classes_"] = self.classes_.tolist()
            fitted["classes_dtype"] = self.classes_.dtype.str
        meta = {"format": FORMAT, "params": json.dumps(saved), "fitted": json.dumps(fitted)}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.encoder_.state_dict().items()}
        save_file(state, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path) -> "HRAML":
        """Read a model written by :meth:`save` (safetensors: no code is executed on load)."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for a bad file
            raise ValueError(f"{path}: not a readable HRAML model file ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not an HRAML model file (format {meta.get('format')!r})")
        saved = json.loads(meta["params"])
        fitted = json.loads(meta["fitted"])
        known = {p.name for p in cls.__declared_params__}
        # A parameter this version does not declare cannot be honoured: say so rather than guess.
        unknown = sorted(set(saved) - known)
        if unknown:
            raise ValueError(f"{path}: saved with parameters this version does not know ({', '.join(unknown)})")
        model = cls(**{k: params.get(k).check(v) for k, v in saved.items()})
        encoder = MLPEncoder(
            fitted["n_features_in_"], model.hidden, model.dim, model.out_activation, "torch"
        )
        encoder.load_state_dict(state)
        model.encoder_ = encoder.eval()
        model.input_skip_ = float(fitted.get("input_skip_", 0.0))  # files written before input_skip had none
        for key in ("task_", "n_features_in_", "relation_scale_", "loss_curve_", "n_pairs_seen_", "n_iter_", "n_steps_"):
            setattr(model, key, fitted[key])
        if "classes_" in fitted:
            model.classes_ = np.asarray(fitted["classes_"], dtype=np.dtype(fitted["classes_dtype"]))
        return model
