"""Downloads: embeddings (CSV), metrics (CSV) and the trained model (zip). Pure functions."""
from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .prepare import Prepared


def _label_text(y) -> str:
    y = np.asarray(y)
    if y.ndim == 0:
        return str(y.item())
    return " ".join(f"{v:g}" for v in y.astype(np.float64))


def embeddings_csv(Z_train, Z_val, prepared: Prepared, train_pos=None, val_pos=None) -> str:
    """One row per sample of both parts: original row, split, label(s), then z0..z{d-1}.

    ``train_pos`` / ``val_pos``: the positions in each part that ``Z_train`` / ``Z_val`` embed
    (None: every row)."""
    import pandas as pd

    tr = slice(None) if train_pos is None else np.asarray(train_pos)
    va = slice(None) if val_pos is None else np.asarray(val_pos)
    Z_train, Z_val = np.asarray(Z_train), np.asarray(Z_val)
    rows = np.concatenate([prepared.train_index[tr], prepared.val_index[va]])
    split = np.array(["train"] * len(Z_train) + ["held-out"] * len(Z_val))
    Y = list(prepared.Y_train[tr]) + list(prepared.Y_val[va])
    Z = np.vstack([Z_train, Z_val])
    frame = pd.DataFrame({"row": rows, "split": split, "label": [_label_text(y) for y in Y]})
    frame = pd.concat([frame, pd.DataFrame(Z, columns=[f"z{k}" for k in range(Z.shape[1])])], axis=1)
    return frame.sort_values("row", kind="stable").to_csv(index=False, float_format="%.6g")


def sampled_embeddings_csv(embed, prepared: Prepared) -> str:
    """:func:`embeddings_csv` of the rows :meth:`Prepared.export_positions` picks (every row up to
    ``prepare.EXPORT_ROWS``), embedded by ``embed`` (e.g. ``Trainer.embed``)."""
    tr, va = prepared.export_positions()
    return embeddings_csv(embed(prepared.X_train[tr]), embed(prepared.X_val[va]), prepared, tr, va)


def metrics_csv(snapshot, baselines: Mapping[str, float] | None = None) -> str:
    """The loss curve and the held-out metric by step, plus the raw-feature and baseline values.

    Columns: ``kind`` (loss / heldout / raw / baseline), ``name``, ``step``, ``value``.
    """
    import pandas as pd

    s = snapshot
    parts = [
        pd.DataFrame({"kind": "loss", "name": "loss", "step": s.loss_steps, "value": s.loss_values}),
        pd.DataFrame({"kind": "heldout", "name": s.metric_name, "step": s.metric_steps, "value": s.metric_values}),
    ]
    extra = []
    if s.raw_metric is not None:
        extra.append({"kind": "raw", "name": s.metric_name, "step": np.nan, "value": s.raw_metric})
    for name, value in (baselines or {}).items():
        extra.append({"kind": "baseline", "name": f"{name}:{s.metric_name}", "step": np.nan, "value": value})
    if extra:
        parts.append(pd.DataFrame(extra))
    return pd.concat(parts, ignore_index=True).to_csv(index=False, float_format="%.6g")


def model_zip(estimator, prepared: Prepared, settings: Mapping | None = None, metrics: Mapping | None = None) -> bytes:
    """A zip of a model folder, so ``hraml evaluate FOLDER`` reads it: a run directory
    (docs/RUNS.md) written by the library's one writer, with ``model.safetensors``
    (``hraml_core.HRAML.load``), ``preprocess.safetensors`` (the fitted
    ``hraml_core.preprocessing.Preprocessor`` the encoder expects), ``run.json`` (dataset, task,
    settings, held-out metrics), ``split.json`` (the exact train / held-out rows) and a README.txt."""
    from hraml_core.runs.writer import RunWriter, prepare_run

    total = len(prepared.train_index) + len(prepared.val_index)
    with tempfile.TemporaryDirectory(prefix="hraml-model-") as tmp:
        folder = Path(tmp) / "model"
        prepare_run(folder, source="dashboard", dataset={"name": prepared.name, "data_dir": None, "label_columns": None},
                    split={"test_size": len(prepared.val_index) / total, "seed": 0,
                           "train_rows": [int(i) for i in prepared.train_index],
                           "test_rows": [int(i) for i in prepared.val_index]})
        with RunWriter(folder, config=dict(settings or {}), task=prepared.task) as run:
            run.save_model(estimator, prepared.preprocessor)
            run.update(results={"metrics": dict(metrics or {}), "knn_k": None})
        (folder / "README.txt").write_text(
            "HRAML model trained in the HRAML Explorer dashboard.\n\n"
            "Unzip into a folder, then evaluate it on its held-out rows:\n\n"
            f"    hraml evaluate FOLDER [--data-dir DIR]        # dataset: {prepared.name}\n\n"
            "or use it from Python:\n\n"
            "    from hraml_core import HRAML\n"
            "    from hraml_core.preprocessing import Preprocessor\n"
            "    pre = Preprocessor.load('preprocess.safetensors')\n"
            "    Z = HRAML.load('model.safetensors').transform(pre.transform(X_raw))\n"
        )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
    return out.getvalue()
