"""FastV (Chen et al., ECCV 2024): after layer K-1, keep the `keep` visual tokens that receive the
most attention from the action-query tokens (mean over heads and query rows); drop the rest for
every later layer. Positions are preserved (the loop keeps original position ids).

`keep`:
- an integer: visual tokens kept in total, at paper scale (per 256-token views; scaled to this
  model as round(keep * N_view / 256));
- `match_specprune`: the count that gives the same mean visual tokens per decoder layer as the
  SpecPrune run at alpha `match_alpha` for the same model and suite
  (`results/runs/{model}/{suite}/specprune/alpha=0.8/episodes.jsonl`): with K layers on all N
  visual tokens and L-K on `keep`, keep = (L * mean - K * N) / (L - K). Model and suite are the
  running Hydra job's unless `match_model` / `match_suite` are set.
"""

from __future__ import annotations

import torch

from pruning.base import AttentionScores, ModelSpec, PruningMethod
from pruning.common import (
    MATCH,
    check_reference,
    scale_count,
    scale_layer,
    solve_keep,
    specprune_reference,
    view_length,
)


class FastV(PruningMethod):
    name = "fastv"
    uses_alpha = False

    def __init__(self, alpha: float | None = None, layer: int = 2, keep: int | str = MATCH,
                 score_rows: str = "action", match_alpha: float = 0.8,
                 match_model: str | None = None, match_suite: str | None = None,
                 match_root: str = "results/runs"):
        self.alpha = alpha
        self.layer = int(layer)
        self.keep = keep
        self.score_rows = score_rows
        self.match_alpha = float(match_alpha)
        self._ref = None
        if keep == MATCH:
            self._ref = specprune_reference(match_model, match_suite, match_root, match_alpha)
        elif not isinstance(keep, int) or keep < 1:
            raise ValueError(f"fastv keep must be a positive integer or {MATCH!r}, got {keep!r}")

    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec
        L = spec.num_layers
        n_visual = spec.layout.n_visual
        # prune before layer K (scaled), at least 1 so layer K-1 exists to score at
        self.k_layer = max(scale_layer(self.layer, L), 1)
        if self._ref is not None:
            check_reference(self._ref, L, n_visual)
            self.keep_n = solve_keep(self._ref["mean"], self.k_layer, L, n_visual)
        else:
            self.keep_n = min(scale_count(int(self.keep), view_length(spec.layout)), n_visual)

    def score_request(self, layer: int) -> str | None:
        return self.score_rows if layer == self.k_layer - 1 else None

    def after_layer(self, layer: int, stream, scores: AttentionScores | None) -> None:
        if layer != self.k_layer - 1 or scores is None:
            return
        s, idx = scores.visual_mean(self.spec.layout)
        if self.keep_n < len(idx):
            top = torch.topk(s, self.keep_n).indices
            stream.keep_visual(idx[top])

    def scaled(self) -> dict:
        out = {"layer": self.k_layer, "keep": self.keep_n}
        if self._ref is not None:
            out["matched_mean_visual"] = self._ref["mean"]
            out["matched_run"] = self._ref["path"]
        return out
