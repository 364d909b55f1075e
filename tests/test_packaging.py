"""The package installs anywhere: a wheel built from this checkout, installed into a fresh
environment outside it, runs the command line and serves the dashboard from another directory."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment with the wheel installed. It sees this environment's packages
    (``--system-site-packages``: the dependencies, installed by README's command) but its own copy
    of the project comes first on its path."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the source: setuptools writes build/ and *.egg-info into the tree it builds.
    source = base / "source"
    top_level_clutter = {".git", ".venv", "build", "dist", "runs", "node_modules"}

    def ignore(folder, names):
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if Path(folder) == ROOT:
            skip |= top_level_clutter & set(names)
        elif Path(folder) == ROOT / "datasets":
            skip |= {"files"} & set(names)
        return skip

    shutil.copytree(ROOT, source, ignore=ignore)
    # The build backend installed here (setuptools) is used: no download of build requirements.
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(base / "dist"), str(source)], capture_output=True, text=True, cwd=base)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next((base / "dist").glob("hraml_explorer-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, cwd=base)
    work = base / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HRAML_DATA_DIR")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return python, work, env


def _run(cmd, installed, env=None, **kw):
    python, work, base_env = installed
    return subprocess.run(cmd, cwd=work, env=env or base_env, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_the_wheel_carries_the_library_the_manifest_and_the_dashboard(installed):
    python, work, _ = installed
    code = ("import hraml_core, hraml_dashboard, hraml_core.data.paths as p; "
            "print(hraml_core.__file__); print(hraml_dashboard.__file__); print(p.REGISTRY_PATH.is_file())")
    out = _run([str(python), "-c", code], installed, check=True).stdout.split()
    venv = str(python.parent.parent)
    assert out[0].startswith(venv) and out[1].startswith(venv), out  # not this checkout
    assert out[2] == "True"


@pytest.mark.slow
def test_the_installed_commands_run_outside_the_checkout(installed):
    listing = _run(["hraml", "datasets", "list"], installed)
    assert listing.returncode == 0, listing.stderr
    assert "digits" in listing.stdout and "binalpha" in listing.stdout  # embedded, and from the manifest
    train = _run(["hraml", "train", "--dataset", "digits", "--epochs", "2", "--out", "model"], installed)
    assert train.returncode == 0, train.stderr
    assert "accuracy" in train.stdout and (installed[1] / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_installed_dashboard_serves_and_its_page_runs(installed):
    python, work, env = installed
    app = _run([str(python), "-c", "from hraml_core.commands.dashboard import app_path; print(app_path())"],
               installed, check=True).stdout.strip()
    assert app.startswith(str(python.parent.parent)) and app.endswith("hraml_dashboard/app.py")
    # The page's script runs in the installed environment (headless, Streamlit's AppTest).
    check = ("from streamlit.testing.v1 import AppTest; at = AppTest.from_file(%r, default_timeout=120).run(); "
             "assert not at.exception, at.exception; print(at.title[0].value)") % app
    page = _run([str(python), "-c", check], installed, env={**env, "HRAML_DASHBOARD_UMAP": "0"})
    assert page.returncode == 0, page.stderr[-2000:]
    assert "HRAML Explorer" in page.stdout
    # `hraml dashboard` starts the server on the installed app; it answers its health check.
    port = free_port()
    server = subprocess.Popen(["hraml", "dashboard", "--port", str(port), "--address", "127.0.0.1"], cwd=work,
                              env={**env, "HRAML_DASHBOARD_UMAP": "0"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    return r.read() == b"ok"
            except OSError:
                return False

        assert wait_for(healthy, 120), "the installed dashboard never answered its health check"
    finally:
        server.terminate()
        server.wait(30)


def test_requirements_pin_torch_as_the_package_declares_it():
    """requirements.txt repeats torch's exact pin (any other torch is a multi-GB CUDA download here);
    it must say what pyproject.toml says, and otherwise install the project with all its extras."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.lstrip().startswith("#")]
    assert "torch==2.13.0" in lines and "torch==2.13.0" in declared
    assert [l for l in lines if l != "torch==2.13.0"] == ["-e .[all]"]
