"""The compiled kernels give exactly what the numpy chains they replace give."""

import numpy as np
import pytest

from pruning import kernels as K
from pruning.common import patch_cosine
from pruning.specprune import least_similar, top_per_row


def test_patch_cosine_u8_matches_numpy_and_zero_patches():
    rng = np.random.default_rng(0)
    cur = rng.integers(0, 256, (2, 30, 48), dtype=np.uint8)
    ref = cur.copy()
    ref[:, ::3] = rng.integers(0, 256, (2, 10, 48), dtype=np.uint8)
    cur[0, 1] = 0
    ref[0, 1] = 0  # both black: identical
    cur[1, 2] = 0  # one black: 0
    got = K.patch_cosine_u8(cur, ref)
    assert got[0, 1] == 1.0 and got[1, 2] == 0.0
    np.testing.assert_allclose(got, patch_cosine(cur, ref), rtol=1e-6, atol=1e-7)
    assert np.allclose(got[:, 1::3], 1.0) and np.allclose(got[0, 2::3], 1.0)  # unchanged


@pytest.mark.parametrize("k", [0, 1, 3, 10, 40])
def test_least_similar_flat_matches_reference_with_ties(k):
    rng = np.random.default_rng(1)
    sim = rng.choice([0.2, 0.5, 0.9, 0.95, 0.99], size=(2, 25))  # many ties, some >= tau
    rows, cols = least_similar(sim, 0.95, k)
    np.testing.assert_array_equal(K.least_similar_flat(sim, 0.95, k, 25), rows * 25 + cols)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 4, 25, 30])
def test_top_per_view_matches_reference(dtype, k):
    rng = np.random.default_rng(2)
    dense = rng.choice([0.1, 0.3, 0.3, 0.7, -np.inf], size=50).astype(dtype)
    per_view = dense.reshape(2, 25)
    cols = top_per_row(per_view, min(k, 25))
    ok = np.take_along_axis(per_view, cols, 1) > -np.inf
    want = (cols + np.array([[0], [25]]))[ok]
    np.testing.assert_array_equal(K.top_per_view(dense, 25, k), want)
    assert K.top_per_view(dense, 25, 3)[0] in np.flatnonzero(dense[:25] == dense[:25].max())


def test_ema_rank_update_and_top_sorted_match_numpy():
    rng = np.random.default_rng(3)
    S = rng.random(40)
    vals = rng.choice([0.1, 0.2, 0.2, 0.5], size=40).astype(np.float32)
    add = rng.random(40)
    want = S * 0.8
    want[np.argsort(-vals, kind="stable")] += add * 0.3
    got = S.copy()
    K.ema_rank_update(got, vals, 0.8, add, 0.3)
    np.testing.assert_array_equal(got, want)
    tied = np.array([0.5, 0.9, 0.5, 0.9, 0.1, 0.5])
    np.testing.assert_array_equal(K.top_sorted(tied, 3), [0, 1, 3])  # 0.9, 0.9, first 0.5
    np.testing.assert_array_equal(K.top_sorted(got, 7),
                                  np.sort(np.argsort(-got, kind="stable")[:7]))


def test_union_rows_and_global_important():
    n = 8
    vis = np.array([0, 1, 2, 4, 5, 7])  # 3 and 6 already dropped
    glob = np.zeros(n, bool)
    glob[[5, 6]] = True
    sel, n_local = K.union_rows(n, np.array([1, 1, 2]), np.array([7]), glob, vis)
    assert sel.tolist() == [1, 2, 4, 5] and n_local == 2  # tokens 1, 2, 5, 7
    sel, n_local = K.union_rows(n, np.array([0]), np.zeros(0, np.int64), np.zeros(0, bool), vis)
    assert sel.tolist() == [0] and n_local == 1
    # two layers; token 3 absent from the second (counts 0 there), token 6 absent from both
    vis_cat = np.array([0, 1, 2, 3, 4, 5, 7, 0, 1, 2, 4, 5, 7])
    vals = np.array([.1, .2, .3, .9, .1, .2, .3, .1, .2, .3, .1, .5, .3], np.float32)
    prev = np.zeros(n, bool)
    prev[[2, 5]] = True
    imp, inter, count = K.global_important(n, 4, 2, vis_cat, vals, 2, prev)
    # view 0 (0-3): averages .1 .2 .3 .45 -> 3, 2; view 1 (4-7): .1 .35 -inf .3 -> 5, 7
    assert np.flatnonzero(imp).tolist() == [2, 3, 5, 7] and (inter, count) == (2, 4)
    imp, inter, count = K.global_important(n, 4, 2, vis_cat, vals, 2, np.zeros(0, bool))
    assert inter == 0 and count == 4


def test_span_rows_prune_top_and_stream_keep_rows():
    import torch

    from pruning.forward import TokenStream
    from pruning.layout import OTHER, TEXT, VISUAL, TokenLayout

    assert K.span_rows(9, 2, 4, np.array([1, 3])).tolist() == [0, 1, 3, 5, 6, 7, 8]
    S = np.array([0.3, 0.9, 0.3, 0.1])
    vis = np.array([0, 2, 3, 5])
    S2, vis2, rows = K.prune_top(S, vis, 2, 1, 7)
    assert S2.tolist() == [0.3, 0.9] and vis2.tolist() == [0, 2] and rows.tolist() == [0, 1, 2,
                                                                                        5, 6]
    layout = TokenLayout.build([("bos", OTHER, 1), ("v", VISUAL, 4), ("t", TEXT, 2)])
    a, b = TokenStream(torch.randn(1, 7, 3), layout), None
    b = TokenStream(a.hidden.clone(), layout)
    a.keep_visual_rows(torch.tensor([2, 4]))
    b.keep_rows(torch.from_numpy(K.span_rows(7, 1, 4, np.array([1, 3]))))
    assert torch.equal(a.hidden, b.hidden) and a.orig_idx.tolist() == b.orig_idx.tolist()
    assert a.pos.tolist() == b.pos.tolist() == [0, 2, 4, 5, 6] and b.n_visual() == 2


def test_fused_kernels_equal_their_parts():
    rng = np.random.default_rng(4)
    S, vals = rng.random(30), rng.choice([0.1, 0.4, 0.4, 0.8], 30).astype(np.float32)
    vis = np.arange(2, 32)
    a = S.copy()
    K.ema_rank_update(a, vals, 0.8, np.linspace(1, 0, 30), 0.5)
    want = K.prune_top(a, vis, 20, 3, 50)
    got = K.ema_update_prune(S.copy(), vals, 0.8, np.linspace(1, 0, 30), 0.5, 20, vis, 3, 50)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(w, g)
    S2, vis2, rows = K.ema_update_prune(S.copy(), vals, 0.8, np.linspace(1, 0, 30), 0.5, 30,
                                        vis, 3, 50)  # n_keep = n: update only
    np.testing.assert_array_equal(S2, a)
    assert vis2.tolist() == vis.tolist() and len(rows) == 0
    dense = rng.choice([0.2, 0.5, 0.5, 0.9], 16).astype(np.float32)
    vis = np.arange(16)
    glob = np.zeros(16, bool)
    glob[[0, 9]] = True
    dyn = np.array([3, 12])
    earlier = np.array([15])
    local = np.concatenate([earlier, K.top_per_view(dense, 8, 2)])
    sel, n_local = K.union_rows(16, local, dyn, glob, vis)
    got = K.static_select(dense, 8, 2, earlier, dyn, glob, vis, 1, 20)
    assert got[0].tolist() == sel.tolist() and got[1] == n_local
    assert got[2].tolist() == K.span_rows(20, 1, 16, sel).tolist()
