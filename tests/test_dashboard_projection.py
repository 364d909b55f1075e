"""Projection helpers: Procrustes alignment, PCA, and the background worker (no browser)."""
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from hraml_dashboard.geometry import pca_2d, procrustes_align
from hraml_dashboard.projection import PCA, UMAP, ProjectionWorker
from hraml_dashboard.umap_process import UmapService
from support import wait_for


def _rotation(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def test_procrustes_aligns_a_rotated_scaled_shifted_copy_back_exactly():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 2))
    moved = 3.7 * ref @ _rotation(1.1) + np.array([5.0, -2.0])
    np.testing.assert_allclose(procrustes_align(moved, ref), ref, atol=1e-5)
    mirrored = 0.5 * ref @ np.diag([1.0, -1.0]) @ _rotation(-0.3) - 1.0  # a reflection too
    np.testing.assert_allclose(procrustes_align(mirrored, ref), ref, atol=1e-5)


def test_procrustes_keeps_the_reference_frame_for_a_changed_layout():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(100, 2))
    new = ref + rng.normal(scale=0.1, size=ref.shape)
    out = procrustes_align(new @ _rotation(2.0) * 10, ref)
    assert np.abs(out - ref).mean() < 0.15
    with pytest.raises(ValueError):
        procrustes_align(ref[:10], ref)


def test_pca_2d_is_deterministic_and_pads():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(50, 6))
    a, b = pca_2d(Z), pca_2d(Z.copy())
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 2) and a.dtype == np.float32
    assert pca_2d(Z[:, :1]).shape == (50, 2)


def _snapshots(n=120, d=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    state = {"v": 1, "Z": rng.normal(size=(n, d)).astype(np.float32) + labels[:, None]}

    def source():
        return SimpleNamespace(version=state["v"], step=state["v"] * 10, embeddings=state["Z"], embedding_labels=labels)

    def advance():
        state["v"] += 1
        state["Z"] = state["Z"] + rng.normal(scale=0.05, size=state["Z"].shape).astype(np.float32)

    return source, advance


def test_worker_publishes_aligned_pca_frames_off_the_caller_thread():
    source, advance = _snapshots()
    w = ProjectionWorker(min_interval_s=0.05, service_getter=lambda: None)
    w.set_method(PCA)
    try:
        w.follow(source, "trainer-1")
        assert wait_for(lambda: w.latest() is not None and w.latest().version == 1)
        first = w.latest()
        assert first.method == PCA and first.xy.shape == (120, 2) and "projection" in w.name
        assert any(t.name == w.name for t in threading.enumerate())
        advance()
        w.poke()
        assert wait_for(lambda: w.latest().version == 2)
        second = w.latest()
        # aligned onto the previous frame: small drift, not a jump
        assert np.abs(second.xy - first.xy).mean() < 0.2 * np.abs(first.xy).mean()
        assert w.up_to_date()
        # a new trainer starts a new sequence
        w.follow(source, "trainer-2")
        assert wait_for(lambda: w.latest() is not None and w.latest().source == "trainer-2")
    finally:
        w.close()
    assert not w.is_alive()


def test_worker_shows_pca_with_a_note_while_umap_is_not_ready():
    source, _ = _snapshots()
    fake = SimpleNamespace(ready=threading.Event(), failed=None)
    w = ProjectionWorker(min_interval_s=0.05, service_getter=lambda: fake)
    w.set_method(UMAP)
    try:
        w.follow(source, "t")
        assert wait_for(lambda: w.latest() is not None)
        f = w.latest()
        assert f.method == PCA and f.requested == UMAP and "warms up" in f.note
    finally:
        w.close()


@pytest.mark.slow
def test_umap_service_warms_up_in_another_process_and_frames_are_warm_started():
    svc = UmapService(nice=0).start()
    try:
        assert svc.state == "warming up"
        with pytest.raises(RuntimeError):
            svc.fit(np.zeros((30, 4), np.float32))
        assert svc.wait_ready(180), svc.failed
        source, advance = _snapshots(n=300, d=16)
        w = ProjectionWorker(min_interval_s=0.05, service_getter=lambda: svc)
        try:
            w.follow(source, "t")
            assert wait_for(lambda: w.latest() is not None and w.latest().method == UMAP, 60)
            first = w.latest()
            advance()
            w.poke()
            assert wait_for(lambda: w.latest().version == 2, 60)
            second = w.latest()
            assert second.method == UMAP and second.xy.shape == (300, 2)
            assert np.isfinite(second.xy).all()
            # warm start + Procrustes: the layout moves little between frames
            spread = np.abs(first.xy - first.xy.mean(0)).mean()
            assert np.abs(second.xy - first.xy).mean() < 0.5 * spread
        finally:
            w.close()
    finally:
        svc.close()
    assert svc.pid is None


def test_a_failing_umap_falls_back_to_pca_once_per_snapshot():
    source, advance = _snapshots()
    calls = []

    def broken_fit(Z, init=None, seed=0):
        calls.append(len(Z))
        raise RuntimeError("boom")

    ready = threading.Event()
    ready.set()
    fake = SimpleNamespace(ready=ready, failed=None, fit=broken_fit)
    w = ProjectionWorker(min_interval_s=0.05, service_getter=lambda: fake)
    w.set_method(UMAP)
    try:
        w.follow(source, "t")
        assert wait_for(lambda: w.latest() is not None)
        f = w.latest()
        assert f.method == PCA and f.fallback and "UMAP failed" in f.note
        seen = w.passes
        w.poke()
        assert wait_for(lambda: w.passes >= seen + 2)  # the thread looked again, twice...
        assert len(calls) == 1 and w.up_to_date()  # ...and did not retry UMAP on the same snapshot
        advance()
        w.poke()
        assert wait_for(lambda: w.latest().version == 2) and len(calls) == 2
    finally:
        w.close()
