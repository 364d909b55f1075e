"""Downloads and the ``hraml datasets`` CLI, against a loopback HTTP server (never the internet)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import http.server
import threading
import urllib.parse
import urllib.request

import pytest

from hraml_core.cli import main
from hraml_core.data import DatasetError, download_dataset, load_dataset, registry
from hraml_core.data import paths
from hraml_core.data.download import file_url

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SERVER_LIFETIME_S = 60  # a server stops by itself after this, whatever happens to the test


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """No test may reach the internet: urlopen refuses anything but a loopback address."""
    real = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        full = url.full_url if isinstance(url, urllib.request.Request) else url
        host = urllib.parse.urlsplit(full).hostname
        if host not in LOOPBACK:
            raise AssertionError(f"test tried to reach {full}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    monkeypatch.delenv(paths.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(paths.ENV_DATASETS_URL, raising=False)


@contextlib.contextmanager
def serve(directory):
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields (base_url, requested paths)."""
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    server.daemon_threads = True
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    stopper = threading.Timer(SERVER_LIFETIME_S, server.shutdown)
    stopper.daemon = True
    thread.start()
    stopper.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def shared_server(shared_data):
    with serve(shared_data) as (url, requested):
        yield url, requested


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.data
def test_download_verifies_caches_and_loads(shared_server, shared_data, tmp_path, capsys):
    url, requested = shared_server
    folder = download_dataset("emotions", data_dir=tmp_path, url_base=url, progress=True)
    assert folder == tmp_path / "emotions"
    for f in registry()["emotions"].files:
        assert sha256(folder / f.name) == f.sha256
    assert sorted(requested) == ["/emotions/emotions.orig.arff.gz", "/emotions/emotions.xml.gz"]
    assert not list(folder.glob(".*.part"))
    err = capsys.readouterr().err
    assert "emotions.orig.arff.gz" in err and "100%" in err  # the tqdm progress bar
    assert load_dataset("emotions", data_dir=tmp_path).shape == (593, 72, 6)

    # present with the right hash: not fetched again
    lines = []
    download_dataset("emotions", data_dir=tmp_path, url_base=url, progress=False, log=lines.append)
    assert len(requested) == 2
    assert all("already present, sha256 ok" in line for line in lines)

    # present with a wrong hash: fetched again and replaced
    (folder / "emotions.xml.gz").write_bytes(b"damaged")
    download_dataset("emotions", data_dir=tmp_path, url_base=url, progress=False, log=lines.append)
    assert requested[-1] == "/emotions/emotions.xml.gz" and len(requested) == 3
    assert sha256(folder / "emotions.xml.gz") == sha256(shared_data / "emotions" / "emotions.xml.gz")


@pytest.mark.data
def test_download_uses_the_env_url_and_data_dir(shared_server, tmp_path, monkeypatch):
    url, requested = shared_server
    monkeypatch.setenv("HRAML_DATASETS_URL", url + "/")
    monkeypatch.setenv("HRAML_DATA_DIR", str(tmp_path))
    download_dataset("flags", progress=False)
    assert requested == ["/flags/flags.orig.arff.gz", "/flags/flags.xml.gz"]
    assert load_dataset("flags").shape == (194, 19, 7)


def test_sha256_mismatch_deletes_the_partial_file(tmp_path):
    mirror = tmp_path / "mirror" / "flags"
    mirror.mkdir(parents=True)
    for f in registry()["flags"].files:
        (mirror / f.name).write_bytes(b"tampered content of " + f.name.encode())
    target = tmp_path / "data"
    with serve(tmp_path / "mirror") as (url, _):
        with pytest.raises(DatasetError) as err:
            download_dataset("flags", data_dir=target, url_base=url, progress=False)
    msg = str(err.value)
    expected = registry()["flags"].files[0].sha256
    got = hashlib.sha256(b"tampered content of flags.orig.arff.gz").hexdigest()
    assert "flags.orig.arff.gz: sha256 mismatch" in msg
    assert f"expected {expected}, got {got}" in msg
    assert list((target / "flags").iterdir()) == []  # no partial or temporary file left


def test_http_error_is_a_dataset_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as (url, requested):
        with pytest.raises(DatasetError, match=r"/SJAFFE/SJAFFE\.mat: download failed: HTTP 404"):
            download_dataset("SJAFFE", data_dir=tmp_path / "data", url_base=url, progress=False)
    assert requested == ["/SJAFFE/SJAFFE.mat"]
    assert list((tmp_path / "data" / "SJAFFE").iterdir()) == []


def test_unreachable_server_is_a_dataset_error(tmp_path):
    with serve(tmp_path) as (url, _):
        pass  # stopped: nothing listens on that port any more
    with pytest.raises(DatasetError, match="download failed"):
        download_dataset("SJAFFE", data_dir=tmp_path / "data", url_base=url, progress=False)


def test_embedded_and_unknown_names_cannot_be_downloaded(tmp_path):
    with pytest.raises(DatasetError, match="digits: is embedded"):
        download_dataset("digits", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="nope: unknown dataset"):
        download_dataset("nope", data_dir=tmp_path)


def test_origin_urls_come_from_the_registry(monkeypatch):
    spec = registry()["binalpha"]
    f = spec.files[0]
    assert file_url(spec, f) == f.url
    assert f.url.startswith("https://raw.githubusercontent.com/ma-xu/L21FS/")
    assert file_url(spec, f, "http://127.0.0.1:9/base/") == "http://127.0.0.1:9/base/binalpha/binaryalphadigs.mat"
    monkeypatch.setenv("HRAML_DATASETS_URL", "http://127.0.0.1:9/m")
    assert file_url(spec, f) == "http://127.0.0.1:9/m/binalpha/binaryalphadigs.mat"
    assert file_url(spec, f, "http://localhost:8/x") == "http://localhost:8/x/binalpha/binaryalphadigs.mat"


# -- the CLI ------------------------------------------------------------------------------------------------

def test_cli_list_marks_missing_sets(tmp_path, capsys):
    assert main(["datasets", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data directory: {tmp_path} (from --data-dir)" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line.startswith("*")}
    assert "embedded" in lines["digits"] and "1797 x 64, 10 classes" in lines["digits"]
    assert "multilabel" in lines["yeast"]
    assert "missing; run `hraml datasets download news20`" in lines["news20"]
    assert "3970 x 8014, 4 classes" in lines["news20"] and "mat" in lines["news20"]


@pytest.mark.data
def test_cli_list_shows_available_sets(shared_data, capsys, monkeypatch):
    monkeypatch.setenv("HRAML_DATA_DIR", str(shared_data))
    assert main(["datasets", "list", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "(from HRAML_DATA_DIR)" in out
    assert f"available at {shared_data / 'Yeast_alpha'}" in out
    # Every set the shared folder holds can be loaded, however many it holds.
    loadable, total = map(int, re.search(r"(\d+) of (\d+) datasets can be loaded", out).groups())
    assert "missing" not in out and "corrupt" not in out and loadable == total
    assert main(["datasets"]) == 0  # no action: the same list
    assert "(from HRAML_DATA_DIR)" in capsys.readouterr().out


@pytest.mark.data
def test_cli_download(shared_server, tmp_path, capsys):
    url, _ = shared_server
    assert main(["datasets", "download", "SJAFFE", "--data-dir", str(tmp_path), "--url-base", url]) == 0
    captured = capsys.readouterr()
    assert f"SJAFFE: ready in {tmp_path / 'SJAFFE'}" in captured.out
    assert "SJAFFE.mat" in captured.err  # progress bar
    assert main(["datasets", "download", "SJAFFE", "--data-dir", str(tmp_path), "--url-base", url, "--quiet"]) == 0
    assert "already present, sha256 ok" in capsys.readouterr().out
    assert main(["datasets", "list", "--data-dir", str(tmp_path)]) == 0
    assert f"available at {tmp_path / 'SJAFFE'}" in capsys.readouterr().out


def test_cli_download_errors_exit_2(tmp_path, capsys):
    assert main(["datasets", "download", "iris", "--data-dir", str(tmp_path)]) == 2
    assert "hraml datasets: error: iris is embedded" in capsys.readouterr().err
    assert main(["datasets", "download", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "nope: unknown dataset" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as (url, _):
        code = main(["datasets", "download", "flags", "--data-dir", str(tmp_path / "d"), "--url-base", url, "--quiet"])
    assert code == 2
    assert "download failed: HTTP 404" in capsys.readouterr().err


def test_cli_list_only_reads_the_data_dir(tmp_path):
    absent = tmp_path / "nowhere"
    assert main(["datasets", "list", "--data-dir", str(absent)]) == 0
    assert not absent.exists()
