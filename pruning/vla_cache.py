"""VLA-Cache (Xu et al., NeurIPS 2025): reuse the previous query's keys/values of static,
task-irrelevant visual tokens.

Per query (after the first of an episode, which runs in full and fills the cache):
1. Static tokens, per view: raw-pixel patch cosine similarity to the same patch in the frame the
   token's cached keys/values were computed on at least `sim_threshold` (0.996); at most
   `max_static` per view (the most similar; paper 150 per 256-token view, scaled).
2. Task-relevant tokens, per view: top `relevant_top` (paper 100 per 256, scaled) by the previous
   query's text->visual score at `relevance_layer` (paper 15 of 32, scaled). They are recomputed.
3. Reusable = static minus relevant, most similar first. Per-layer reuse fraction from the
   previous query's attention entropy (per layer < L-1: mean over text-query rows of the entropy
   of the head-averaged attention row): reuse = 1 - minmax(entropy); an increase over the
   previous layer is damped by `growth` (0.55), as the authors' `get_layer_mask_schedule`.
   At each reuse layer (authors' OpenVLA code: 2, 6, 9, 11 of 32, scaled) the first
   max(1, int(fraction * n)) reusable tokens of each view are served from the cache from that
   layer on (the loop's KV reuse: they leave the stream and their cached post-RoPE k, v join every
   later layer's keys). Sets only grow with depth (a cached token stays cached).

The cache holds, per layer, the post-RoPE k, v of every position as last computed; tokens served
from the cache keep their old entries. Decisions: the reference image of a token is the frame its
cached k, v were computed on (METHODS.md), so a token's reference patch is refreshed only at the
queries where it was computed in full (not served from the cache at any layer); the entropy and
relevance scores use text-query rows (the authors use all rows of the full attention maps), so
only those rows are computed.
"""

from __future__ import annotations

import numpy as np
import torch

from pruning.base import AttentionScores, ModelSpec, PruningMethod
from pruning.common import patch_cosine, scale_count, scale_layer, view_length
from pruning.layout import VISUAL


def reuse_schedule(entropy: torch.Tensor, growth: float = 0.55) -> torch.Tensor:
    """(n,) per-layer attention entropy -> (n,) reuse fraction: 1 - minmax, damped increases."""
    e = entropy.float()
    reuse = 1.0 - (e - e.min()) / (e.max() - e.min() + 1e-10)
    out = reuse.tolist()
    for i in range(1, len(out)):
        delta = out[i] - out[i - 1]
        if delta > 0:
            out[i] = out[i - 1] + delta * growth
    return torch.tensor(out)


class VLACache(PruningMethod):
    name = "vla_cache"
    uses_alpha = False
    needs_patches = True

    def __init__(self, alpha: float | None = None, sim_threshold: float = 0.996,
                 max_static: int = 150, relevant_top: int = 100, relevance_layer: int = 15,
                 reuse_layers=(2, 6, 9, 11), growth: float = 0.55):
        self.alpha = alpha
        self.sim_threshold = float(sim_threshold)
        self.max_static = int(max_static)
        self.relevant_top = int(relevant_top)
        self.relevance_layer = int(relevance_layer)
        self.reuse_layers = [int(x) for x in reuse_layers]
        self.growth = float(growth)
        self.reset()

    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec
        L = spec.num_layers
        lay = spec.layout
        n_view = view_length(lay)
        self.max_static_n = min(scale_count(self.max_static, n_view), n_view)
        self.relevant_n = min(scale_count(self.relevant_top, n_view), n_view)
        self.rel_layer = scale_layer(self.relevance_layer, L)
        self.reuse_at = sorted({min(scale_layer(x, L), max(L - 2, 0)) for x in self.reuse_layers})
        self._views = [(s.name, s.start, s.end) for s in lay.of_kind(VISUAL)]
        self._vis_start = lay.indices(VISUAL)[0].item()
        if getattr(self, "_n_tokens", None) != lay.n_tokens:
            self.reset()
        self._n_tokens = lay.n_tokens

    def reset(self) -> None:
        self._kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._ref: dict[str, np.ndarray] | None = None  # view -> (N_view, P) reference patches
        self._relevance: torch.Tensor | None = None  # (n_visual,) previous query's scores
        self._entropy: dict[int, float] = {}
        self._plan: list[torch.Tensor] = []  # per view: reusable orig positions, best first
        self._n_served: list[int] = []
        self._cur_entropy: dict[int, float] = {}
        self._cur_relevance: torch.Tensor | None = None
        self._stats = {}

    # ---- planning ------------------------------------------------------------------------
    def before_llm(self, ctx, stream) -> None:
        self._plan, self._n_served = [], []
        self._cur_entropy: dict[int, float] = {}
        if self._ref is None or self._relevance is None or not self._kv:
            self._stats = {"static": 0, "reused": 0}
            return
        n_static = 0
        for name, start, end in self._views:
            sim = patch_cosine(ctx.patches[name], self._ref[name])
            static = np.flatnonzero(sim >= self.sim_threshold)
            static = static[np.argsort(-sim[static], kind="stable")]  # most similar first
            static = torch.from_numpy(static[: self.max_static_n])
            n_static += len(static)
            rel = self._relevance[start - self._vis_start:end - self._vis_start]
            relevant = torch.topk(rel, self.relevant_n).indices
            reusable = static[~torch.isin(static, relevant)]
            self._plan.append(reusable + start)
            self._n_served.append(0)
        L = self.spec.num_layers
        ent = torch.tensor([self._entropy.get(li, 0.0) for li in range(max(L - 1, 1))])
        self._fraction = reuse_schedule(ent, self.growth)
        self._stats = {"static": n_static, "reused": 0}

    def kv_reuse(self, layer: int, stream) -> torch.Tensor | None:
        if not self._plan or layer not in self.reuse_at:
            return None
        frac = float(self._fraction[layer])
        new = []
        for i, reusable in enumerate(self._plan):
            if len(reusable) == 0:
                continue
            n = min(max(1, int(frac * len(reusable))), len(reusable))
            if n > self._n_served[i]:
                new.append(reusable[self._n_served[i]:n])
                self._n_served[i] = n
        if not new:
            return None
        out = torch.cat(new)
        self._stats["reused"] += len(out)
        return out

    def kv_lookup(self, layer: int, orig_idx: torch.Tensor):
        k, v = self._kv[layer]
        return k[:, :, orig_idx], v[:, :, orig_idx]

    # ---- recording -----------------------------------------------------------------------
    def wants_kv(self, layer: int) -> bool:
        return True

    def record_kv(self, layer: int, orig_idx: torch.Tensor, k: torch.Tensor,
                  v: torch.Tensor) -> None:
        if layer not in self._kv:
            shape = (k.shape[0], k.shape[1], self._n_tokens, k.shape[3])
            self._kv[layer] = (k.new_zeros(shape), v.new_zeros(shape))
        ck, cv = self._kv[layer]
        ck.index_copy_(2, orig_idx, k)
        cv.index_copy_(2, orig_idx, v)

    def score_request(self, layer: int) -> str | None:
        L = self.spec.num_layers
        return "text" if layer < L - 1 or layer == self.rel_layer else None

    def after_layer(self, layer: int, stream, scores: AttentionScores | None) -> None:
        if scores is None:
            return
        if layer < self.spec.num_layers - 1:
            p = scores.probs.mean(dim=0)  # (m, n_keys), rows sum to 1
            ent = -(p * torch.log(p + 1e-10)).sum(dim=-1).mean()
            self._cur_entropy[layer] = float(ent)
        if layer == self.rel_layer:
            s, idx = scores.visual_mean(self.spec.layout)
            rel = torch.zeros(self.spec.layout.n_visual)
            rel[idx - self._vis_start] = s
            self._cur_relevance = rel

    def observe(self, ctx, actions) -> None:
        served = torch.cat(self._plan_served()) if self._plan else torch.zeros(0, dtype=torch.long)
        if self._ref is None:
            self._ref = {k: np.array(v, copy=True) for k, v in ctx.patches.items()}
        else:
            served = served.numpy()
            for name, start, _end in self._views:
                fresh = np.ones(len(self._ref[name]), dtype=bool)
                mine = served[(served >= start) & (served < start + len(fresh))] - start
                fresh[mine] = False
                self._ref[name][fresh] = np.asarray(ctx.patches[name])[fresh]
        self._entropy = dict(self._cur_entropy)
        self._relevance = self._cur_relevance

    def _plan_served(self) -> list[torch.Tensor]:
        return [p[:n] for p, n in zip(self._plan, self._n_served, strict=True)]

    def query_stats(self) -> dict:
        return dict(self._stats)

    def scaled(self) -> dict:
        return {"max_static": self.max_static_n, "relevant_top": self.relevant_n,
                "relevance_layer": self.rel_layer, "reuse_layers": self.reuse_at}
