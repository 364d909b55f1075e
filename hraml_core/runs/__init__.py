"""Run directories: what a training run leaves for the dashboard, a notebook or a colleague.

Every way of training writes one (the background Trainer with ``run_dir=``, ``HRAML(log_dir=...)``,
``hraml train --out DIR``, ``torchrun -m hraml_core.distributed --out DIR``); the format is in
docs/RUNS.md and :mod:`hraml_core.runs.format`.

    >>> from hraml_core.runs import open_run, list_runs
    >>> run = open_run("runs/digits")
    >>> run.scalars.plot(x="step", y="loss")          # a pandas DataFrame
    >>> snap = run.snapshot(run.snapshot_steps[-1])   # .A, .E, .embeddings, .labels...

"""
from .reader import Run, RunSnapshot, RunSummary, list_runs, open_run
from .recorder import Probe, RunRecorder, choose_probe
from .root import RUNS_ENV, runs_root
from .writer import RunWriter, prepare_run

__all__ = ["RUNS_ENV", "Probe", "Run", "RunRecorder", "RunSnapshot", "RunSummary", "RunWriter", "choose_probe",
           "list_runs", "open_run", "prepare_run", "runs_root"]
