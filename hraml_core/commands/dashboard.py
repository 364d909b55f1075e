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
#: The app reads the runs folder from here (hraml_dashboard.run_store.RUNS_ENV).
RUNS_ENV = "HRAML_RUNS_DIR"


def app_path() -> Path | None:
    """The dashboard's app.py, or None when the package is not installed."""
    spec = importlib.util.find_spec("hraml_dashboard")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "app.py"


def streamlit_command(port: int | None = None, address: str | None = None) -> list[str]:
    """The ``streamlit run`` command line for the dashboard."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path()), *STREAMLIT_FLAGS]
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
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="folder of run directories: the Runs page lists every run under it (written by the dashboard, "
                        "hraml train --out, HRAML(log_dir=) or torchrun --out), and the Train page records its runs "
                        "there (default: $HRAML_RUNS_DIR, else ./runs; created when needed)")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.set_defaults(func=run)


def run(args) -> int:
    app = app_path()
    if app is None or not app.is_file():
        raise CommandError(f"the dashboard is not installed (no hraml_dashboard/app.py{f' at {app}' if app else ''}): "
                           "pip install 'hraml-explorer[dashboard]'")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise CommandError(f"--port must be between 1 and 65535, got {args.port}")
    if importlib.util.find_spec("streamlit") is None:  # looked up, not imported: the library never imports the UI
        raise CommandError("the dashboard needs Streamlit: pip install 'hraml-explorer[dashboard]'")
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # the app also limits BLAS to one thread itself
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
    cmd = streamlit_command(args.port, args.address)
    if args.dry_run:
        prefix = "".join(f"{k}={env[k]} " for k, given in (("HRAML_DATA_DIR", args.data_dir), (RUNS_ENV, args.runs)) if given)
        print(prefix + " ".join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # replaces this process; does not return
    return 0  # pragma: no cover
