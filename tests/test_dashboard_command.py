"""`hraml dashboard`: the streamlit command line it runs (without starting a server)."""

from hraml_core.cli import build_parser, main
from hraml_core.commands import dashboard


def test_command_has_the_live_flags(capsys, tmp_path):
    assert main(["dashboard", "--dry-run", "--port", "8765", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"HRAML_DATA_DIR={tmp_path.resolve()}" in out
    for flag in ("--runner.postScriptGC false", "--server.fileWatcherType none", "--server.headless true",
                 "--server.port 8765", "streamlit run", "dashboard/app.py"):
        assert flag in out


def test_parser_and_user_errors(capsys, tmp_path):
    args = build_parser().parse_args(["dashboard", "--port", "9000"])
    assert args.port == 9000 and args.func is dashboard.run
    assert main(["dashboard", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["dashboard", "--port", "0"]) == 2
    assert main(["dashboard", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb must be at least 1" in capsys.readouterr().err


def test_upload_limit_reaches_streamlit(capsys):
    assert main(["dashboard", "--dry-run", "--max-upload-mb", "50"]) == 0
    assert "--server.maxUploadSize 50" in capsys.readouterr().out
    assert "--server.maxUploadSize 200" in " ".join(dashboard.streamlit_command())  # Streamlit's default, stated


def test_streamlit_command():
    cmd = dashboard.streamlit_command(8501, "127.0.0.1")
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    assert cmd[-4:] == ["--server.port", "8501", "--server.address", "127.0.0.1"]


def test_runs_folder_is_passed_to_the_app(capsys, tmp_path):
    assert main(["dashboard", "--dry-run", "--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"HRAML_RUNS_DIR={(tmp_path / 'runs').resolve()} ")  # created by the app when it records
    (tmp_path / "file").write_text("x")
    assert main(["dashboard", "--runs", str(tmp_path / "file")]) == 2
    assert "--runs" in capsys.readouterr().err
