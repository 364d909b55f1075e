"""Child processes of the test process, read from /proc (the dashboard starts plain ``python -c``
children, which ``multiprocessing.active_children()`` does not know)."""
import os
from pathlib import Path


def children(marker: str) -> list[int]:
    """Pids of this process's live children whose command line contains ``marker``."""
    pids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    found = []
    for pid in sorted(pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if marker in cmd and state != "Z":
            found.append(pid)
    return found


def baseline_children() -> list[int]:
    return children("dashboard.baseline_process")
