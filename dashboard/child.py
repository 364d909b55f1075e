"""How the dashboard runs work in another process (the UMAP frames, the baseline fits).

A child is a plain ``python -c "<call>"`` process holding one end of a
:func:`multiprocessing.Pipe`; messages are pickled and framed by
:class:`multiprocessing.connection.Connection`. Not multiprocessing's process start methods: under
Streamlit ``__main__`` is the app script, and spawn (or forkserver) would run that script again in
the child, page and all; fork is out too, the server holds torch and threads. Only the pipe's
framing is borrowed.

The parent's end closing (the parent ended, even killed outright) makes the child's ``recv``
raise ``EOFError``: the child's cue to exit. A child busy elsewhere (compiling, fitting) would not
see that, so :func:`connection` also starts a thread that ends the child once its parent is gone.

Each child leads its own process group: the server ends it with whatever it started
(:func:`signal_group`, :func:`end`), and a terminal's Ctrl-C reaches only the server, which then
ends its children itself.

This module imports only the standard library: a child loads it before anything heavy.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

#: The environment variable that tells a child which file descriptor is its end of the pipe.
FD_VARIABLE = "HRAML_CHILD_FD"
#: ... and which process started it (a parent killed before the child looked would go unseen).
PARENT_VARIABLE = "HRAML_CHILD_PARENT"
#: One thread per BLAS / OpenMP / numba pool: on a small machine extra threads only spin, and the
#: training thread in the server keeps its speed.
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def spawn(call: str) -> tuple[subprocess.Popen, Connection]:
    """Start ``python -c call`` (e.g. ``"from hraml_dashboard.umap_process import serve; serve()"``)
    and return the process and the parent's end of its pipe."""
    parent_end, child_end = multiprocessing.Pipe(duplex=True)
    fd = child_end.fileno()
    env = dict(os.environ)
    env.update({var: "1" for var in ONE_THREAD})
    env[FD_VARIABLE] = str(fd)
    env[PARENT_VARIABLE] = str(os.getpid())
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", call],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(fd,), env=env, process_group=0,
        )
    finally:
        child_end.close()  # the child holds its own copy; ours would keep the pipe open forever
    return proc, parent_end


def connection() -> Connection:
    """In the child: its end of the pipe (and a watch that exits once the parent is gone)."""
    watch_parent()
    return Connection(int(os.environ[FD_VARIABLE]))


def watch_parent(every_s: float = 0.5) -> None:
    """In the child: a daemon thread that ends this process when its parent is gone (a parent
    killed outright leaves an orphan, re-parented: its parent pid changes)."""
    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())

    def watch():
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="hraml-parent-watch", daemon=True).start()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the child's process group (SIGCONT too, so a frozen child acts on it)."""
    for s in (sig, signal.SIGCONT):
        try:
            os.killpg(proc.pid, s)
        except (ProcessLookupError, PermissionError):  # gone (its group with it)
            return


def end(proc: subprocess.Popen | None, conn: Connection | None = None, grace: float = 1.0) -> None:
    """Close the pipe (a child waiting on it takes that as its cue to exit), give the child
    ``grace`` seconds, then terminate its process group, then kill it; it is reaped either way."""
    if conn is not None:
        conn.close()
    if proc is None:
        return
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            signal_group(proc, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
