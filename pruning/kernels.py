"""Compiled (numba) kernels for the per-query bookkeeping of the pruning methods.

On the 2-core CPU a small numpy call right after a decoder layer costs ~9 us whatever it
computes (results/overhead/call_costs.json), and a method's per-layer work is a chain of ten
or so such calls (negate, argsort, take, compare, offset, mask, ...). Each kernel here does one
such chain in a single call, with the same results as the numpy chain it replaces (stable
sorts, ties to the lowest index; tested against the numpy reference in tests/test_kernels.py).
Compiled on first use and cached next to this file (`cache=True`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def patch_cosine_u8(cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(V, N) cosine similarity of uint8 raw-pixel patches (V, N, P), exact integer sums;
    two all-zero patches count as identical (1)."""
    V, N, P = cur.shape
    out = np.empty((V, N))
    for v in range(V):
        for n in range(N):
            dot = 0
            nx = 0
            ny = 0
            for p in range(P):
                a = np.int64(cur[v, n, p])
                b = np.int64(ref[v, n, p])
                dot += a * b
                nx += a * a
                ny += b * b
            if nx == 0 and ny == 0:
                out[v, n] = 1.0
            else:
                out[v, n] = dot / np.sqrt(max(float(nx) * float(ny), 1e-24))
    return out


@njit(cache=True)
def least_similar_flat(sim: np.ndarray, tau: float, k: int, n_view: int) -> np.ndarray:
    """Of (V, N) similarities, per row the k lowest among those < tau (ties: first wins), as
    flat indices row * n_view + col, row-major (the order of `specprune.least_similar`)."""
    V, N = sim.shape
    k = min(k, N)
    out = np.empty(V * max(k, 0), dtype=np.int64)
    m = 0
    if k <= 0:
        return out[:0]
    for v in range(V):
        masked = np.where(sim[v] < tau, sim[v], np.inf)
        order = np.argsort(masked, kind="mergesort")
        for j in range(k):
            c = order[j]
            if masked[c] < np.inf:
                out[m] = v * n_view + c
                m += 1
    return out[:m]


@njit(cache=True)
def top_per_view(dense: np.ndarray, n_view: int, k: int) -> np.ndarray:
    """Flat indices of each view's top k of (V * n_view,) `dense` that are > -inf, view by
    view, each view's in descending score (ties: first wins)."""
    V = dense.shape[0] // n_view
    k = min(k, n_view)
    out = np.empty(V * max(k, 0), dtype=np.int64)
    m = 0
    for v in range(V):
        seg = dense[v * n_view:(v + 1) * n_view]
        order = np.argsort(-seg, kind="mergesort")
        for j in range(k):
            c = order[j]
            if seg[c] > -np.inf:
                out[m] = v * n_view + c
                m += 1
    return out[:m]


@njit(cache=True)
def ema_rank_update(S: np.ndarray, vals: np.ndarray, decay: float, rank_w: np.ndarray,
                    scale: float) -> None:
    """In place: S *= decay; then the token of rank r by `vals` (descending, ties: first
    wins) gets rank_w[r] * scale."""
    n = S.shape[0]
    for i in range(n):
        S[i] *= decay
    order = np.argsort(-vals, kind="mergesort")
    for r in range(n):
        S[order[r]] += rank_w[r] * scale


@njit(cache=True)
def top_sorted(S: np.ndarray, n_keep: int) -> np.ndarray:
    """Positions of the n_keep highest of S (ties: first wins), ascending."""
    return np.sort(np.argsort(-S, kind="mergesort")[:n_keep])


@njit(cache=True)
def span_rows(n_stream: int, start: int, count: int, keep: np.ndarray) -> np.ndarray:
    """Stream rows that remain when, of the `count` rows from `start`, only those at offsets
    `keep` (ascending) stay: [0, start) + (start + keep) + [start + count, n_stream)."""
    out = np.empty(n_stream - count + keep.shape[0], dtype=np.int64)
    m = 0
    for i in range(start):
        out[m] = i
        m += 1
    for j in range(keep.shape[0]):
        out[m] = start + keep[j]
        m += 1
    for i in range(start + count, n_stream):
        out[m] = i
        m += 1
    return out


@njit(cache=True)
def prune_top(S: np.ndarray, vis: np.ndarray, n_keep: int, start: int,
              n_stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the n_keep highest of S (ties: first wins) among the tokens `vis` whose rows are
    [start, start + len(vis)): returns (S kept, vis kept, the stream rows that remain)."""
    keep = top_sorted(S, n_keep)
    return S[keep], vis[keep], span_rows(n_stream, start, vis.shape[0], keep)


@njit(cache=True)
def union_rows(n_visual: int, local: np.ndarray, dynamic: np.ndarray, global_mask: np.ndarray,
               vis: np.ndarray) -> tuple[np.ndarray, int]:
    """SpecPrune's static set: positions in `vis` (the visual indices present, ascending) of
    the tokens in local | dynamic | global. local, dynamic: flat visual indices (may repeat,
    may be empty); global_mask: (n_visual,) bool, or empty for none. Also returns the number
    of distinct local tokens."""
    keep = np.zeros(n_visual, dtype=np.bool_)
    for i in range(local.shape[0]):
        keep[local[i]] = True
    n_local = 0
    for j in range(n_visual):
        if keep[j]:
            n_local += 1
    for i in range(dynamic.shape[0]):
        keep[dynamic[i]] = True
    if global_mask.shape[0]:
        for j in range(n_visual):
            if global_mask[j]:
                keep[j] = True
    out = np.empty(vis.shape[0], dtype=np.int64)
    m = 0
    for i in range(vis.shape[0]):
        if keep[vis[i]]:
            out[m] = i
            m += 1
    return out[:m], n_local


@njit(cache=True)
def global_important(n_visual: int, n_view: int, k: int, vis: np.ndarray, vals: np.ndarray,
                     n_layers: int, prev: np.ndarray) -> tuple[np.ndarray, int, int]:
    """SpecPrune's important set from the global layers' scores.

    vis, vals: the visual indices present at each global layer and their scores, concatenated
    over the `n_layers` layers. The score of a token is the sum over layers / n_layers (absent
    = 0); tokens absent from every layer are never important. Returns ((n_visual,) bool: each
    view's top k, ties to the lowest index; |important & prev| with `prev` ((n_visual,) bool, or
    empty for none); |important|)."""
    total = np.zeros(n_visual)
    present = np.zeros(n_visual, dtype=np.bool_)
    for i in range(vis.shape[0]):
        total[vis[i]] += vals[i]
        present[vis[i]] = True
    avg = np.empty(n_visual)
    for j in range(n_visual):
        avg[j] = total[j] / n_layers if present[j] else -np.inf
    important = np.zeros(n_visual, dtype=np.bool_)
    if k > 0:
        for j in top_per_view(avg, n_view, k):
            important[j] = True
    inter = 0
    count = 0
    for j in range(n_visual):
        if important[j]:
            count += 1
            if prev.shape[0] and prev[j]:
                inter += 1
    return important, inter, count


@njit(cache=True)
def key_mean(probs: np.ndarray, start: int, count: int) -> np.ndarray:
    """(count,) float32: the mean over heads and query rows of (H, m, n_keys) attention
    `probs` for keys start .. start + count - 1 (summed in float64, rounded once)."""
    H, m = probs.shape[0], probs.shape[1]
    acc = np.zeros(count)
    for h in range(H):
        for r in range(m):
            row = probs[h, r]
            for j in range(count):
                acc[j] += row[start + j]
    out = np.empty(count, dtype=np.float32)
    inv = 1.0 / (H * m)
    for j in range(count):
        out[j] = acc[j] * inv
    return out


@njit(cache=True)
def ema_update_prune(S: np.ndarray, vals: np.ndarray, decay: float, rank_w: np.ndarray,
                     scale: float, n_keep: int, vis: np.ndarray, start: int,
                     n_stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ema_rank_update` (in place), then, when n_keep < len(S), `prune_top`. Returns (S, vis,
    stream rows that remain); the rows are empty when nothing is pruned."""
    ema_rank_update(S, vals, decay, rank_w, scale)
    if n_keep >= S.shape[0]:
        return S, vis, np.zeros(0, dtype=np.int64)
    return prune_top(S, vis, n_keep, start, n_stream)


@njit(cache=True)
def static_select(dense: np.ndarray, n_view: int, k_local: int, earlier: np.ndarray,
                  dynamic: np.ndarray, global_mask: np.ndarray, vis: np.ndarray, start: int,
                  n_stream: int) -> tuple[np.ndarray, int, np.ndarray]:
    """SpecPrune's static pruning at its last local layer in one call: the local picks of
    this layer (`top_per_view` of `dense`, (n_visual,) by visual index) with those of `earlier` local layers, united with
    `dynamic` and `global_mask` (`union_rows`). Returns (positions in `vis` kept, distinct
    local tokens, the stream rows that remain; the visual tokens present are the rows
    [start, start + len(vis)))."""
    local = top_per_view(dense, n_view, k_local)
    if earlier.shape[0]:
        local = np.concatenate((earlier, local))
    sel, n_local = union_rows(dense.shape[0], local, dynamic, global_mask, vis)
    return sel, n_local, span_rows(n_stream, start, vis.shape[0], sel)
