"""The server-wide part of the dashboard: admission queue, sessions kept by their link for a grace
period, children that die or outlive their parent, stopping everything (no Streamlit, no browser;
the SIGTERM of a real server is in test_browser.py)."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from hraml_core.data import load_dataset
from hraml_core.scheduler import CpuShare
from hraml_core.training import TrainConfig
from hraml_dashboard import budget, server
from hraml_dashboard.prepare import prepare_dataset
from hraml_dashboard.state import Session, Settings
from hraml_dashboard.umap_process import UmapService
from support import baseline_children, children, wait_for


def _train_threads():
    return [t for t in threading.enumerate() if "train" in t.name and t.is_alive()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --------------------------------------------------------------------------------------------------
# the admission queue alone
# --------------------------------------------------------------------------------------------------
class Job:
    """A job for the admission: records when it is admitted; ``ok`` says whether it starts."""

    def __init__(self, name, log, ok=True):
        self.name, self.log, self.ok, self.running = name, log, ok, False

    def on_admit(self):
        self.log.append(self.name)
        self.running = self.ok
        return self.ok

    def alive(self):
        return self.running


def test_admission_serves_the_queue_in_order():
    adm = budget.Admission(2)
    log = []
    jobs = {n: Job(n, log) for n in "abcde"}
    assert [adm.request(n, j.on_admit, j.alive) for n, j in jobs.items()] == [0, 0, 1, 2, 3]
    assert adm.active() == ["a", "b"] and adm.queued() == ["c", "d", "e"] and log == []
    assert adm.request("d", jobs["d"].on_admit) == 2  # asking again keeps the place
    adm.release("d")  # a queued job that goes away leaves the line
    assert adm.queued() == ["c", "e"] and adm.position("e") == 2
    adm.release("a")
    assert log == ["c"] and adm.active() == ["b", "c"] and adm.position("e") == 1 and adm.position("c") == 0
    adm.release("a")  # idempotent
    assert adm.active() == ["b", "c"]
    adm.set_limit(3)
    assert log == ["c", "e"] and adm.queued() == [] and adm.position("zzz") is None


def test_a_job_that_does_not_start_passes_its_slot_on():
    adm = budget.Admission(1)
    log = []
    a, b, c = Job("a", log), Job("b", log, ok=False), Job("c", log)
    for j in (a, b, c):
        adm.request(j.name, j.on_admit, j.alive)
    adm.release("a")
    assert log == ["b", "c"] and adm.active() == ["c"]


def test_a_job_that_ended_by_itself_frees_its_slot_without_a_release():
    adm = budget.Admission(1, sweep_s=0.01)
    log = []
    a, b = Job("a", log), Job("b", log)
    a.running = True
    assert adm.request("a", a.on_admit, a.alive) == 0
    assert adm.request("b", b.on_admit, b.alive) == 1
    a.running = False  # e.g. a trainer that failed: nobody calls release
    assert adm.wait_until(lambda s: s.active() == ["b"], 10)  # the sweeper thread found it
    assert log == ["b"]


def test_limits_and_intervals():
    assert budget.default_limit(2) == 6 and budget.default_limit(1) == 3
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="training limit"):
            budget.Admission(bad)
    assert budget.refresh_interval(1) == budget.refresh_interval(2) == pytest.approx(0.45)
    assert budget.refresh_interval(6) == pytest.approx(1.35)
    assert budget.refresh_interval(100) == pytest.approx(1.9)  # never below 0.5 Hz


def test_views_of_runs_refresh_less_often_as_they_grow_but_at_least_once_a_second():
    assert budget.view_interval(0) == budget.view_interval(4) == pytest.approx(0.5)
    assert budget.view_interval(5) == pytest.approx(0.625)  # 0.5 x 5 / 4
    assert budget.view_interval(30) == budget.view_interval(1000) == pytest.approx(0.8)  # a class: 1.25 Hz each


def test_a_view_is_drawn_anew_only_when_its_refresh_starts_stops_or_moves_by_a_third():
    assert budget.interval_moved(None, 0.5) and budget.interval_moved(0.5, None) and not budget.interval_moved(None, None)
    assert not budget.interval_moved(0.5, 0.625)  # one more watcher: no page is drawn anew for it
    assert budget.interval_moved(0.5, 0.8) and budget.interval_moved(0.8, 0.3)  # a class arrived; play started


def test_presence_counts_the_views_seen_within_its_window():
    now = [100.0]
    views = budget.Presence(window_s=3.0, clock=lambda: now[0])
    views.seen("a")
    views.seen("b")
    assert views.count() == 2
    now[0] += 2.0
    views.seen("a")
    now[0] += 1.5  # b last seen 3.5 s ago, a 1.5 s ago
    assert views.count() == 1
    views.gone("a")
    views.gone("never seen")
    assert views.count() == 0


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(budget.LIMIT_VARIABLE, "4")
    assert budget.env_number(budget.LIMIT_VARIABLE, 9) == 4
    for bad in ("0", "x", "-3"):
        monkeypatch.setenv(budget.LIMIT_VARIABLE, bad)
        with pytest.raises(ValueError, match=budget.LIMIT_VARIABLE):
            budget.env_number(budget.LIMIT_VARIABLE, 9)
    monkeypatch.delenv(budget.LIMIT_VARIABLE)
    assert budget.env_number(budget.LIMIT_VARIABLE, 9) == 9
    monkeypatch.setenv(server.GRACE_VARIABLE, "2.5")
    assert server.grace_from_env() == 2.5
    monkeypatch.setenv(server.GRACE_VARIABLE, "-1")
    with pytest.raises(ValueError, match=server.GRACE_VARIABLE):
        server.grace_from_env()
    with pytest.raises(ValueError, match="max_duty"):
        UmapService(max_duty=0)


# --------------------------------------------------------------------------------------------------
# sessions on a shared admission
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wine():
    return prepare_dataset(load_dataset("wine"))


@pytest.fixture
def make_session(monkeypatch, wine):
    """Sessions with a trainer built, on one admission of limit 1 and one CPU share."""
    monkeypatch.setenv("HRAML_DASHBOARD_UMAP", "0")
    adm, share = budget.Admission(1, sweep_s=0.05), CpuShare(slots=1, slice_s=0.01)
    made = []

    def make():
        s = Session(projection_interval_s=0.1, admission=adm, scheduler=share)
        config = TrainConfig(hidden=(16,), dim=8, batch_size=64)
        s.sync(Settings(("named", "wine", None), config, 60, 100), wine)
        made.append(s)
        return s

    make.admission = adm
    yield make
    for s in made:
        s.close()
    assert not _train_threads() and adm.active() == [] and adm.queued() == []
    assert not baseline_children()


def _moves(s, more=5, timeout=60):
    step = s.snapshot().step
    return wait_for(lambda: s.snapshot().step > step + more, timeout)


def test_a_start_beyond_the_limit_waits_and_starts_when_a_slot_frees(make_session):
    a, b, c = make_session(), make_session(), make_session()
    assert a.start() and a.training()
    assert not b.start() and b.queued and b.queue_position() == 1 and not b.training()
    assert not c.start() and c.queue_position() == 2
    assert b.needs_refresh()  # its page keeps refreshing to show the place and the start
    b.close()  # a queued session that closes leaves the line
    assert c.queue_position() == 1
    a.pause()  # a paused run gives its slot back: the next in line starts by itself
    assert wait_for(c.training, 30) and not c.queued and c.queue_position() is None
    assert _moves(c)
    a.start()  # Resume: now it waits
    assert a.queue_position() == 1 and a.snapshot().status == "paused"
    c.stop()
    assert wait_for(a.training, 30) and _moves(a)
    a.reset()  # a reset gives the slot back too
    assert make_session.admission.active() == []


@pytest.mark.slow
def test_a_baseline_fit_waits_for_a_slot_like_training(make_session, wine):
    a = make_session()
    assert a.start()
    runner = a.baselines
    assert runner.fit("raml_krr", wine, a.settings.data_key)
    assert runner.results["raml_krr"].status == "queued" and runner.queue_position() == 1
    assert runner.busy() and runner.running() is None and not baseline_children()
    a.pause()
    assert wait_for(lambda: runner.results["raml_krr"].status == "done", 120)
    assert wait_for(lambda: make_session.admission.active() == [], 10)
    # cancelling a queued fit leaves the line
    a.start()
    assert runner.fit("raml_krr", wine, a.settings.data_key) and runner.queue_position() == 1
    runner.cancel()
    assert runner.results["raml_krr"].status == "cancelled" and not runner.busy()
    assert make_session.admission.queued() == []


def test_a_session_without_browser_pauses_and_gives_its_slot_back(make_session):
    a, b = make_session(), make_session()
    assert a.start()
    assert not b.start() and b.queued
    b.suspend()  # the queued one's browser went away: out of the line
    assert not b.queued and make_session.admission.queued() == []
    a.suspend()
    assert a.snapshot().status == "paused" and make_session.admission.active() == []
    a.wake()
    assert a.training() and _moves(a)
    b.wake()  # back in line
    assert b.queue_position() == 1


# --------------------------------------------------------------------------------------------------
# sessions by their link, with a grace period
# --------------------------------------------------------------------------------------------------
def test_a_reattach_within_the_grace_period_finds_the_same_training_session(make_session):
    reg = server.SessionRegistry(grace_s=3600, factory=make_session)
    first = reg.attach(None)
    s = first.session
    assert not first.reattached and not first.expired and reg.get(first.token) is s
    s.start()
    assert _moves(s)
    reg.detach(first.token)  # the tab closed or reloaded
    assert s.suspended and s.snapshot().status == "paused" and not s.closed
    again = reg.attach(first.token)
    assert again.session is s and again.reattached and not s.suspended
    assert s.training() and _moves(s)
    # two browsers on one link: the session is suspended only when both are gone
    reg.attach(first.token)
    reg.detach(first.token)
    assert not s.suspended and reg.attached(first.token) == 1


def test_after_the_grace_period_the_session_is_released(make_session):
    reg = server.SessionRegistry(grace_s=0.05, factory=make_session)
    att = reg.attach(None)
    att.session.start()
    reg.detach(att.token)
    assert wait_for(lambda: att.session.closed, 10) and reg.tokens() == []
    assert not _train_threads() and make_session.admission.active() == []
    late = reg.attach(att.token)  # the old link: a new session, and the page says so
    assert late.expired and late.token != att.token and late.session is not att.session


def test_without_grace_a_detach_releases_at_once(make_session):
    reg = server.SessionRegistry(grace_s=0, factory=make_session)
    att = reg.attach(None)
    reg.detach(att.token)
    assert att.session.closed and reg.tokens() == []
    with pytest.raises(ValueError, match="grace"):
        server.SessionRegistry(grace_s=-1)


def test_stop_all_ends_trainers_fits_and_the_umap_process(make_session, wine):
    sessions = [make_session() for _ in range(3)]
    make_session.admission.set_limit(4)  # three trainers and the fit
    for s in sessions:
        s.start()
    sessions[0].baselines.fit("lmnn", wine, sessions[0].settings.data_key)  # a slow fit
    assert wait_for(lambda: sessions[0].baselines.running() is not None and baseline_children(), 30)
    umap = UmapService(warm_up=False).start()
    assert umap.wait_ready(60) and _alive(umap.pid)
    pid = umap.pid
    assert server.stop_all(sessions, umap, deadline_s=20)
    assert all(s.closed for s in sessions) and not _train_threads()
    assert not baseline_children() and not _alive(pid)


# --------------------------------------------------------------------------------------------------
# children that die, or outlive their parent
# --------------------------------------------------------------------------------------------------
def test_a_killed_umap_process_is_reported_and_started_again():
    svc = UmapService(warm_up=False).start()
    try:
        assert svc.wait_ready(60)
        pid = svc.pid
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not _alive(pid), 10)
        Z = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
        with pytest.raises(RuntimeError, match="exit code -9.*restarting"):
            svc.fit(Z)
        assert svc.restarts == 1 and svc.pid != pid and svc.failed and "exit code -9" in svc.failed
        assert svc.wait_ready(60) and svc.state == "ready"
    finally:
        svc.close()
    assert svc.pid is None and not children("umap_process")
    with pytest.raises(RuntimeError):  # closed: no frame, and no process started again
        svc.fit(Z)
    assert svc.pid is None and svc.restarts == 1


def test_a_killed_baseline_process_is_reported(make_session, wine):
    a = make_session()
    runner = a.baselines
    assert runner.fit("lmnn", wine, a.settings.data_key)
    assert wait_for(lambda: runner.running() is not None and runner.running().pid is not None, 30)
    pid = runner.running().pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: runner.results["lmnn"].status == "failed", 30)
    assert "ended unexpectedly" in runner.results["lmnn"].message and "-9" in runner.results["lmnn"].message
    assert wait_for(lambda: make_session.admission.active() == [], 10)


def test_a_child_exits_when_its_parent_is_killed():
    code = ("import time; from hraml_dashboard import child; "
            "p, c = child.spawn('import time; from hraml_dashboard import child; child.connection(); time.sleep(600)'); "
            "print(p.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(parent.stdout.readline())
        assert _alive(grandchild) and os.getpgid(grandchild) == grandchild  # its own process group
        parent.kill()
        parent.wait(10)
        assert wait_for(lambda: not _alive(grandchild), 10)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


def test_the_command_passes_the_training_limit(capsys):
    from hraml_core.cli import main

    assert main(["dashboard", "--dry-run", "--max-training", "3"]) == 0
    assert "HRAML_DASHBOARD_MAX_TRAINING=3 " in capsys.readouterr().out
    assert main(["dashboard", "--dry-run", "--max-training", "0"]) == 2
    assert "--max-training" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the page (Streamlit's AppTest, no browser)
# --------------------------------------------------------------------------------------------------
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def page(monkeypatch):
    """AppTest pages on a fresh admission (limit 1) and registry; everything closed afterwards."""
    from streamlit.testing.v1 import AppTest

    from hraml_dashboard.state import close_all_sessions

    monkeypatch.setenv("HRAML_DASHBOARD_UMAP", "0")
    adm = budget.Admission(1, sweep_s=0.05)
    monkeypatch.setattr(budget, "_admission", adm)
    monkeypatch.setattr(server, "_registry", server.SessionRegistry(grace_s=3600))
    pages = []

    def new(token=None):
        at = AppTest.from_file(APP, default_timeout=60)
        if token:
            at.query_params[server.QUERY_KEY] = token
        pages.append(at)
        return at

    new.admission = adm
    yield new
    for s in server.registry().clear():
        s.close()
    close_all_sessions()
    assert not _train_threads() and adm.active() == []


def _metric(at, label):
    return {m.label: m.value for m in at.metric}[label]


def _until(at, cond, timeout=60):
    def ok():
        at.run()
        assert not at.exception, at.exception
        return cond()
    return wait_for(ok, timeout, every=0.3)


def test_the_page_shows_its_place_in_line_and_starts_by_itself(page, wine):
    blocker = Session(admission=page.admission)
    try:
        blocker.sync(Settings(("named", "wine", None), TrainConfig(hidden=(16,), dim=8), 60, 100), wine)
        assert blocker.start()
        at = page()
        at.run()
        at.button(key="start").click().run()
        assert not at.exception, at.exception
        assert _metric(at, "Status") == "queued #1"
        assert at.button(key="start").label == "Queued #1" and at.button(key="start").disabled
        assert any("place 1 in line" in i.value for i in at.info)
        assert not at.button(key="stop").disabled  # Stop leaves the line
        blocker.stop()
        assert _until(at, lambda: _metric(at, "Status") == "running")
        assert at.button(key="start").label == "Training…" and not any("in line" in i.value for i in at.info)
    finally:
        blocker.close()  # its projection thread too


def test_a_reload_reopens_the_run_with_its_settings(page):
    at = page()
    at.run()
    at.selectbox(key="relation").set_value("l2").run()
    at.button(key="start").click().run()
    assert _until(at, lambda: int(_metric(at, "Step").replace(",", "")) > 0)
    token = at.query_params[server.QUERY_KEY]
    token = token[0] if isinstance(token, list) else token
    session = server.registry().get(token)
    assert session is not None and session.trainer.config.relation == "l2"

    # a reload: the browser session ends (Streamlit releases its session-scoped resources; AppTest
    # gives every page the same session id, so this is done by hand), and a new one opens the address
    from streamlit.runtime.caching import clear_session_resource_cache

    clear_session_resource_cache("test session id")
    assert session.suspended and session.snapshot().status == "paused" and page.admission.active() == []
    again = page(token)
    again.run()
    assert not again.exception, again.exception
    assert int(_metric(again, "Step").replace(",", "")) > 0 and _metric(again, "Status") == "running"
    assert again.selectbox(key="relation").value == "l2"  # the widgets as they were
    assert not any("pending" in w.value.lower() or "Changed:" in w.value for w in again.warning)

    clear_session_resource_cache("test session id")
    gone = page("not-a-kept-token")  # an old link: a new session, and the page says so
    gone.run()
    assert any("has ended" in i.value for i in gone.info) and _metric(gone, "Step") == "0"
