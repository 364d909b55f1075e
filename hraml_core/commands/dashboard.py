"""``hraml dashboard``: run the live Streamlit dashboard (the ``hraml_dashboard`` package's app.py).

``--runs DIR`` is the folder whose runs the Runs page lists and where the Train page records its
runs (passed to the app as ``$HRAML_RUNS_DIR``; default ``./runs``).

The dashboard installs with the project as the package ``hraml_dashboard`` (its source is the
``dashboard/`` folder of the repository), with the ``dashboard`` extra's dependencies. It is found
through the import system without being imported: the library never imports the UI.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from . import CommandError

#: Flags that keep the page fast (see ../shared/reference/PLATFORM.md): no full GC after every
#: script / fragment run, no file watcher, no browser opened by the server.
STREAMLIT_FLAGS = (
    "--runner.postScriptGC", "false",
    "--server.fileWatcherType", "none",
    "--server.headless", "true",
    "--browser.gatherUsageStats", "false",
    "--client.toolbarMode", "minimal",
    # The sidebar takes its values from a link (st.session_state set before the widgets are drawn):
    # intended, so Streamlit's warning about a widget's default being overridden is noise.
    "--global.disableWidgetStateDuplicationWarning", "true",
)


#: Upload limit (MB) when --max-upload-mb is not given: Streamlit's own default. An upload is held in
#: the server's memory; larger files belong in the data directory (read in blocks from there).
DEFAULT_MAX_UPLOAD_MB = 200


def app_path() -> Path | None:
    """The dashboard's app.py, or None when the package is not installed."""
    spec = importlib.util.find_spec("hraml_dashboard")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "app.py"


def streamlit_command(port: int | None = None, address: str | None = None,
                      max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> list[str]:
    """The ``streamlit run`` command line for the dashboard."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path()), *STREAMLIT_FLAGS,
           "--server.maxUploadSize", str(int(max_upload_mb))]
    if port is not None:
        cmd += ["--server.port", str(port)]
    if address:
        cmd += ["--server.address", address]
    return cmd


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="open the live dashboard (Streamlit): train and watch the embedding as it learns",
        description="Run `streamlit run dashboard/app.py` with the flags that keep the page live. "
                    "Open the printed URL in a browser.",
    )
    p.add_argument("--port", type=int, default=None, help="port to serve on (Streamlit's default: 8501)")
    p.add_argument("--address", default=None, help="address to bind (default: Streamlit's, all interfaces)")
    p.add_argument("--data-dir", default=None, help="data directory with file-based datasets (default: "
                                                    "$HRAML_DATA_DIR, else datasets/files)")
    p.add_argument("--max-training", type=int, default=None, metavar="N",
                   help="sessions (and baseline fits) that train at once on this server; a Start beyond it "
                        "waits in line (default: $HRAML_DASHBOARD_MAX_TRAINING, else 3 per CPU core)")
    p.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest file the page accepts as an upload (default {DEFAULT_MAX_UPLOAD_MB}); an upload is "
                        "held in the server's memory: put larger files in the data directory, whose CSV and Parquet "
                        "files are read in blocks at any size")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="folder of run directories: the Runs page lists every run under it (written by the dashboard, "
                        "hraml train --out, HRAML(log_dir=) or torchrun --out), and the Train page records its runs "
                        "there (default: $HRAML_RUNS_DIR, else ./runs; created when needed)")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..runs.root import RUNS_ENV  # the variable the app reads its runs folder from

    app = app_path()
    if app is None or not app.is_file():
        raise CommandError(f"the dashboard is not installed (no hraml_dashboard/app.py{f' at {app}' if app else ''}): "
                           "pip install 'hraml-explorer[dashboard]'")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise CommandError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_upload_mb < 1:
        raise CommandError(f"--max-upload-mb must be at least 1, got {args.max_upload_mb}")
    if importlib.util.find_spec("streamlit") is None:  # looked up, not imported: the library never imports the UI
        raise CommandError("the dashboard needs Streamlit: pip install 'hraml-explorer[dashboard]'")
    if args.max_training is not None and args.max_training < 1:
        raise CommandError(f"--max-training must be at least 1, got {args.max_training}")
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # the app also limits BLAS to one thread itself
    if args.max_training is not None:
        env["HRAML_DASHBOARD_MAX_TRAINING"] = str(args.max_training)  # read by hraml_dashboard.budget
    if args.data_dir:
        data_dir = Path(args.data_dir).expanduser()
        if not data_dir.is_dir():
            raise CommandError(f"--data-dir {data_dir} is not a directory")
        env["HRAML_DATA_DIR"] = str(data_dir.resolve())
    if args.runs:
        runs = Path(args.runs).expanduser()
        if runs.exists() and not runs.is_dir():
            raise CommandError(f"--runs {runs} is not a directory")
        env[RUNS_ENV] = str(runs.resolve())
    cmd = streamlit_command(args.port, args.address, args.max_upload_mb)
    if args.dry_run:
        prefix = "".join(f"{k}={env[k]} " for k, given in (("HRAML_DATA_DIR", args.data_dir), (RUNS_ENV, args.runs)) if given)
        if args.max_training is not None:
            prefix += f"HRAML_DASHBOARD_MAX_TRAINING={args.max_training} "
        print(prefix + " ".join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # replaces this process; does not return
    return 0  # pragma: no cover
