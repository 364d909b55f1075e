"""``hraml runs``: the recorded runs under a folder, and where ``hraml train`` puts them by default."""
from __future__ import annotations

import json

from run_factory import make_run

from hraml_core.cli import main


def test_runs_lists_each_run_with_its_state_and_last_metric(tmp_path, capsys, monkeypatch):
    make_run(tmp_path / "digits-l1", snapshots=3, every=10, relation="l1", dataset="digits")
    live = make_run(tmp_path / "class" / "iris-live", snapshots=2, every=5, relation="jaccard", finish=False)
    (tmp_path / "notes").mkdir()  # not a run: not listed
    try:
        assert main(["runs", str(tmp_path)]) == 0
    finally:
        live.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2 runs under {tmp_path}"
    assert lines[1].split() == ["NAME", "STATUS", "TASK", "DATASET", "RELATION", "STEP", "LOSS", "METRIC", "UPDATED"]
    first, second = (line.split() for line in lines[2:])
    assert first[:5] == ["class/iris-live", "running", "classification", "iris", "jaccard"]  # being written
    assert second[:6] == ["digits-l1", "finished", "classification", "digits", "l1", "20"] and second[7] == "accuracy"
    assert second[-2:] == ["s", "ago"]

    assert main(["runs", str(tmp_path), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["status"], r["step"]) for r in records] == [("class/iris-live", "stopped", 5),
                                                                      ("digits-l1", "finished", 20)]

    monkeypatch.setenv("HRAML_RUNS_DIR", str(tmp_path / "class"))  # the default folder
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.startswith(f"1 run under {tmp_path / 'class'}")


def test_a_damaged_run_is_named_and_an_older_model_folder_is_left_out(tmp_path, capsys):
    make_run(tmp_path / "good", snapshots=2, every=5)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "run.json").write_text('{"format": "hraml-run/1", "name": ')  # cut short
    older = tmp_path / "older"
    older.mkdir()
    (older / "run.json").write_text(json.dumps({"dataset": "digits", "metrics": {}}))  # an earlier hraml's model folder
    assert main(["runs", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"1 run under {tmp_path}" and [line.split()[0] for line in lines[2:]] == ["good"]
    assert err.splitlines() == [f"hraml runs: warning: {damaged}: run.json could not be read: "
                                "Expecting value: line 1 column 35 (char 34)"]  # the end of the text


def test_runs_of_an_empty_or_missing_folder(tmp_path, capsys, monkeypatch):
    assert main(["runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no runs under {tmp_path}\n"
    assert main(["runs", str(tmp_path / "nothing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    monkeypatch.setenv("HRAML_RUNS_DIR", str(tmp_path / "nothing"))
    assert main(["runs"]) == 2
    assert "(set $HRAML_RUNS_DIR, or give ROOT)" in capsys.readouterr().err


def test_train_records_into_the_runs_folder_and_a_refused_fit_is_a_failed_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HRAML_RUNS_DIR", str(tmp_path / "class"))
    assert main(["train", "--dataset", "iris", "--epochs", "1"]) == 0
    assert capsys.readouterr().out.endswith("saved to class/iris/\n")
    tiny = tmp_path / "tiny.csv"  # two rows: one to train on, which HRAML refuses after the run was prepared
    tiny.write_text("a,b,y\n1,2,0\n3,4,1\n")
    assert main(["train", "--dataset", str(tiny), "--epochs", "1"]) == 2
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    records = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["iris"]["status"] == "finished"
    assert records["tiny"]["status"] == "failed" and "minimum of 2" in records["tiny"]["message"]
