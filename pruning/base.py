"""The interface every pruning method implements: answers at fixed points of the shared loop.

The shared pruned forward (`pruning.forward`) calls, per policy query:

1. `frames_needed()` (before the query, by the runner): past frames, in env steps back, the
   method wants as reference images (`QueryContext.past_patches`).
2. `before_llm(ctx, stream)`: input-level selection (DivPrune, SpecPrune's static set).
3. per decoder layer l:
   - `skip_layer(l)`: skip the whole layer (EfficientVLA);
   - `kv_reuse(l, stream)`: tokens to serve from the previous query's keys/values from this
     layer on (VLA-Cache), and `kv_lookup(l, orig_idx)` to fetch them;
   - `score_request(l)`: which query rows' attention the method wants from this layer
     ("text", "action" or "last"); the loop computes exactly those softmax rows from q and k;
   - `after_layer(l, stream, scores)`: prune / insert tokens for the following layers;
   - `wants_kv(l)` / `record_kv(l, orig_idx, k, v)`: receive this layer's keys and values.
4. `observe(ctx, actions)`: after the policy call, the normalised action chunk.

A method prunes only visual tokens; it edits the `TokenStream` it is handed, never model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pruning.layout import TokenLayout


@dataclass
class ModelSpec:
    """What a method may know about the model: depth, heads, layout of the full sequence."""

    num_layers: int
    num_heads: int
    hidden_size: int
    causal: bool
    layout: TokenLayout
    patch_size: int
    model_id: str = ""  # name + weights identity, for per-model caches (e.g. calibration)


@dataclass
class QueryContext:
    """One policy query.

    patches: view -> (N_view, patch_size*patch_size*3) raw pixels (uint8 numpy from the model
        adapters; any numeric array works with `pruning.common.patch_cosine`) of the image the
        model sees, row-major over the patch grid.
    past_patches: env-steps-back -> {view -> patches}, for the frames `frames_needed()` asked for
        (clamped to frames that exist: steps_back <= step).
    input_embeds: (1, n_tokens, D) the decoder input (visual tokens already projected).
    """

    layout: TokenLayout
    step: int
    query_idx: int
    patches: dict[str, np.ndarray]
    past_patches: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    input_embeds: torch.Tensor | None = None


class AttentionScores:
    """Softmax attention rows computed on request at one layer.

    probs: (H, m, n_keys) attention of the m requested query rows over every key present.
    key_orig_idx: (n_keys,) original position of each key (-1 for inserted tokens).
    query_orig_idx: (m,) original position of each query row; the shared loop passes
        `query_of=(stream orig_idx, rows)` instead and it is looked up on first use (most
        methods never read it, and every tensor op after a decoder layer is dear here).
    """

    def __init__(self, probs: torch.Tensor, key_orig_idx: torch.Tensor,
                 query_orig_idx: torch.Tensor | None = None, query_of=None):
        self.probs = probs
        self.key_orig_idx = key_orig_idx
        self._query = query_orig_idx
        self._query_of = query_of

    @property
    def query_orig_idx(self) -> torch.Tensor:
        if self._query is None:
            orig, rows = self._query_of
            self._query = orig[rows]
        return self._query

    def visual(self, layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, m, k) probs restricted to visual keys, and their (k,) original positions."""
        is_vis = torch.zeros(self.key_orig_idx.shape[0], dtype=torch.bool)
        ok = self.key_orig_idx >= 0
        is_vis[ok] = layout.kind_of()[self.key_orig_idx[ok]] == 1
        return self.probs[:, :, is_vis], self.key_orig_idx[is_vis]

    def visual_mean(self, layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor]:
        """(k,) score per visual key, mean over heads and query rows; and (k,) original positions."""
        p, idx = self.visual(layout)
        return p.mean(dim=(0, 1)), idx


class PruningMethod:
    """Base class: the unpruned model (`none`). Subclasses override the hooks they need."""

    name = "none"

    def setup(self, spec: ModelSpec) -> None:
        self.spec = spec

    def reset(self) -> None:
        """Start of an episode: forget everything carried between queries."""

    def frames_needed(self) -> list[int]:
        return []

    def before_llm(self, ctx: QueryContext, stream) -> None:
        pass

    def skip_layer(self, layer: int) -> bool:
        return False

    def kv_reuse(self, layer: int, stream) -> torch.Tensor | None:
        """(r,) original positions of stream tokens to serve from cache from this layer on."""
        return None

    def kv_lookup(self, layer: int, orig_idx: torch.Tensor):
        """Cached post-RoPE (k, v), each (1, H_kv, r, head_dim), for `orig_idx` at `layer`."""
        raise NotImplementedError

    def wants_kv(self, layer: int) -> bool:
        return False

    def record_kv(self, layer: int, orig_idx: torch.Tensor, k: torch.Tensor,
                  v: torch.Tensor) -> None:
        pass

    def score_request(self, layer: int) -> str | None:
        return None

    def after_layer(self, layer: int, stream, scores: AttentionScores | None) -> None:
        pass

    def observe(self, ctx: QueryContext, actions: torch.Tensor) -> None:
        """actions: (chunk, action_dim) the normalised chunk the policy returned."""

    def query_stats(self) -> dict[str, Any]:
        """Per-query facts to record (mode, recall, ...); JSON-serialisable."""
        return {}

    def scaled(self) -> dict[str, Any]:
        """Hyper-parameters after scaling to this model (layers, token counts) for the manifest."""
        return {}
