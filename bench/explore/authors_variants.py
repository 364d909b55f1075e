"""Exploration (seed 1 only): variants of the authors' preset, first N folds, hraml and raw.

    python bench/explore/authors_variants.py binalpha,uspst 3 '{"preset": {}, "lr0.01": {"lr": 0.01}}'

Each variant is a dict of changes to hraml_core.protocol.AUTHORS_HRAML (``"_pre"``: another
preprocessing). Prints the mean kNN accuracy (or MLkNN average precision) and the epochs chosen
per fold. docs/RESULTS.md, "The authors' protocol during development", has what it printed.
"""
import json
import sys
import time

from hraml_core.data import load_dataset
from hraml_core.protocol import AUTHORS_CANDIDATES, Candidate, cross_validate, get_protocol, summarize

names, folds, variants = sys.argv[1].split(","), int(sys.argv[2]), json.loads(sys.argv[3])
for name in names:
    ds = load_dataset(name, data_dir="../shared/data")
    base = AUTHORS_CANDIDATES[ds.task][0]
    for label, change in variants.items():
        change = dict(change)
        pre = change.pop("_pre", base.preprocessing)
        config = get_protocol("authors", seed=1, candidates=(Candidate(pre, {**base.params, **change}, "v"),))
        t0 = time.process_time()
        results = cross_validate(ds, ["hraml", "raw"], config, max_folds=folds)
        means = {(r["method"], r["metric"]): round(r["mean"], 4) for r in summarize(results)
                 if r["metric"] in ("accuracy", "average_precision")}
        epochs = [r.chosen.split("@")[1] for r in results if r.method == "hraml"]
        print(name, f"{label:28s}", means, epochs, f"{time.process_time() - t0:.0f} s CPU", flush=True)
