"""DivPrune (Alvar et al., CVPR 2025): at the language-model input, keep a maximally diverse
subset of the projected visual embeddings (distance = 1 - cosine, greedy max-min), per view
(`per_view: true`, METHODS.md decision), positions preserved. No attention needed.

`keep` (total over views): an integer at paper scale (256-token views; scaled to this model as
round(keep * N_view / 256)), or `match_specprune`: the same mean visual tokens per decoder layer
as the SpecPrune run at alpha `match_alpha` (DivPrune keeps the same count at every layer, so
keep = that mean, rounded). Per view the total is split evenly (remainder to the first views).
"""

from __future__ import annotations

import torch

from pruning.base import ModelSpec, PruningMethod
from pruning.common import (
    MATCH,
    check_reference,
    cosine_distance,
    greedy_maxmin,
    scale_count,
    solve_keep,
    specprune_reference,
    split_even,
    view_length,
)
from pruning.layout import VISUAL


class DivPrune(PruningMethod):
    name = "divprune"
    uses_alpha = False

    def __init__(self, alpha: float | None = None, keep: int | str = MATCH, per_view: bool = True,
                 match_alpha: float = 0.8, match_model: str | None = None,
                 match_suite: str | None = None, match_root: str = "results/runs"):
        self.alpha = alpha
        self.keep = keep
        self.per_view = bool(per_view)
        self._ref = None
        if keep == MATCH:
            self._ref = specprune_reference(match_model, match_suite, match_root, match_alpha)
        elif not isinstance(keep, int) or keep < 1:
            raise ValueError(f"divprune keep must be a positive integer or {MATCH!r}, got {keep!r}")

    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec
        lay = spec.layout
        n_visual = lay.n_visual
        if self._ref is not None:
            check_reference(self._ref, spec.num_layers, n_visual)
            self.keep_n = solve_keep(self._ref["mean"], 0, spec.num_layers, n_visual)
        else:
            self.keep_n = min(scale_count(int(self.keep), view_length(lay)), n_visual)
        segs = lay.of_kind(VISUAL)
        self._groups = ([torch.arange(s.start, s.end) for s in segs] if self.per_view
                        else [lay.indices(VISUAL)])
        self._group_keep = split_even(self.keep_n, len(self._groups))

    def select(self, embeds: torch.Tensor) -> torch.Tensor:
        """embeds: (1, n_tokens, D) -> (keep_n,) original positions kept, ascending."""
        kept = []
        for idx, k in zip(self._groups, self._group_keep, strict=True):
            if k >= len(idx):
                kept.append(idx)
                continue
            order = greedy_maxmin(cosine_distance(embeds[0, idx]), k)
            kept.append(idx[order])
        return torch.cat(kept).sort().values

    def before_llm(self, ctx, stream) -> None:
        if self.keep_n >= self.spec.layout.n_visual:
            return
        stream.keep_visual(self.select(stream.hidden))

    def scaled(self) -> dict:
        out = {"keep": self.keep_n, "keep_per_view": self._group_keep}
        if self._ref is not None:
            out["matched_mean_visual"] = self._ref["mean"]
            out["matched_run"] = self._ref["path"]
        return out
