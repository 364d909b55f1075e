import collections
import numpy as np
import torch
import pytest

from hraml_core.samplers import BatchSampler, HardSampler, SinglePairSampler, make_sampler
from hraml_core.tasks import CLASSIFICATION, MULTILABEL


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_batch_sampler_covers_every_sample_once_per_epoch():
    s = BatchSampler(10, gen(), batch_size=4)
    assert s.steps_per_epoch == 3
    seen = torch.cat([s.batch_indices() for _ in range(s.steps_per_epoch)])
    assert sorted(seen.tolist()) == list(range(10))
    assert s.select_pairs(torch.zeros(4, 4), torch.zeros(4, 4)) is None
    assert s.pairs_in_step(4, None) == 6


def test_batch_sampler_never_yields_a_lone_sample():
    s = BatchSampler(9, gen(), batch_size=4)  # 4 + 4 + 1 leftover
    sizes = [len(s.batch_indices()) for _ in range(9)]
    assert min(sizes) >= 2


def test_single_pair_sampler_draws_two_distinct_samples():
    s = SinglePairSampler(3, gen())
    for _ in range(200):
        i, j = s.batch_indices().tolist()
        assert i != j and 0 <= i < 3 and 0 <= j < 3
    ia, ib = s.select_pairs(torch.zeros(2, 2), torch.zeros(2, 2))
    assert (ia.tolist(), ib.tolist()) == ([0], [1])
    assert s.steps_per_epoch == 3


def test_single_pair_sampler_is_uniform_over_ordered_pairs_and_seeded():
    s = SinglePairSampler(3, gen(), block=64)  # several blocks
    counts = collections.Counter(s.draw_pair() for _ in range(6000))
    assert sorted(counts) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    # each of the 6 ordered pairs: 1000 expected, binomial sd ~29
    assert all(880 < c < 1120 for c in counts.values()), counts
    a, b = SinglePairSampler(50, gen(), block=7), SinglePairSampler(50, gen(), block=7)
    assert [a.draw_pair() for _ in range(30)] == [b.draw_pair() for _ in range(30)]


def test_hard_sampler_picks_nearest_same_and_nearest_different_partners():
    # Samples 0,1,2 share a class (g = 0), 3,4 are another class (g = 2).
    G = torch.tensor([[0, 0, 0, 2, 2], [0, 0, 0, 2, 2], [0, 0, 0, 2, 2], [2, 2, 2, 0, 0], [2, 2, 2, 0, 0.0]])
    A = torch.tensor(
        [
            [0.0, 0.9, 0.2, 1.5, 0.4],
            [0.9, 0.0, 0.3, 0.1, 2.0],
            [0.2, 0.3, 0.0, 1.0, 1.1],
            [1.5, 0.1, 1.0, 0.0, 0.5],
            [0.4, 2.0, 1.1, 0.5, 0.0],
        ]
    )
    s = HardSampler(5, gen(), batch_size=5, task=CLASSIFICATION, partners=2, balance=0.5)
    ia, ib = s.select_pairs(A, G)
    pairs = set(zip(ia.tolist(), ib.tolist()))
    # Anchor 0: nearest same-class partner is 2 (0.2), nearest other-class is 4 (0.4).
    assert (0, 2) in pairs and (0, 4) in pairs
    # Anchor 1: same -> 2 (0.3); different -> 3 (0.1).
    assert (1, 2) in pairs and (1, 3) in pairs
    # Anchor 3: same -> 4 (0.5); different -> 1 (0.1).
    assert (3, 4) in pairs and (3, 1) in pairs
    assert len(ia) == 10


def test_hard_sampler_balance_all_negative():
    G = 2 * (1 - torch.eye(4))
    s = HardSampler(4, gen(), batch_size=4, task=CLASSIFICATION, partners=3, balance=0.0)
    ia, ib = s.select_pairs(torch.rand(4, 4), G)
    assert len(ia) == 12 and bool((ia != ib).all())


def test_hard_sampler_multilabel_prefers_small_relations():
    # Anchor 0 has an identical partner (g = 0) and two very different ones.
    G = torch.tensor([[0, 0, 3, 3], [0, 0, 3, 3], [3, 3, 0, 1], [3, 3, 1, 0.0]])
    s = HardSampler(4, gen(), batch_size=4, task=MULTILABEL, partners=1, sampling_power=1.0)
    picks = [s.select_pairs(torch.zeros(4, 4), G)[1][0].item() for _ in range(50)]
    assert set(picks) == {1}  # weight 1e6 against 1/3


def test_make_sampler_validates():
    with pytest.raises(ValueError, match="unknown sampler 'random'"):
        make_sampler("random", 10, gen())
    with pytest.raises(ValueError, match="batch_size"):
        make_sampler("batch", 10, gen(), batch_size=1)
    with pytest.raises(ValueError, match="balance"):
        make_sampler("hard", 10, gen(), balance=1.5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        make_sampler("pairs", 1, gen())


# --------------------------------------------------------------------------------------------------
# neighbors: the authors' input-space partners
# --------------------------------------------------------------------------------------------------
def test_input_space_partners_match_neighbour_lists_built_by_hand():
    from hraml_core.partners import input_space_pairs

    # Six points on a line, two classes: 0 1 2 | 10 11 12 (class 0 left, class 1 right), and a
    # class-1 point at 3.5 so that "nearest other-class" is not just the other cluster's edge.
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0], [3.5]])
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    Y = np.eye(2)[y]
    a, b = input_space_pairs(X, Y, "classification", partners=2, balance=0.5)
    got = sorted(zip(a.tolist(), b.tolist()))
    # per sample: its nearest same-class neighbour and its nearest other-class sample, by hand
    same = {0: 1, 1: 0, 2: 1, 3: 4, 4: 3, 5: 4, 6: 3}  # 1 is as near to 0 as 2: the lower index
    other = {0: 6, 1: 6, 2: 6, 3: 2, 4: 2, 5: 2, 6: 2}
    assert got == sorted([(i, same[i]) for i in range(7)] + [(i, other[i]) for i in range(7)])
    ua, ub = input_space_pairs(X, Y, "classification", partners=2, balance=0.5, unique=True)
    assert np.all(ua < ub) and len(set(zip(ua.tolist(), ub.tolist()))) == len(ua)


def test_label_set_partners_prefer_similar_labels_among_the_nearest():
    from hraml_core.partners import input_space_pairs
    from hraml_core.relations import get_relation

    # Point 0 has five candidates at the same distance scale; only one shares its labels.
    X = np.array([[0.0], [1.0], [1.1], [1.2], [1.3], [50.0]])
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]], dtype=float)
    picks = [input_space_pairs(X, Y, "multilabel", get_relation("l1"), partners=1, sampling_power=4.0,
                               candidates=4, seed=s) for s in range(20)]
    first = [b[a == 0][0] for a, b in picks]
    assert all(p == 1 for p in first)  # weight (1/1e-6)^4 against (1/2)^4: always the one alike
    assert all(5 not in b[a == 0] for a, b in picks)  # the far point is not a candidate


def test_neighbors_sampler_steps_through_the_pairs_once_per_epoch():
    from hraml_core.samplers import NeighborSampler

    anchors = np.array([0, 1, 2, 3, 4, 5, 6])
    partners = np.array([1, 0, 3, 2, 5, 4, 0])
    s = NeighborSampler(8, torch.Generator().manual_seed(0), anchors, partners, pairs_per_step=3)
    assert s.steps_per_epoch == 3 and not s.all_pairs
    seen = []
    for _ in range(s.steps_per_epoch):
        rows = s.batch_indices()
        la, lb = s.select_pairs(torch.zeros(len(rows), len(rows)), None)
        seen += list(zip(rows[la].tolist(), rows[lb].tolist()))
        assert len(set(rows.tolist())) == len(rows)  # each row embedded once per step
    assert sorted(seen) == sorted(zip(anchors.tolist(), partners.tolist()))


def test_neighbors_sampler_trains_through_a_run():
    from hraml_core.training import TrainConfig, TrainingRun

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.normal(size=(60, 5)) + 3 * np.eye(3, 5)[y]
    run = TrainingRun(X, np.eye(3)[y], "classification", TrainConfig(hidden=(8,), dim=4, sampler="neighbors",
                                                                      batch_size=40, partners=4))
    assert run.sampler.n_pairs == 60 * 4 and run.sampler.steps_per_epoch == 6
    for _ in range(12):
        run.step()
    run.flush()
    assert run.state.step == 12 and np.isfinite(run.state.losses).all()
    assert run.state.pairs_seen == 12 * 40
