"""The CPU share of training threads (hraml_core.scheduler): order, slices, slots, cancelling.

Deterministic: a fake clock decides when a slice is used up, and threads line up through the
share's own condition (``wait_until``), never through sleeps.
"""
import threading

import numpy as np
import pytest

from hraml_core.scheduler import CpuShare
from hraml_core.trainer import Trainer
from hraml_core.training import TrainConfig
from support import wait_for


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        with self._lock:
            self.t += dt


def _start(target, *args) -> threading.Thread:
    th = threading.Thread(target=target, args=args, daemon=True)
    th.start()
    return th


def test_busy_members_take_turns_in_arrival_order():
    clock = FakeClock()
    share = CpuShare(slots=1, slice_s=1.0, clock=clock)
    go = threading.Event()
    log: list[str] = []

    def member(name):
        turn = share.turn(name)
        for _ in range(4):
            assert turn.acquire()
            go.wait()
            log.append(name)
            clock.advance(1.0)  # one slice of work
            turn.checkpoint()
        turn.release()

    threads = [_start(member, "a")]
    assert share.wait_until(lambda s: s.holders() == ["a"], 10)
    threads.append(_start(member, "b"))
    assert share.wait_until(lambda s: s.waiting() == ["b"], 10)
    threads.append(_start(member, "c"))
    assert share.wait_until(lambda s: s.waiting() == ["b", "c"], 10)
    go.set()
    for th in threads:
        th.join(10)
    assert "".join(log) == "abc" * 4
    assert share.holders() == [] and share.waiting() == []


def test_a_member_keeps_its_turn_until_its_slice_is_used_and_someone_waits():
    clock = FakeClock()
    share = CpuShare(slots=1, slice_s=0.05, clock=clock)
    a = share.turn("a")
    assert a.acquire()
    clock.advance(10.0)
    assert not a.checkpoint() and a.held  # alone: never hands over, however long it runs
    got = threading.Event()
    b = share.turn("b")
    th = _start(lambda: (b.acquire(), got.set()))
    assert share.wait_until(lambda s: s.waiting() == ["b"], 10)
    a.release()
    assert got.wait(10) and share.holders() == ["b"]
    # b has just been given the turn: a checkpoint before its slice is up keeps it
    assert not b.checkpoint() and b.held
    assert _start(a.acquire) and share.wait_until(lambda s: s.waiting() == ["a"], 10)
    clock.advance(0.04)
    assert not b.checkpoint() and share.holders() == ["b"]
    clock.advance(0.02)
    assert b.checkpoint() and not b.held  # slice used, a waits: handed over
    assert share.wait_until(lambda s: s.holders() == ["a"], 10)
    assert b.held_s == pytest.approx(0.06) and a.grants == 2 and b.grants == 1
    a.release()
    th.join(10)


def test_never_more_holders_than_slots_and_everyone_gets_turns():
    clock = FakeClock()
    share = CpuShare(slots=2, slice_s=1.0, clock=clock)
    lock = threading.Lock()
    active, most = [0], [0]
    done = {n: 0 for n in "abcde"}

    def member(name):
        turn = share.turn(name)
        for _ in range(20):
            assert turn.acquire()
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            with lock:
                active[0] -= 1
                done[name] += 1
            clock.advance(1.0)
            turn.checkpoint()
        turn.release()

    threads = [_start(member, n) for n in done]
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads)
    assert most[0] <= 2 and all(v == 20 for v in done.values())
    assert share.holders() == [] and share.waiting() == []


def test_a_cancelled_wait_leaves_the_line_and_the_next_gets_the_slot():
    share = CpuShare(slots=1)
    a, b, c = share.turn("a"), share.turn("b"), share.turn("c")
    assert a.acquire()
    give_up = threading.Event()
    result = {}
    tb = _start(lambda: result.__setitem__("b", b.acquire(cancel=give_up.is_set, poll_s=0.01)))
    assert share.wait_until(lambda s: s.waiting() == ["b"], 10)
    tc = _start(lambda: result.__setitem__("c", c.acquire()))
    assert share.wait_until(lambda s: s.waiting() == ["b", "c"], 10)
    give_up.set()
    tb.join(10)
    assert result["b"] is False and share.waiting() == ["c"]
    a.release()
    tc.join(10)
    assert result["c"] is True and share.holders() == ["c"]
    c.release()
    c.release()  # idempotent
    assert share.holders() == []


def test_bad_arguments_are_rejected():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="slots"):
            CpuShare(slots=bad)
    with pytest.raises(ValueError, match="slice_s"):
        CpuShare(slice_s=-0.1)


def test_trainers_sharing_one_slot_all_progress_and_a_paused_one_holds_nothing():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    X = rng.normal(size=(120, 5)) + 3 * np.eye(3, 5)[y]
    share = CpuShare(slots=1, slice_s=0.0)  # hand over after every step when someone waits
    config = TrainConfig(hidden=(8,), dim=4, batch_size=32, seed=0)
    trainers = [Trainer(X, y, config, publish_every_s=0.02, scheduler=share) for _ in range(3)]
    try:
        for t in trainers:
            t.start()
        assert wait_for(lambda: all(t.snapshot().step > 20 for t in trainers), 60)
        assert len(share.holders()) <= 1
        trainers[0].pause()
        assert wait_for(lambda: trainers[0].name not in share.holders() + share.waiting(), 10)
        step = trainers[1].snapshot().step
        assert wait_for(lambda: trainers[1].snapshot().step > step + 10, 30)  # the others go on
        trainers[0].resume()
        step = trainers[0].snapshot().step
        assert wait_for(lambda: trainers[0].snapshot().step > step + 10, 30)
    finally:
        for t in trainers:
            t.stop()
    assert share.holders() == [] and share.waiting() == []


def test_a_trainer_short_of_cpu_publishes_its_step_by_the_clock_and_its_geometry_by_its_work(tmp_path):
    """Waiting for turns (here: another holder keeps the one slot most of the time), the trainer
    still shows each new step, but recomputes the embeddings and A only per publish_every_s of its
    own working time; a recorded snapshot always carries the geometry of its own step."""
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    X = rng.normal(size=(120, 5)) + 3 * np.eye(3, 5)[y]
    share = CpuShare(slots=1, slice_s=0.0)
    trainer = Trainer(X, y, TrainConfig(hidden=(8,), dim=4, batch_size=32, seed=0), publish_every_s=0.02,
                      scheduler=share, run_dir=tmp_path / "run")
    hog, off = share.turn("hog"), threading.Event()

    def hogging():  # another member of the share, holding the slot for 30 ms at a time
        while not off.is_set():
            if hog.acquire(cancel=off.is_set):
                off.wait(0.03)
                hog.release()

    thread = threading.Thread(target=hogging, daemon=True)
    thread.start()
    seen = {}
    try:
        trainer.start()

        def enough() -> bool:
            s = trainer.snapshot()
            seen.setdefault(s.geometry_version, []).append(s)
            return s.version >= 60

        assert wait_for(enough, 60, every=0.005)
        s = trainer.snapshot()
        assert s.geometry_version <= s.version / 3, (s.geometry_version, s.version)
        assert s.geometry_step <= s.step
        assert any(x.geometry_step < x.step for v in seen.values() for x in v)  # a step shown before its geometry
        for same in seen.values():  # one geometry: the same arrays, the same step
            assert all(x.A is same[0].A and x.embeddings is same[0].embeddings for x in same)
            assert len({x.geometry_step for x in same}) == 1
    finally:
        off.set()
        thread.join(5)
        trainer.stop()
    last = trainer.snapshot()
    assert last.geometry_step == last.step  # stopping publishes the final geometry
    from hraml_core.runs import open_run

    run = open_run(tmp_path / "run")
    final = run.snapshot(run.snapshot_steps[-1])
    assert run.snapshot_steps[-1] == last.step
    np.testing.assert_array_equal(final.A, last.A)
