import os
from pathlib import Path

import pytest
import torch

# One torch thread: on this 2-vCPU machine two threads make small steps 10-100x slower.
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
