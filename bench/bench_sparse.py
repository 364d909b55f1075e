"""Sparse features: ``HRAML().fit`` on a scipy.sparse matrix against the same matrix made dense.

    python bench/bench_sparse.py [--write] [--rows 10000] [--vocabulary 20000]

A synthetic bag of words (``--rows`` documents, ``--vocabulary`` words, about 60 words a document
drawn from a Zipf-like word distribution shifted per class, TF-IDF weighted and L2-normalised, 10
classes; label sets: each document also carries the labels of two of its words' topics) is
trained on for one epoch with the defaults, once as CSR and once as the dense float32 array, each
in a fresh process so that its peak RSS is its own: seconds per epoch, rows/s, ``transform``
seconds, peak RSS. Ratios are sparse / dense, measured in the same run. ``--write`` replaces the
section "Sparse features" of docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_section  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse as sp, torch
torch.set_num_threads(1)
from sklearn.feature_extraction.text import TfidfTransformer
from hraml_core import HRAML

rows, vocabulary, form, task = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = np.random.default_rng(0)
classes = rng.integers(0, 10, rows)
ranks = np.arange(1, vocabulary + 1, dtype=np.float64)
weights = 1.0 / ranks ** 1.1
# each class prefers its own shifted slice of the vocabulary
shift = rng.permutation(vocabulary)
indptr, indices = [0], []
for c in classes:
    words = rng.choice(vocabulary, size=60, p=weights / weights.sum())
    words = np.where(rng.random(60) < 0.5, shift[(words + 997 * (c + 1)) % vocabulary], words)
    indices.extend(words)
    indptr.append(len(indices))
counts = sp.csr_matrix((np.ones(len(indices)), np.asarray(indices), np.asarray(indptr)), shape=(rows, vocabulary))
counts.sum_duplicates()
X = TfidfTransformer().fit_transform(counts).astype(np.float32).tocsr()
if task == "multilabel":
    Y = np.zeros((rows, 10), dtype=np.int64)
    Y[np.arange(rows), classes] = 1
    Y[np.arange(rows), (classes + 1 + rng.integers(0, 9, rows)) % 10] = 1
else:
    Y = classes
if form == "dense":
    X = X.toarray()
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
t = time.perf_counter()
model = HRAML(max_epochs=1, random_state=0).fit(X, Y)
fit_s = time.perf_counter() - t
t = time.perf_counter()
Z = model.transform(X)
transform_s = time.perf_counter() - t
print(json.dumps({"fit_s": fit_s, "rows_per_s": rows / fit_s, "transform_s": transform_s, "steps": model.n_steps_,
                  "nnz_per_row": float(X.nnz / rows) if sp.issparse(X) else None,
                  "output": type(Z).__name__, "output_shape": list(Z.shape),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "rss_after_data_gb": rss_data}))
"""


def measure(rows: int, vocabulary: int, form: str, task: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(vocabulary), form, task], capture_output=True,
                         text=True, check=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--vocabulary", type=int, default=20000)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import os

    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    results = {}
    for task in ("classification", "multilabel"):
        for form in ("sparse", "dense"):
            results[task, form] = r = measure(args.rows, args.vocabulary, form, task)
            print(task, form, r, flush=True)
    lines = [
        f"`python bench/bench_sparse.py --rows {args.rows} --vocabulary {args.vocabulary}{' --write' if args.write else ''}`; "
        f"{machine()}, one torch thread; load average at start {load}.",
        "",
        f"A synthetic bag of words: {args.rows:,} documents, {args.vocabulary:,} words, about "
        f"{results['classification', 'sparse']['nnz_per_row']:.0f} distinct words a document, TF-IDF (float32). "
        "`HRAML(random_state=0).fit` for one epoch with the defaults on the CSR matrix and on the same matrix "
        "made dense, each in a fresh process (peak RSS: the process's own, data included). Label sets use the "
        "task's defaults (an input skip: `transform` returns CSR for sparse input).",
        "",
        "| task | form | fit, one epoch (s) | rows/s | transform (s) | output | peak RSS (GB) | data loaded (GB) |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for (task, form), r in results.items():
        lines.append(f"| {task} | {form} | {r['fit_s']:.1f} | {r['rows_per_s']:,.0f} | {r['transform_s']:.2f} | "
                     f"{r['output']} {r['output_shape'][0]:,} x {r['output_shape'][1]:,} | {r['peak_rss_gb']:.2f} | "
                     f"{r['rss_after_data_gb']:.2f} |")
    lines += ["", "| task | rows/s sparse / dense | peak RSS sparse / dense |", "|---|---:|---:|"]
    for task in ("classification", "multilabel"):
        s, d = results[task, "sparse"], results[task, "dense"]
        lines.append(f"| {task} | {s['rows_per_s'] / d['rows_per_s']:.2f} | {s['peak_rss_gb'] / d['peak_rss_gb']:.2f} |")
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("Sparse features", body)


if __name__ == "__main__":
    main()
