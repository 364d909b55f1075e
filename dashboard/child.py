"""How the dashboard runs work in another process (the UMAP frames, the baseline fits).

A child is a plain ``python -c "<call>"`` process holding one end of a
:func:`multiprocessing.Pipe`; messages are pickled and framed by
:class:`multiprocessing.connection.Connection`. Not multiprocessing's process start methods: under
Streamlit ``__main__`` is the app script, and spawn (or forkserver) would run that script again in
the child, page and all; fork is out too, the server holds torch and threads. Only the pipe's
framing is borrowed.

The parent's end closing (the parent ended, even killed outright) makes the child's ``recv``
raise ``EOFError``: the child's cue to exit.

This module imports only the standard library: a child loads it before anything heavy.
"""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from multiprocessing.connection import Connection

#: The environment variable that tells a child which file descriptor is its end of the pipe.
FD_VARIABLE = "HRAML_CHILD_FD"
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
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", call],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(fd,), env=env,
        )
    finally:
        child_end.close()  # the child holds its own copy; ours would keep the pipe open forever
    return proc, parent_end


def connection() -> Connection:
    """In the child: its end of the pipe."""
    return Connection(int(os.environ[FD_VARIABLE]))


def end(proc: subprocess.Popen | None, conn: Connection | None = None, grace: float = 1.0) -> None:
    """Close the pipe (a child waiting on it takes that as its cue to exit), give the child
    ``grace`` seconds, then terminate it, then kill it; it is reaped either way."""
    if conn is not None:
        conn.close()
    if proc is None:
        return
    for stop in (None, proc.terminate, proc.kill):
        if stop is not None:
            stop()
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
