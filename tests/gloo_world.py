"""Two gloo ranks kept alive across the distributed tests.

``torch.multiprocessing.spawn`` starts fresh interpreters for every test, and each of them imports
torch and the project again before it can join a process group: that start-up, not the work, was
most of those tests' time. :class:`GlooWorld` starts its rank processes once (spawned, like
``mp.spawn``'s) and runs each test's worker function on all of them, with the same call
(``fn(rank, *args)``), so the tests keep their own process groups (a new port each time).

Each call restores the rank's environment and closes any process group the function left open.
A call that fails or hangs on any rank ends every rank process: a rank stuck in a collective
cannot be told to stop, and the next call starts new ones.
"""
from __future__ import annotations

import multiprocessing
import os
import time
import traceback


def _serve(conn) -> None:
    """A rank process: run ``(fn, rank, args)`` messages until told to stop (``None``)."""
    import torch.distributed as dist

    while True:
        message = conn.recv()
        if message is None:
            return
        fn, rank, args = message
        environ = dict(os.environ)
        try:
            conn.send((True, fn(rank, *args)))
        except BaseException:  # noqa: BLE001 -- the test shows the rank's own traceback
            conn.send((False, traceback.format_exc()))
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
            os.environ.clear()
            os.environ.update(environ)


class GlooWorld:
    """``nprocs`` rank processes that run worker functions together, as ``mp.spawn`` would.

    ``timeout``: seconds a call may take on every rank before its processes are ended and the call
    fails.
    """

    def __init__(self, nprocs: int = 2, timeout: float = 180.0):
        self.nprocs, self.timeout = nprocs, timeout
        self._ranks: list[tuple[multiprocessing.Process, object]] = []

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        for _ in range(self.nprocs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="gloo-rank")
            proc.start()
            child.close()
            self._ranks.append((proc, parent))

    def spawn(self, fn, args: tuple = ()) -> list:
        """``fn(rank, *args)`` on every rank at once; their return values, by rank. An exception
        on any rank raises here with that rank's traceback."""
        if not self._ranks:
            self._start()
        for rank, (_, conn) in enumerate(self._ranks):
            conn.send((fn, rank, args))
        deadline = time.monotonic() + self.timeout
        results, failures = [None] * self.nprocs, []
        for rank, (proc, conn) in enumerate(self._ranks):
            # Once one rank has failed, the others get a short while to fail too: a rank waiting in
            # a collective for the failed one never answers.
            wait = max(0.0, deadline - time.monotonic()) if not failures else 10.0
            if not conn.poll(wait):
                failures.append(f"rank {rank}: no answer within {self.timeout if not failures else wait:g} s")
                continue
            try:
                ok, value = conn.recv()
            except EOFError:
                failures.append(f"rank {rank}: its process ended (exit code {proc.exitcode})")
                continue
            if ok:
                results[rank] = value
            else:
                failures.append(f"rank {rank}:\n{value}")
        if failures:
            self.close()
            raise AssertionError("\n".join(failures))
        return results

    def close(self) -> None:
        """End the rank processes (a later :meth:`spawn` starts new ones)."""
        for proc, conn in self._ranks:
            try:
                conn.send(None)
            except OSError:  # the process has gone already
                pass
        for proc, conn in self._ranks:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self._ranks = []
