import os
from pathlib import Path

import pytest
import torch

# One torch thread: on small machines a second one slows small steps down (../shared/reference/PLATFORM.md).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HRAML_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets of the paper (read-only); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data directory {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest runs the app as ``__main__`` and leaves it registered there; a later
    ``multiprocessing`` spawn (the distributed tests) would then re-run the app in each child."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def gloo():
    """Two gloo rank processes for a module's distributed tests (:class:`gloo_world.GlooWorld`):
    ``gloo.spawn(fn, args)`` in place of ``torch.multiprocessing.spawn(fn, args, nprocs=2)``."""
    from gloo_world import GlooWorld

    world = GlooWorld(nprocs=2)
    yield world
    world.close()


@pytest.fixture
def browser():
    """A headless Debian Chromium driven by Playwright (the browser tests skip where either is missing)."""
    from playwright.sync_api import sync_playwright

    from live_server import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _threads(part):
    import threading

    return [t for t in threading.enumerate() if part in t.name and t.is_alive()]


@pytest.fixture
def app(monkeypatch, tmp_path):
    """A fresh AppTest session of the dashboard; afterwards no trainer, projection thread or
    baseline process of it may be alive."""
    from streamlit.testing.v1 import AppTest

    from hraml_dashboard.state import close_all_sessions
    from support import baseline_children

    monkeypatch.setenv("HRAML_DASHBOARD_UMAP", "0")  # the UMAP process is tested on its own
    monkeypatch.setenv("HRAML_RUNS_DIR", str(tmp_path / "runs"))  # where the sessions record their runs
    before = set(_threads("train"))
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
    yield at
    close_all_sessions()
    for t in _threads("baseline"):
        t.join(30)
    left = [t.name for t in set(_threads("train")) - before] + [t.name for t in _threads("projection")]
    assert not left, f"threads left running: {left}"
    assert not baseline_children(), "a baseline process was left running"
