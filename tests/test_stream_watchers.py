"""The benchmark's browserless watchers (bench/stream_watchers.py): what they read of Streamlit's
messages, when they ask for a refresh, and (slow) that they follow a live run through a real
server's watch link as a browser's page would."""
import asyncio
import sys
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from stream_watchers import CACHE_AGE, Watcher, WatcherPool  # noqa: E402


def _new_session(page: str = "p1", fragments=()) -> bytes:
    m = ForwardMsg()
    m.new_session.page_script_hash = page
    m.metadata.run.fragment_ids.extend(fragments)
    return m.SerializeToString()


def _auto_rerun(fragment: str, interval: float) -> bytes:
    m = ForwardMsg()
    m.auto_rerun.fragment_id, m.auto_rerun.interval = fragment, interval
    return m.SerializeToString()


def _metric(label: str, body: str) -> bytes:
    m = ForwardMsg()
    m.delta.new_element.metric.label, m.delta.new_element.metric.body = label, body
    return m.SerializeToString()


def _finished() -> bytes:
    m = ForwardMsg()
    m.script_finished = 1
    return m.SerializeToString()


def _large(digest: str, ref: bool = False) -> bytes:
    m = ForwardMsg()
    if ref:
        m.ref_hash = digest
    else:
        m.hash = digest
        m.metadata.cacheable = True
        m.delta.new_element.markdown.body = "x" * 100
    return m.SerializeToString()


class _Socket:
    """Collects what a watcher sends; ``sent`` is set at each message."""

    def __init__(self):
        self.messages, self.sent = [], asyncio.Event()

    async def send(self, data: bytes) -> None:
        msg = BackMsg()
        msg.ParseFromString(data)
        self.messages.append(msg)
        self.sent.set()


def test_a_watcher_reads_the_step_metric_and_counts_only_new_values():
    w = Watcher("http://h:1", "watch=r")
    for raw in (_metric("Step", "1,200"), _metric("Loss", "0.5"), _metric("Step", "1,200"), _metric("Step", "1,350")):
        w._read(raw)
    assert [s for _, s in w.changes] == [1200, 1350]
    t0, t1 = w.changes[0][0], w.changes[1][0]
    assert w.rate(t0, t1 + 1e-9) == pytest.approx(2 / (t1 + 1e-9 - t0))
    assert w.step() == 1350


def test_fragment_timers_follow_the_messages_and_wait_for_the_previous_run():
    async def scenario():
        w, sock = Watcher("http://h:1", "watch=r"), _Socket()
        w._ws = sock
        w._read(_new_session("page-a"))
        w._read(_auto_rerun("frag", 0.01))
        await asyncio.wait_for(sock.sent.wait(), 5)
        first = sock.messages[0].rerun_script
        assert (first.fragment_id, first.is_auto_rerun, first.page_script_hash, first.query_string) == \
               ("frag", True, "page-a", "watch=r")
        # the run it asked for has not finished: its ticks ask for nothing more
        sock.sent.clear()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sock.sent.wait(), 0.1)
        assert len(sock.messages) == 1
        w._read(_new_session("page-a", fragments=["frag"]))  # that fragment's run starts: timer kept
        w._read(_finished())
        await asyncio.wait_for(sock.sent.wait(), 5)
        assert len(sock.messages) == 2 and w.runs == 1
        w._read(_new_session("page-a"))  # a full run: the old timers go, the run sends its own
        assert not w._timers
        w._ws = None

    asyncio.run(scenario())


def test_a_client_presses_a_button_by_its_key_and_follows_the_address_the_page_writes():
    async def scenario():
        w, sock = Watcher("http://h:1", ""), _Socket()
        w._ws = sock
        m = ForwardMsg()
        m.delta.new_element.button.id = "$$ID-0123abcd-start"
        w._read(m.SerializeToString())
        info = ForwardMsg()
        info.page_info_changed.query_string = "session=tok"
        w._read(info.SerializeToString())
        await w.click("start")
        state = sock.messages[-1].rerun_script
        assert [(x.id, x.trigger_value) for x in state.widget_states.widgets] == [("$$ID-0123abcd-start", True)]
        assert state.query_string == "session=tok" and not state.fragment_id
        with pytest.raises(KeyError):
            await w.click("stop")  # never drawn
        w._ws = None

    asyncio.run(scenario())


def test_steps_per_second_read_the_values_shown_at_both_ends():
    w = Watcher("http://h:1", "")
    w.changes = [(10.0, 100), (11.0, 400), (12.5, 700)]
    assert w.steps_per_s(10.5, 12.0) == pytest.approx((400 - 100) / 1.5)
    assert w.steps_per_s(9.0, 13.0) == pytest.approx(700 / 4.0)  # nothing shown before the window: 0


def test_large_messages_are_held_and_named_back_as_the_frontend_does():
    w = Watcher("http://h:1", "q")
    w._read(_large("h1"))
    request = BackMsg()
    request.ParseFromString(w._rerun())
    assert list(request.rerun_script.cached_message_hashes) == ["h1"]
    w._read(_large("h1", ref=True))
    assert w.refs == 1
    for _ in range(CACHE_AGE + 1):  # runs that no longer use it: dropped, as the frontend's cache does
        w._read(_finished())
    request.ParseFromString(w._rerun())
    assert list(request.rerun_script.cached_message_hashes) == []


@pytest.mark.slow
def test_views_of_a_run_refresh_less_often_while_more_are_open(tmp_path):
    """The server's view budget (hraml_dashboard.budget.view_interval), end to end: the refresh
    interval the server sets for each watch page grows when more pages watch, and comes back when
    they close."""
    from hraml_dashboard import budget
    from live_server import LiveServer
    from run_factory import make_run
    from support import wait_for

    writer = make_run(tmp_path / "live", snapshots=3, every=10, finish=False)
    srv = LiveServer(env={"HRAML_RUNS_DIR": str(tmp_path), "HRAML_DASHBOARD_UMAP": "0"})
    pool = None
    few, many = budget.view_interval(2), budget.view_interval(6)
    assert (few, many) == (0.5, 0.75)
    try:
        srv.wait_healthy()
        pool = WatcherPool(srv.url, "watch=live")
        pool.add(2)
        first = list(pool.watchers)
        assert wait_for(lambda: all(w.refresh_interval() == few for w in first), 90), \
            [(w.refresh_interval(), w.errors) for w in first]
        pool.add(4)
        # every page ends within a third of the budget (a page that opened at 0.625 s is not redrawn
        # for 0.75 s); the two first pages, opened at 0.5 s, are drawn anew at 0.75 s
        assert wait_for(lambda: all(w.refresh_interval() == many for w in first)
                        and all(w.refresh_interval() in (budget.view_interval(5), many) for w in pool.watchers), 60), \
            [w.refresh_interval() for w in pool.watchers]
        pool.remove(4)  # four tabs close: once the server stops counting them, the two left speed up again
        assert wait_for(lambda: all(w.refresh_interval() == few for w in first), 60), \
            [w.refresh_interval() for w in first]
        assert not pool.errors()
    finally:
        if pool is not None:
            pool.close()
        srv.close()
        writer.finish()


@pytest.mark.slow
def test_watchers_follow_a_live_run_through_a_real_servers_watch_link(tmp_path):
    from live_server import LiveServer
    from run_factory import make_run
    from support import wait_for

    writer = make_run(tmp_path / "live", snapshots=3, every=10, finish=False)
    srv = LiveServer(env={"HRAML_RUNS_DIR": str(tmp_path), "HRAML_DASHBOARD_UMAP": "0"})
    pool = None
    try:
        srv.wait_healthy()
        pool = WatcherPool(srv.url, "watch=live")
        pool.add(2)
        assert wait_for(lambda: all(w.step() == 20 for w in pool.watchers), 90), \
            [(w.step(), w.errors) for w in pool.watchers]
        for step in range(21, 31):  # the writer goes on: each watcher's page shows the new step by itself
            writer.log(step, loss=1.0 / step)
        writer.flush()
        assert wait_for(lambda: all(w.step() == 30 for w in pool.watchers), 30), \
            [(w.step(), w.errors) for w in pool.watchers]
        assert all(len(w.changes) >= 2 for w in pool.watchers) and not pool.errors()
    finally:
        if pool is not None:
            pool.close()
        srv.close()
        writer.finish()
