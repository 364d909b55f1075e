"""Worker processes of the dashboard: a plain ``python -c`` child talking length-prefixed pickles.

Used by the UMAP service (``projection.py``) and the baseline fits (``baseline_process.py``). Not
multiprocessing: under Streamlit ``__main__`` is the app script, and multiprocessing's spawn (or
forkserver) would run that script again in the child, page and all; fork is out too, the server
holds torch and threads. The parent writes requests to the child's stdin and reads answers from its
stdout; the child's prints go to stderr. The child's stdin closing means the parent is gone.

This module imports only the standard library: a child loads it before anything heavy.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: One thread per BLAS / OpenMP / numba pool: on a small machine extra threads only spin, and the
#: training thread in the server keeps its speed.
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def spawn(call: str) -> subprocess.Popen:
    """Start ``python -c "from dashboard.<...> import ...; <call>"`` with pipes on stdin and stdout.

    ``call`` is the code to run, e.g. ``"from dashboard.projection import serve; serve()"``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({var: "1" for var in ONE_THREAD})
    return subprocess.Popen(
        [sys.executable, "-c", call],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
        close_fds=True,
    )


def end(proc: subprocess.Popen | None, grace: float = 1.0) -> None:
    """Close ``proc``'s pipes (a child that reads its stdin takes that as its cue to exit), give it
    ``grace`` seconds, then terminate it, then kill it; it is reaped either way."""
    if proc is None:
        return
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except Exception:  # already closed, or a broken pipe while flushing
            pass
    for stop in (None, proc.terminate, proc.kill):
        if stop is not None:
            stop()
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass


def streams():
    """In the child: (out, inp), binary streams for the protocol; fd 1 then points at stderr, so
    that whatever a library prints cannot corrupt the answers."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb")
    return out, inp


def _read_exact(f, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            raise EOFError("pipe closed")
        buf += chunk
    return bytes(buf)


def send(f, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


def recv(f):
    """The next message; ``EOFError`` when the other side has closed the pipe (or ended)."""
    (n,) = struct.unpack("<Q", _read_exact(f, 8))
    return pickle.loads(_read_exact(f, n))
