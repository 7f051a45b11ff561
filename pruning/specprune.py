"""SpecPrune-VLA (`specprune`, arXiv 2509.05614): action-aware self-speculative token pruning.

Three techniques, each switchable for the ablations (see ../shared/METHODS.md):

1. Action-level static pruning (`static`). The local layers run on every token; after the last
   of them the visual tokens kept, per view, are the union of
   - V_global: top K_global by the previous policy query's text->visual score, averaged over
     the global layers (paper: 15 and 31 of 32) (`use_global`);
   - V_dynamic: raw-pixel patches whose cosine similarity to the same patch of a reference
     frame T = floor(b + k * v_t) + offset env steps back is below `tau`, the K_dynamic least
     similar of those;
   - V_local: top K_local by score at each local layer, united.
2. Layer-level dynamic pruning (`dynamic_layers`). Each kept visual token carries an EMA score
   S <- (1 - beta) S + beta * w_rank * w_conf, updated at every layer from the first layer after
   static pruning; w_rank = sigmoid(-k * rank) normalised over the tokens present;
   w_conf = 1 / (mean text->visual attention entropy + eps), from the first query of the
   episode (`layer_weighting: entropy`) or 1 (`average`). At each pruning layer the top gamma
   by S enter that layer.
3. Action-aware controller (`controller`). From the last executed action of the previous
   chunk (normalised space): fine mode when v_t < vt_threshold and v_r < vr_threshold and
   dz <= 0, else coarse; fine mode uses K_local_fine / K_dynamic_fine.

Scaling to the model (config values are paper scale: `ref_layers` = 32 decoder layers,
`ref_view_tokens` = 256 patches per view), done in `setup` and reported by `scaled()`:
- a layer index l becomes round(l * L / ref_layers) (half up), clamped to L - 1;
- a token count K per view becomes round(alpha * K * N_view / ref_view_tokens) (half up), at
  least 1 unless K is 0;
- the rank-weight slope k is divided by N_view / ref_view_tokens, so k * rank spans the same
  fraction of a view's tokens.

Decisions where the paper is vague (each also in `scaled()["notes"]`):
- Local layers: paper layers 0 and 1 of 32 both map to 0 for L < 48. `local_collision: merge`
  (default) follows METHODS.md's scaling literally: local layers = (0,), static pruning right
  after layer 0, so the share of depth run on every token (1/8) stays near the paper's (2/32).
  `local_collision: shift` reads "the first two layers" as a count and bumps the second to the
  next free layer: local layers = (0, 1), static pruning after layer 1 (2/8 of depth on every
  token, which costs about 12 points of decoder FLOPs on an 8-layer model).
- Layer-level pruning "at layer s" means layer s runs on the pruned set (the paper's FLOPs
  model: layers 2-9 at L_r, layer 10 on at gamma * L_r), so it happens after layer s - 1, from
  S updated through layer s - 1. Scaled pruning layers below (last local layer + 2) are raised
  to it (at least one S update precedes a prune) and duplicates merged; for L = 8:
  prune (3, 4, 5, 6), S updates at 2..5. S is not updated where no later prune reads it.
- Global layers: 15 -> round(15 L / 32), 31 -> L - 1 (clamped). A token pruned before the last
  global layer counts as score 0 there (the average of the two then halves its score); tokens
  absent from every global layer are never in V_global. The first query of an episode runs
  unpruned and records the global scores (and the entropies).
- Scores are the mean over heads and text (instruction) rows of the text->visual softmax rows,
  per METHODS.md. Rank is over that mean (rank 0 = highest), over all visual tokens present
  (both views together); the gamma prune is also over both views together.
- Entropy: per head and text row, of the attention restricted to the visual keys and
  renormalised over them, then the mean; at the first query every token is present, so the
  layers are compared on equal footing. Computed only at the S-update layers.
- Without global scores (`use_global: false`) K_local = K_local_no_global (54 = 24 + 30,
  Table 3) in coarse mode and K_local_fine_no_global (70 = 40 + 30, the same fold) in fine mode.
- gamma is not scaled by alpha (METHODS.md); `gamma_times_alpha: true` gives the alpha * gamma
  reading of the paper's Appendix A.2.
- Reference frame: v = v_t of the last executed action; T is clamped to [1, max_frame_back]
  where max_frame_back is T's largest value over v in [0, sqrt(#translation dims)] (normalised
  actions lie in [-1, 1]); the runner clamps further to frames that exist and this method uses
  the largest frame it got with steps back <= T. Two all-black patches count as identical.
- Recall (Eq. 1) per query q >= 1: |G_{q-1} & G_q| / |G_q|, with G the per-view top K_global by
  the global-layer score (G_{q-1} is the V_global used at q). NaN at the first query.

Per query the method's bookkeeping (scores by visual index, top-k's, the EMA, the sets, the
stream rows to keep) runs in compiled kernels (`pruning.kernels`, numba), one call per step:
on the 2-core CPU a small call right after a decoder layer costs several times what it costs in
a warm loop (results/overhead/call_costs.json), so the count of calls, not their arithmetic, is
the method's overhead. The kernels give exactly the numpy results (tests/test_kernels.py); on a
recorded libero_object episode the kept tokens and actions are identical to the numpy version
at alpha 0.6/0.8/1.0. Only the attention rows (read by the shared loop), the entropy and the
stream edits are torch. Each component's time is recorded per query (`ms_*`, paper Table 9).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from pruning import kernels as K
from pruning.base import AttentionScores, ModelSpec, PruningMethod, QueryContext
from pruning.common import patch_cosine
from pruning.layout import VISUAL

FINE, COARSE = "fine", "coarse"
_NO_IDX = np.zeros(0, dtype=np.int64)
_NO_MASK = np.zeros(0, dtype=bool)
# Components of the method's own time, recorded per query as `ms_<name>` (paper Table 9):
# similarity = reference-frame patch similarity and the least-similar selection; scores =
# reading the mean text->visual score off a layer's attention rows; entropy = layer confidence
# (first query only); topk = every ranking (local and global top-k, EMA rank, top gamma) with
# the set bookkeeping around it; prune = stream edits (dropping the tokens from the sequence).
PARTS = ("similarity", "scores", "entropy", "topk", "prune")
_clock = time.perf_counter


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def scale_layer(layer: int, num_layers: int, ref_layers: int) -> int:
    """Paper layer index -> this model's: round(l * L / ref) (half up), clamped to L - 1."""
    return min(num_layers - 1, max(0, round_half_up(layer * num_layers / ref_layers)))


def reference_frame_back(v: float, k: float, b: float, offset: int, max_back: int) -> int:
    """T = floor(b + k * v) + offset env steps back, clamped to [1, max_back]."""
    return int(min(max_back, max(1, math.floor(b + k * v) + offset)))


def controller_mode(action, vt_threshold: float, vr_threshold: float,
                    translation_dims=(0, 1, 2), rotation_dims=(3, 4, 5)) -> tuple[str, float,
                                                                              float, float]:
    """(mode, v_t, v_r, dz) from one normalised action (action_dim,) (list, array or CPU
    tensor)."""
    a = action if isinstance(action, list) else np.asarray(action, dtype=np.float64).tolist()
    v_t = math.sqrt(sum(a[i] * a[i] for i in translation_dims))
    v_r = math.sqrt(sum(a[i] * a[i] for i in rotation_dims))
    dz = a[translation_dims[2]]
    fine = v_t < vt_threshold and v_r < vr_threshold and dz <= 0
    return (FINE if fine else COARSE), v_t, v_r, dz


def attention_entropy(probs: torch.Tensor) -> float:
    """Mean over heads and query rows of the entropy of (H, m, k) attention over k visual keys,
    renormalised over those keys."""
    p = probs.to(torch.float64)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-30)
    return float(-torch.special.xlogy(p, p).sum(-1).mean())


def least_similar(sim: np.ndarray, tau: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Of (V, N) similarities, per row the k lowest among those < tau (ties: first wins).
    Returns (rows, cols) index arrays of the chosen entries."""
    k = min(k, sim.shape[1])
    if k <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    masked = np.where(sim < tau, sim, np.inf)
    cols = np.argsort(masked, axis=1, kind="stable")[:, :k]
    ok = np.isfinite(np.take_along_axis(masked, cols, 1))
    rows = np.broadcast_to(np.arange(sim.shape[0])[:, None], cols.shape)
    return rows[ok], cols[ok]


def top_per_row(x: np.ndarray, k: int) -> np.ndarray:
    """(V, N) scores -> (V, k) column indices of each row's k highest (ties: first wins)."""
    return np.argsort(-x, axis=1, kind="stable")[:, :k]


class SpecPrune(PruningMethod):
    name = "specprune"
    uses_alpha = True

    def __init__(self, alpha: float = 0.8, static: bool = True, dynamic_layers: bool = True,
                 controller: bool = True, use_global: bool = True,
                 layer_weighting: str = "entropy",
                 K_global: int = 30, K_local: int = 24, K_dynamic: int = 20,
                 K_local_fine: int = 40, K_dynamic_fine: int = 10,
                 K_local_no_global: int = 54, K_local_fine_no_global: int = 70,
                 tau: float = 0.95, frame_k: float = -1.0, frame_b: float = 7.0,
                 frame_offset: int = 4, local_layers=(0, 1), global_layers=(15, 31),
                 prune_layers=(10, 15, 20, 25), gamma: float = 0.9,
                 gamma_times_alpha: bool = False, beta: float = 0.2, rank_k: float = 0.05,
                 entropy_eps: float = 1e-6, vt_threshold: float = 0.5,
                 vr_threshold: float = 0.2, translation_dims=(0, 1, 2),
                 rotation_dims=(3, 4, 5), ref_layers: int = 32, ref_view_tokens: int = 256,
                 record_recall: bool = True, local_collision: str = "merge"):
        from bench.errors import UserError

        if alpha is None or not (0 < float(alpha) <= 1):
            raise UserError(f"specprune: alpha must be in (0, 1], got {alpha}")
        if layer_weighting not in ("entropy", "average"):
            raise UserError("specprune: layer_weighting must be entropy or average, got "
                            f"{layer_weighting!r}")
        if not 0 < gamma <= 1 or not 0 <= beta <= 1:
            raise UserError(f"specprune: need 0 < gamma <= 1 and 0 <= beta <= 1, got "
                            f"gamma={gamma}, beta={beta}")
        if len(translation_dims) != 3 or len(rotation_dims) != 3:
            raise UserError("specprune: translation_dims and rotation_dims need 3 entries each")
        if local_collision not in ("merge", "shift"):
            raise UserError(f"specprune: local_collision must be merge or shift, got "
                            f"{local_collision!r}")
        self.local_collision = local_collision
        if not local_layers or not global_layers:
            raise UserError("specprune: local_layers and global_layers must be non-empty")
        self.alpha = float(alpha)
        self.static, self.dynamic_layers = bool(static), bool(dynamic_layers)
        self.controller, self.use_global = bool(controller), bool(use_global)
        self.layer_weighting = layer_weighting
        self.K = {"global": K_global, "local": K_local, "dynamic": K_dynamic,
                  "local_fine": K_local_fine, "dynamic_fine": K_dynamic_fine,
                  "local_no_global": K_local_no_global,
                  "local_fine_no_global": K_local_fine_no_global}
        self.tau = float(tau)
        self.frame_k, self.frame_b, self.frame_offset = float(frame_k), float(frame_b), \
            int(frame_offset)
        self.paper_local_layers = [int(x) for x in local_layers]
        self.paper_global_layers = [int(x) for x in global_layers]
        self.paper_prune_layers = [int(x) for x in prune_layers]
        self.gamma = float(gamma) * (self.alpha if gamma_times_alpha else 1.0)
        self.beta, self.rank_k, self.entropy_eps = float(beta), float(rank_k), float(entropy_eps)
        self.vt_threshold, self.vr_threshold = float(vt_threshold), float(vr_threshold)
        self.translation_dims = tuple(int(x) for x in translation_dims)
        self.rotation_dims = tuple(int(x) for x in rotation_dims)
        self.ref_layers, self.ref_view_tokens = int(ref_layers), int(ref_view_tokens)
        self.record_recall = bool(record_recall)
        # T(v) is monotone in v; normalised actions bound v_t by sqrt(3)
        v_max = math.sqrt(len(self.translation_dims))
        self.max_frame_back = max(1, max(math.floor(self.frame_b + self.frame_k * v) +
                                         self.frame_offset for v in (0.0, v_max)))
        self.spec: ModelSpec | None = None
        self.reset()

    # ---------------------------------------------------------------- setup / scaling
    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec
        L = spec.num_layers
        lay = spec.layout
        segs = lay.of_kind(VISUAL)
        n_view = {s.length for s in segs}
        if len(n_view) != 1:
            raise ValueError(f"specprune needs equal-size camera views, got {sorted(n_view)}")
        self.n_view = n_view.pop()
        self.view_names = [s.name for s in segs]
        self.n_tokens = lay.n_tokens
        # Visual tokens are tracked by visual index j = position - v0 (view v: j in
        # [v * N, (v + 1) * N), row-major over its patch grid); this needs the views adjacent.
        vis_pos = lay.indices(VISUAL).numpy()
        self._v0, self.n_visual = int(vis_pos[0]), len(vis_pos)
        if not np.array_equal(vis_pos, np.arange(self._v0, self._v0 + self.n_visual)):
            raise ValueError("specprune needs the camera views' tokens adjacent in the sequence")
        self._n_other = self.n_tokens - self.n_visual
        self._all_vis = np.arange(self.n_visual)
        self._is_visual = lay.kind_of().numpy() == 1  # (n_tokens,) by original position

        local = []
        for layer in sorted(scale_layer(x, L, self.ref_layers) for x in self.paper_local_layers):
            if local and layer <= local[-1] and self.local_collision == "merge":
                continue  # METHODS.md's literal scaling: (0, 1) of 32 -> (0,) of 8
            layer = max(layer, local[-1] + 1) if local else layer
            if layer < L:
                local.append(layer)
        self.local_layers = local
        self.static_layer = local[-1]  # static pruning right after this layer
        self.global_layers = sorted({scale_layer(x, L, self.ref_layers)
                                     for x in self.paper_global_layers})
        lo = self.static_layer + 2
        prune = {max(lo, scale_layer(x, L, self.ref_layers)) for x in self.paper_prune_layers}
        self.prune_layers = sorted(p for p in prune if p < L)
        last = max(self.prune_layers, default=self.static_layer + 1)
        self.update_layers = list(range(self.static_layer + 1, last))

        s = self.n_view / self.ref_view_tokens
        self.k_rank = self.rank_k / s
        # sigmoid(-k * rank) for rank 0..n-1 and the normaliser for n tokens (sum over ranks < n)
        self._rank_w = 1.0 / (1.0 + np.exp(self.k_rank * np.arange(self.n_visual)))
        self._rank_norm = (1.0 / np.cumsum(self._rank_w)).tolist()

        def k(name: str) -> int:
            base = self.K[name]
            return 0 if base <= 0 else max(1, round_half_up(self.alpha * base * s))

        self.k_global = k("global")
        if self.use_global:
            self.k_local = {COARSE: k("local"), FINE: k("local_fine")}
        else:
            self.k_local = {COARSE: k("local_no_global"), FINE: k("local_fine_no_global")}
        self.k_dynamic = {COARSE: k("dynamic"), FINE: k("dynamic_fine")}

        self._need_global = self.use_global or self.record_recall
        self._req_first = [False] * L
        self._req_pruned = [False] * L
        for layer in range(L):
            g = self._need_global and layer in self.global_layers
            upd = self.dynamic_layers and layer in self.update_layers
            self._req_first[layer] = g or (upd and self.layer_weighting == "entropy")
            self._req_pruned[layer] = g or upd or (self.static and layer in self.local_layers)
        self._is_local = [x in self.local_layers for x in range(L)]
        self._is_update = [x in self.update_layers for x in range(L)]
        self._is_global = [x in self.global_layers for x in range(L)]
        self._prune_after = [x + 1 in self.prune_layers for x in range(L)]

    def scaled(self) -> dict[str, Any]:
        if self.spec is None:
            return {}
        return {
            "num_layers": self.spec.num_layers, "view_tokens": self.n_view,
            "local_layers": self.local_layers, "static_prune_after_layer": self.static_layer,
            "global_layers": self.global_layers, "score_update_layers": self.update_layers,
            "prune_layers": self.prune_layers, "gamma": self.gamma, "rank_k": self.k_rank,
            "K_global": self.k_global, "K_local": self.k_local, "K_dynamic": self.k_dynamic,
            "max_frame_back": self.max_frame_back,
            "notes": [
                f"local layers: paper (0, 1) of 32 collide for L < 48; local_collision="
                f"{self.local_collision} (merge: one local layer; shift: the first two)",
                "prune layer s: layer s runs on the top gamma by S (pruned after layer s-1); "
                "scaled prune layers < last local + 2 are raised to it, duplicates merged",
                "K per view = round(alpha * K * N_view / 256) half up, >= 1; rank_k / "
                "(N_view / 256); layers round(l * L / 32) half up, clamped to L-1",
            ],
        }

    # ---------------------------------------------------------------- episode state
    def reset(self) -> None:
        self._q = 0  # queries started this episode
        self._prev_important: np.ndarray | None = None  # (n_visual,) bool: G_{q-1}
        self._w_conf: dict[int, float] = {}
        self._v_t = self._v_r = self._dz = 0.0  # last executed action (rest at reset)
        self._stats: dict[str, Any] = {}

    @property
    def needs_patches(self) -> bool:
        return (self.static and self._q > 0
                and max(self.K["dynamic"], self.K["dynamic_fine"]) > 0)

    def frames_needed(self) -> list[int]:
        if not self.needs_patches:
            return []
        return [self._frame_back()]

    def _frame_back(self) -> int:
        return reference_frame_back(self._v_t, self.frame_k, self.frame_b, self.frame_offset,
                                    self.max_frame_back)

    def _mode(self) -> str:
        if not self.controller:
            return COARSE
        fine = self._v_t < self.vt_threshold and self._v_r < self.vr_threshold and self._dz <= 0
        return FINE if fine else COARSE

    # ---------------------------------------------------------------- per query
    # State per query: `_vis` (nv,) visual indices present, ascending; they sit at stream rows
    # v0 .. v0 + nv - 1 (only visual tokens are ever dropped, and they are adjacent), so a
    # layer's visual scores are one slice of its score vector. `_S` (nv,) is aligned with `_vis`.
    # Few calls per layer on purpose: on this CPU a small call right after a decoder layer is
    # several times dearer than in a warm loop, whatever the library.
    def before_llm(self, ctx: QueryContext | None, stream) -> None:
        first = self._q == 0
        self._q += 1
        self._first = first
        self._mode_now = self._mode()
        self._req = self._req_first if first else self._req_pruned
        self._vis = self._all_vis
        self._S: np.ndarray | None = None  # (nv,) float64 EMA score of the tokens `_vis`
        self._cur_global: list[tuple[np.ndarray, np.ndarray]] = []
        self._stats = {"mode": self._mode_now, "pruned": not first, "recall": float("nan"),
                       "v_t": self._v_t, "v_r": self._v_r}
        self._tm = dict.fromkeys(PARTS, 0.0)  # seconds per component this query
        if first or not self.static:
            return
        self._local_parts: list[np.ndarray] = []
        # V_global: the previous query's important set (top K_global per view)
        g = self._prev_important if self.use_global else None
        # V_dynamic
        d = None
        kd = self.k_dynamic[self._mode_now]
        want = self._frame_back()
        used = -1
        if kd > 0 and ctx is not None and ctx.patches and ctx.past_patches:
            avail = [x for x in ctx.past_patches if x <= want]
            if avail:
                t0 = _clock()
                used = max(avail)
                ref = ctx.past_patches[used]
                cur = np.stack([ctx.patches[v] for v in self.view_names])  # (V, N, P)
                old = np.stack([ref[v] for v in self.view_names])
                if cur.dtype == np.uint8 and old.dtype == np.uint8:  # the adapters' patches
                    sim = K.patch_cosine_u8(cur, old)
                else:
                    sim = patch_cosine(cur, old)
                d = K.least_similar_flat(sim, self.tau, kd, self.n_view)
                self._tm["similarity"] += _clock() - t0
        self._global_set, self._dyn_set = g, d
        self._stats.update(n_global=0 if g is None else g,
                           n_dynamic=0 if d is None else len(d),
                           ref_frame_back=want, ref_frame_used=used)

    def score_request(self, layer: int) -> str | None:
        return "text" if self._req[layer] else None

    def _top_per_view(self, dense: np.ndarray, k: int) -> np.ndarray:
        """Visual indices of each view's top k of (n_visual,) `dense` that are > -inf."""
        return K.top_per_view(dense, self.n_view, k)

    def after_layer(self, layer: int, stream, scores: AttentionScores | None) -> None:
        if scores is None:
            return
        n_keys = len(scores.key_orig_idx)
        if n_keys != self._n_other + len(self._vis):  # someone else changed the stream
            self._resync(scores.key_orig_idx, len(stream))
        tm = self._tm
        t0 = _clock()
        vis = self._vis  # the tokens these scores belong to (a prune below replaces _vis)
        v0, nv = self._v0, len(vis)
        # (nv,) score of the visual keys present: mean over heads and text rows
        vals = K.key_mean(scores.probs.numpy(), v0, nv)
        t1 = _clock()
        tm["scores"] += t1 - t0
        if self._first:
            if self._is_update[layer] and self.layer_weighting == "entropy":
                ent = attention_entropy(scores.probs[:, :, v0:v0 + nv])
                self._w_conf[layer] = 1.0 / (ent + self.entropy_eps)
                tm["entropy"] += _clock() - t1
        else:
            if self.static and self._is_local[layer]:
                dense = vals
                if nv != self.n_visual:  # pruned from outside: scores by visual index
                    dense = np.full(self.n_visual, -np.inf)
                    dense[vis] = vals
                if layer == self.static_layer:
                    self._static_prune(stream, dense, t1)
                else:
                    self._local_parts.append(
                        self._top_per_view(dense, self.k_local[self._mode_now]))
                    tm["topk"] += _clock() - t1
            elif self.dynamic_layers and self._is_update[layer] and nv:
                self._update_and_prune(layer, stream, vals)
        if self._is_global[layer] and self._need_global:
            self._cur_global.append((vis, vals))
            if layer == self.global_layers[-1]:
                t1 = _clock()
                self._finish_global()
                tm["topk"] += _clock() - t1

    def _resync(self, key: torch.Tensor, n_stream: int) -> None:
        """The visual tokens present, re-read from the keys after a change made outside this
        method (tests; another component dropping visual tokens)."""
        if len(key) != n_stream or bool((key < 0).any()):
            raise RuntimeError("specprune: attention keys must be the stream's own tokens "
                               "(no KV reuse, no inserted tokens)")
        key = key.numpy()
        vis = key[self._is_visual[key]] - self._v0
        if self._S is not None:
            self._S = self._S[np.isin(self._vis, vis)]
        self._vis = vis

    def _update_and_prune(self, layer: int, stream, vals: np.ndarray) -> None:
        """EMA update of S and, before a pruning layer, keep the top gamma by S."""
        t0 = _clock()
        n = len(vals)
        if self._S is None:
            self._S = np.zeros(n)
        S = self._S
        # S *= 1 - beta; rank r gets sigmoid(-k r) / sum_{r' < n} sigmoid(-k r'), times
        # beta * w_conf (rank by vals, descending, ties: first wins); then, before a pruning
        # layer, the top gamma by S stay (ties: first wins). The visual tokens present are
        # the stream rows v0 .. v0 + n - 1.
        scale = self.beta * self._w_conf.get(layer, 1.0) * self._rank_norm[n - 1]
        n_keep = min(n, max(1, round_half_up(self.gamma * n))) if self._prune_after[layer] else n
        self._S, self._vis, rows = K.ema_update_prune(
            S, vals, 1 - self.beta, self._rank_w, scale, n_keep, self._vis, self._v0,
            len(stream))
        t1 = _clock()
        self._tm["topk"] += t1 - t0
        if len(rows):
            stream.keep_rows(torch.from_numpy(rows))
            self._tm["prune"] += _clock() - t1

    def importance(self) -> dict[int, float]:
        """The EMA score S of each visual token carrying one, by original position."""
        if self._S is None:
            return {}
        return dict(zip((self._vis + self._v0).tolist(), self._S.tolist(), strict=True))

    def important_positions(self) -> list[int]:
        """Original positions of the important set G of the last query (V_global of the next)."""
        if self._prev_important is None:
            return []
        return (np.flatnonzero(self._prev_important) + self._v0).tolist()

    def _static_prune(self, stream, dense: np.ndarray, t0: float) -> None:
        """After the last local layer (scores `dense` by visual index): keep the union of its
        and the earlier local layers' top K_local per view, V_dynamic and V_global."""
        parts = self._local_parts
        earlier = _NO_IDX if not parts else parts[0] if len(parts) == 1 else np.concatenate(parts)
        sel, n_local, rows = K.static_select(
            dense, self.n_view, self.k_local[self._mode_now], earlier,
            _NO_IDX if self._dyn_set is None else self._dyn_set,
            _NO_MASK if self._global_set is None else self._global_set, self._vis, self._v0,
            len(stream))
        self._vis = self._vis[sel]  # of the visual tokens present (normally all)
        self._stats.update(n_local=n_local, kept_static=len(sel))
        t1 = _clock()
        self._tm["topk"] += t1 - t0  # the local top-k and the union of the three sets
        stream.keep_rows(torch.from_numpy(rows))
        self._tm["prune"] += _clock() - t1

    def _finish_global(self) -> None:
        """Average the global layers' scores (absent = 0; absent from all = never important),
        keep the per-view top K_global for the next query and record the recall (Eq. 1)."""
        cur = self._cur_global
        vis = cur[0][0] if len(cur) == 1 else np.concatenate([v for v, _ in cur])
        vals = cur[0][1] if len(cur) == 1 else np.concatenate([x for _, x in cur])
        prev = self._prev_important
        important, inter, count = K.global_important(
            self.n_visual, self.n_view, self.k_global, vis, vals, len(cur),
            _NO_MASK if prev is None else prev)
        if prev is not None and count:
            self._stats["recall"] = float(inter) / float(count)
        self._prev_important = important

    def observe(self, ctx: QueryContext | None, actions: torch.Tensor) -> None:
        """actions: (chunk, action_dim) normalised; the last row is the last executed action."""
        a = actions.detach().reshape(-1, actions.shape[-1])[-1].tolist()
        _, self._v_t, self._v_r, self._dz = controller_mode(
            a, self.vt_threshold, self.vr_threshold, self.translation_dims, self.rotation_dims)

    def query_stats(self) -> dict[str, Any]:
        """Per-query record, built outside the timed call (set sizes are counted here)."""
        out = dict(self._stats)
        if isinstance(out.get("n_global"), np.ndarray):
            out["n_global"] = int(out["n_global"].sum())
        for k, v in getattr(self, "_tm", {}).items():
            out["ms_" + k] = 1e3 * v
        return out
