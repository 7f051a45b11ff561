"""SparseVLM (Zhang et al., ICML 2025): text-guided visual-token sparsification with recycling.

1. Text raters, once per query, on the decoder input embeddings: relevance of instruction token
   t = mean over visual tokens v of softmax_t(V T^T)[v, t]; raters are the tokens whose
   relevance is above the mean (all instruction tokens if none is).
2. At each pruning layer (paper 2, 6, 15 of 32; scaled half-up) on that layer's output: score
   every visual token present by the attention it receives from the rater rows (mean over heads
   and raters; text rows requested from the loop, rater rows picked from them) and keep the top
   `count` of the schedule (paper: 300, 200, 110 of 576; scaled to this model's visual count).
   Tokens inserted at an earlier pruning layer are visual tokens like the others here.
3. Recycling: of the tokens pruned at that layer, the top `recycle_ratio` (30%) by score,
   n of them, are clustered by density-peak kNN clustering (DPC-kNN, as the authors' code:
   distances / sqrt(D), density exp(-mean squared distance to the k nearest, self included),
   k = the number of centres unless `knn` is set) into int(n / centres_per) + 1 centres; each
   centre is the mean hidden state of its members and is inserted after the kept visual tokens.

Decision (position ids of the centres): every centre gets the position id of the last visual
token of the full layout, i.e. it sits at the end of the image in RoPE space, right where it is
inserted in the sequence. Position ids then stay non-decreasing along the sequence, so the loop
keeps the fused causal kernel (no explicit mask) and the centres precede the text as visual
tokens do.
"""

from __future__ import annotations

import torch

from pruning.base import AttentionScores, ModelSpec, PruningMethod
from pruning.common import round_half_up, scale_layer
from pruning.layout import TEXT, VISUAL


def text_raters(visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """visual (n_v, D), text (n_t, D) -> (n_t,) bool: the rater text tokens."""
    rel = torch.softmax(visual.float() @ text.float().T, dim=-1).mean(dim=0)
    raters = rel > rel.mean()
    return raters if raters.any() else torch.ones_like(raters)


def dpc_knn(x: torch.Tensor, n_centres: int, k: int | None = None) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
    """Density-peak kNN clustering of (m, D) points into n_centres clusters.

    Returns (assign (m,) cluster id in [0, n_centres), centre_idx (n_centres,)).
    """
    m, d = x.shape
    n_centres = min(n_centres, m)
    k = min(k or n_centres, m)
    dist = torch.cdist(x.float(), x.float()) / d ** 0.5
    nearest = torch.topk(dist, k, dim=-1, largest=False).values
    density = torch.exp(-(nearest ** 2).mean(dim=-1))
    higher = density[None, :] > density[:, None]  # [i, j]: j denser than i
    delta = torch.where(higher, dist, dist.max()).min(dim=-1).values
    centres = torch.topk(delta * density, n_centres).indices
    assign = dist[:, centres].argmin(dim=-1)
    assign[centres] = torch.arange(n_centres)
    return assign, centres


def merge_clusters(x: torch.Tensor, assign: torch.Tensor, n: int) -> torch.Tensor:
    """(m, D) points, (m,) cluster ids -> (n, D) cluster means."""
    out = torch.zeros(n, x.shape[1], dtype=x.dtype).index_add_(0, assign, x)
    counts = torch.bincount(assign, minlength=n).clamp(min=1).to(x.dtype)
    return out / counts[:, None]


class SparseVLM(PruningMethod):
    name = "sparsevlm"
    uses_alpha = False

    def __init__(self, alpha: float | None = None, layers=(2, 6, 15), schedule=(300, 200, 110),
                 schedule_total: int = 576, recycle: bool = True, recycle_ratio: float = 0.3,
                 centres_per: int = 10, knn: int | None = None):
        if len(layers) != len(schedule):
            raise ValueError("sparsevlm: layers and schedule must have the same length")
        self.alpha = alpha
        self.layers = [int(x) for x in layers]
        self.schedule = [int(x) for x in schedule]
        self.schedule_total = int(schedule_total)
        self.recycle = bool(recycle)
        self.recycle_ratio = float(recycle_ratio)
        self.centres_per = int(centres_per)
        self.knn = knn
        self._raters = torch.zeros(0, dtype=torch.long)
        self._last = {}

    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec
        n_vis = spec.layout.n_visual
        self.counts: dict[int, int] = {}
        for layer, count in zip(self.layers, self.schedule, strict=True):
            li = scale_layer(layer, spec.num_layers)
            c = round_half_up(count * n_vis / self.schedule_total)
            self.counts[li] = min(c, self.counts.get(li, c))
        self._centre_pos = int(spec.layout.indices(VISUAL)[-1])

    def before_llm(self, ctx, stream) -> None:
        vis = stream.kind_mask(VISUAL)
        txt = stream.kind_mask(TEXT)
        r = text_raters(stream.hidden[0, vis], stream.hidden[0, txt])
        self._raters = stream.orig_idx[txt][r]

    def score_request(self, layer: int) -> str | None:
        return "text" if layer in self.counts else None

    def after_layer(self, layer: int, stream, scores: AttentionScores | None) -> None:
        if scores is None or layer not in self.counts:
            return
        rows = torch.isin(scores.query_orig_idx, self._raters)
        per_key = scores.probs[:, rows].mean(dim=(0, 1))  # (n_keys,) in stream order
        vis_pos = torch.nonzero(stream.kind_mask(VISUAL)).flatten()
        keep_n = self.counts[layer]
        if len(vis_pos) <= keep_n:
            return
        order = torch.argsort(per_key[vis_pos], descending=True, stable=True)
        pruned = vis_pos[order[keep_n:]]  # by descending score
        drop = torch.zeros(len(stream), dtype=torch.bool)
        drop[pruned] = True
        centres = None
        n_rec = int(self.recycle_ratio * len(pruned)) if self.recycle else 0
        if n_rec > 0:
            x = stream.hidden[0, pruned[:n_rec]]
            n_c = min(n_rec // self.centres_per + 1, n_rec)
            assign, _ = dpc_knn(x, n_c, self.knn)
            centres = merge_clusters(x, assign, n_c)
        stream.drop(drop)
        if centres is not None:
            stream.insert_after_visual(centres.unsqueeze(0),
                                       torch.full((len(centres),), self._centre_pos))
        self._last[layer] = {"kept": keep_n, "centres": 0 if centres is None else len(centres)}

    def query_stats(self) -> dict:
        return {"raters": len(self._raters)}

    def scaled(self) -> dict:
        return {"layers": sorted(self.counts), "counts": [self.counts[k] for k in
                                                          sorted(self.counts)]}
