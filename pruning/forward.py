"""The one shared pruned forward over a Llama-style decoder, used by every method.

The loop runs each decoder layer from its own submodules (norms, q/k/v/o projections, rotary
embedding, MLP) with PyTorch's fused attention kernel, on a `TokenStream` that a method may
shrink between layers. Every token keeps its original position id, so RoPE positions are those
of the full sequence.

Attention scores are computed only when a method asks, for the query rows it asks for. At such
a layer the attention runs in the math path (QK^T, softmax, times V) instead of the fused
kernel, and the requested rows are read off that layer's own softmax: the scores are a
by-product of the attention the layer computes anyway, as in the papers' eager-attention code.
Computing the rows separately next to the fused kernel cost 50-170 us a layer on this CPU; the
math path costs about what the fused kernel costs at these sizes (within ~10% at 2 threads,
n = 80-220 tokens; `python -m scripts.bench_call_costs`, results/overhead/call_costs.json). Whatever it costs more or less lands in the decoder stage and in
the measured end-to-end latency; reading the rows off is counted as method time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from pruning.base import AttentionScores, PruningMethod
from pruning.layout import ACTION, TEXT, VISUAL, TokenLayout


@dataclass
class DecoderSpec:
    """The decoder the loop runs: `layers` are LlamaDecoderLayer-shaped modules."""

    layers: list
    rotary_emb: torch.nn.Module
    norm: torch.nn.Module
    num_heads: int
    num_kv_heads: int
    head_dim: int
    causal: bool = True


class TokenStream:
    """The tokens present at a point of the loop, in sequence order.

    hidden: (1, n, D); orig_idx: (n,) long, position in the full layout (-1 for inserted
    tokens); pos: (n,) long RoPE position id (original position; inserted tokens get the one
    their inserter chose).
    """

    def __init__(self, hidden: torch.Tensor, layout: TokenLayout):
        n = hidden.shape[1]
        self.hidden = hidden
        self.layout = layout
        self.orig_idx = torch.arange(n)
        self.pos = torch.arange(n)
        self._kind = layout.kind_of()
        self._view = layout.view_of()
        self.order_preserved = True  # tokens in ascending position order
        self.n_inserted = 0  # tokens with no original position (orig_idx -1)
        self._masks: dict[str, torch.Tensor] = {}  # kind masks, valid until the stream changes

    def __len__(self) -> int:
        return self.hidden.shape[1]

    def _mask(self, kind: str) -> torch.Tensor:
        """(n,) bool kind mask, cached until the stream changes (read-only: do not modify)."""
        out = self._masks.get(kind)
        if out is None:
            code = {VISUAL: 1, TEXT: 2, ACTION: 3}[kind]
            if self.n_inserted == 0:  # every token has an original position
                out = self._kind[self.orig_idx] == code
            else:
                out = torch.zeros(len(self), dtype=torch.bool)
                ok = self.orig_idx >= 0
                out[ok] = self._kind[self.orig_idx[ok]] == code
                if kind == VISUAL:
                    out[~ok] = True
            self._masks[kind] = out
        return out

    def kind_mask(self, kind: str) -> torch.Tensor:
        """(n,) bool: stream tokens of `kind` (inserted tokens count as visual)."""
        return self._mask(kind).clone()

    def tail_rows(self, kind: str) -> slice | None:
        """Stream rows of `kind` as a slice, when all its tokens form one run after the last
        visual token of the layout (text and action queries in every supported model). Methods
        drop visual tokens only and insert right after the visual ones, so such tokens keep
        their distance from the end of the stream: their rows need no search (no tensor op).
        None for other kinds."""
        span = self.layout.tail_spans.get(kind)
        if span is None:
            return None
        back = self.layout.n_tokens - span[0]
        start = len(self) - back
        return slice(start, start + span[1] - span[0])

    def rows(self, kind: str) -> torch.Tensor:
        """(m,) long stream rows of `kind`, ascending (cached until the stream changes)."""
        tail = self.tail_rows(kind)
        if tail is not None:
            return _arange(tail.stop)[tail]
        key = "rows:" + kind
        out = self._masks.get(key)
        if out is None:
            out = self._masks[key] = torch.nonzero(self._mask(kind)).flatten()
        return out

    def visual_orig_idx(self) -> torch.Tensor:
        """(k,) original positions of the (non-inserted) visual tokens present."""
        m = self._mask(VISUAL) & (self.orig_idx >= 0)
        return self.orig_idx[m]

    def n_visual(self) -> int:
        n = self._masks.get("n_visual")
        if n is None:
            n = self._masks["n_visual"] = int(self._mask(VISUAL).sum())
        return n

    def keep_visual(self, keep_orig_idx: torch.Tensor) -> None:
        """Keep only the visual tokens whose original positions are in `keep_orig_idx`
        (non-visual tokens always stay; inserted tokens stay unless dropped explicitly)."""
        vis = self._mask(VISUAL) & (self.orig_idx >= 0)
        keep = torch.zeros(self.layout.n_tokens, dtype=torch.bool)
        keep[keep_orig_idx] = True
        drop = vis & ~keep[self.orig_idx.clamp(min=0)]
        self._select(~drop)

    def drop(self, stream_mask: torch.Tensor) -> None:
        """Drop the tokens at the True positions of the (n,) bool mask (non-visual refused)."""
        if (stream_mask & ~self._mask(VISUAL)).any():
            raise ValueError("methods may drop visual tokens only")
        self._select(~stream_mask)

    def keep_visual_rows(self, rows: torch.Tensor) -> None:
        """Keep every non-visual token and the visual tokens at stream rows `rows` ((r,) long,
        taken from `rows(VISUAL)`); drop the other visual tokens."""
        keep = ~self._mask(VISUAL)
        keep[rows] = True
        self._select(keep)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep exactly the stream rows `rows` ((r,) long, ascending) and drop the rest. Fast
        path for a method that knows which rows are visual (SpecPrune: the views' tokens are
        adjacent and only visual tokens were dropped, so they are one run of rows): the caller
        guarantees every dropped row is a visual token (`keep_visual_rows` checks it)."""
        self._select_idx(rows)

    def _select(self, keep: torch.Tensor) -> None:
        self._select_idx(torch.nonzero(keep).flatten())

    def _select_idx(self, idx: torch.Tensor) -> None:
        self._masks = {}
        self.hidden = self.hidden.index_select(1, idx)
        self.orig_idx = self.orig_idx.index_select(0, idx)
        self.pos = self.pos.index_select(0, idx)
        if self.n_inserted:
            self.n_inserted = int((self.orig_idx < 0).sum())

    def insert_after_visual(self, hidden: torch.Tensor, pos: torch.Tensor) -> None:
        """Insert (1, r, D) tokens after the last visual token present, with position ids (r,)."""
        vis = self.rows(VISUAL)
        at = int(vis[-1]) + 1 if len(vis) else 1
        self.hidden = torch.cat([self.hidden[:, :at], hidden, self.hidden[:, at:]], dim=1)
        r = hidden.shape[1]
        self._masks = {}
        self.n_inserted += r
        self.orig_idx = torch.cat([self.orig_idx[:at], torch.full((r,), -1), self.orig_idx[at:]])
        self.pos = torch.cat([self.pos[:at], pos.to(torch.long), self.pos[at:]])
        self.order_preserved = self.order_preserved and bool((self.pos[1:] >= self.pos[:-1]).all())


_ARANGE: list[torch.Tensor] = [torch.arange(0)]


def _arange(n: int) -> torch.Tensor:
    """A cached arange of at least n (slices of it are views: no op per call)."""
    if len(_ARANGE[0]) < n:
        with torch.inference_mode(False):  # a normal tensor: usable with autograd on too
            _ARANGE[0] = torch.arange(max(n, 2 * len(_ARANGE[0]), 1024))
    return _ARANGE[0]


@dataclass
class LayerShape:
    """What one layer ran on: enough to count its FLOPs exactly (see bench.metrics.flops)."""

    skipped: bool
    n_active: int  # query tokens computed
    n_cached: int  # extra keys served from a cache
    score_rows: int  # attention rows computed for a method
    masked: bool  # explicit mask instead of the causal kernel flag

    def key(self) -> tuple:
        return (self.skipped, self.n_active, self.n_cached, self.score_rows, self.masked)


@dataclass
class ForwardResult:
    """hidden: (1, n_action, D) final-normed action-query states, in layout order."""

    hidden: torch.Tensor
    visual_per_layer: list[int]  # visual tokens (cached ones included) entering each layer
    shapes: list[LayerShape]
    method_s: float = 0.0  # time inside method hooks and score computation
    extra: dict = field(default_factory=dict)


def _score_rows(stream: TokenStream, which: str) -> torch.Tensor | slice:
    """The stream rows a score request names: a slice when they are one run (no op)."""
    if which in ("text", "action"):
        kind = TEXT if which == "text" else ACTION
        rows = stream.tail_rows(kind) or stream.rows(kind)  # a slice when it can be one
        empty = (rows.stop <= rows.start) if isinstance(rows, slice) else len(rows) == 0
    elif which == "last":
        rows, empty = slice(len(stream) - 1, len(stream)), len(stream) == 0
    else:
        raise ValueError(f"unknown score request {which!r}; use text, action or last")
    if empty:
        raise ValueError(f"no {which} tokens present for a score request")
    return rows


def _n_rows(rows: torch.Tensor | slice | None) -> int:
    if rows is None:
        return 0
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


_TRIU: dict[tuple, torch.Tensor] = {}


def causal_bias(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) additive causal mask (0 on and below the diagonal, -inf above): a view of a
    cached matrix, so no op per call."""
    key = (dtype, device)
    big = _TRIU.get(key)
    if big is None or big.shape[0] < n:
        size = max(n, 512)
        with torch.inference_mode(False):  # a normal tensor: usable with autograd on too
            big = torch.full((size, size), float("-inf"), dtype=dtype, device=device).triu_(1)
        _TRIU[key] = big
    return big[:n, :n]


def eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    bias: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q (1, H, n, d) over k, v (1, H, n_k, d) in the math path, with an additive
    (n, n_k) `bias` (or none). Returns (output (1, H, n, d), softmax (H, n, n_k))."""
    kt = k[0].transpose(1, 2)
    if bias is None:
        logits = torch.bmm(q[0], kt).mul_(scale)
    else:
        logits = torch.baddbmm(bias, q[0], kt, alpha=scale)
    p = logits.softmax(dim=-1)
    return torch.bmm(p, v[0]).unsqueeze(0), p


def run_layer(layer, spec: DecoderSpec, hidden: torch.Tensor, cos: torch.Tensor,
              sin: torch.Tensor, pos: torch.Tensor, order_preserved: bool = True,
              cached_kv=None, cached_pos=None, score_rows: torch.Tensor | None = None):
    """One decoder layer on the tokens present.

    hidden: (1, n, D); cos/sin: (1, n, head_dim) rotary tables for `pos` (n,);
    cached_kv: optional ((1, H_kv, r, hd), (1, H_kv, r, hd)) post-RoPE keys/values of tokens not
    computed here, at positions `cached_pos` (r,); score_rows: optional rows of this stream
    ((m,) long, or a slice) whose attention probabilities to return.
    Returns (hidden_out, (k, v) of the computed tokens, probs (H, m, n_keys) or None,
    seconds spent reading the probs off the layer's attention).
    """
    attn = layer.self_attn
    n = hidden.shape[1]
    h = layer.input_layernorm(hidden)
    q = attn.q_proj(h).view(1, n, -1, spec.head_dim).transpose(1, 2)
    k = attn.k_proj(h).view(1, n, -1, spec.head_dim).transpose(1, 2)
    v = attn.v_proj(h).view(1, n, -1, spec.head_dim).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k_new, v_new = k, v
    key_pos = pos
    if cached_kv is not None:
        k = torch.cat([k, cached_kv[0]], dim=2)
        v = torch.cat([v, cached_kv[1]], dim=2)
        key_pos = torch.cat([pos, cached_pos])
    groups = spec.num_heads // spec.num_kv_heads
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    scale = spec.head_dim ** -0.5
    probs, score_s = None, 0.0
    if score_rows is not None:  # math path: the rows come from this layer's own softmax
        if not spec.causal:
            bias = None
        elif cached_kv is None and order_preserved:  # stream row order is position order
            bias = causal_bias(n, q.dtype, q.device)
        else:
            bias = torch.zeros(n, len(key_pos), dtype=q.dtype, device=q.device).masked_fill_(
                key_pos[None, :] > pos[:, None], float("-inf"))
        o, p = eager_attention(q, k, v, bias, scale)
        t0 = time.perf_counter()
        probs = p[:, score_rows]  # (H, m, n_keys): a view when the rows are a slice
        score_s = time.perf_counter() - t0
    elif not spec.causal:
        o = F.scaled_dot_product_attention(q, k, v, scale=scale)
    elif cached_kv is None and order_preserved:
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    else:
        mask = key_pos[None, :] <= pos[:, None]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    o = attn.o_proj(o.transpose(1, 2).reshape(1, n, -1))
    hidden = hidden + o
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return hidden, (k_new, v_new), probs, score_s


def pruned_forward(spec: DecoderSpec, input_embeds: torch.Tensor, layout: TokenLayout,
                   method: PruningMethod, ctx=None) -> ForwardResult:
    """Run the decoder on (1, n_tokens, D) `input_embeds` with `method` choosing the tokens."""
    clock = time.perf_counter
    method_s = 0.0
    stream = TokenStream(input_embeds, layout)
    full_pos = torch.arange(layout.n_tokens).unsqueeze(0)
    cos_full, sin_full = spec.rotary_emb(input_embeds, full_pos)  # (1, n_tokens, hd)

    t0 = clock()
    method.before_llm(ctx, stream)
    method_s += clock() - t0

    cached_idx = torch.zeros(0, dtype=torch.long)  # original positions served from cache
    rope_pos = cos = sin = None
    visual_per_layer, shapes = [], []
    for li, layer in enumerate(spec.layers):
        t0 = clock()
        skip = method.skip_layer(li)
        reuse = None if skip else method.kv_reuse(li, stream)
        which = None if skip else method.score_request(li)
        method_s += clock() - t0
        if reuse is not None and len(reuse):
            keep = torch.ones(len(stream), dtype=torch.bool)
            keep[torch.isin(stream.orig_idx, reuse)] = False
            stream._select(keep)
            cached_idx = torch.cat([cached_idx, reuse])
        n_cached_vis = len(cached_idx)
        visual_per_layer.append(stream.n_visual() + n_cached_vis)
        if skip:
            shapes.append(LayerShape(True, len(stream), 0, 0, False))
            continue
        cached_kv = cached_pos = None
        if len(cached_idx):
            t0 = clock()
            cached_kv = method.kv_lookup(li, cached_idx)
            method_s += clock() - t0
            cached_pos = cached_idx
        t0 = clock()
        rows = _score_rows(stream, which) if which else None
        method_s += clock() - t0
        if rope_pos is not stream.pos:  # the stream changed: gather its rotary tables
            rope_pos = stream.pos
            cos, sin = cos_full[:, rope_pos], sin_full[:, rope_pos]
        hidden, (k, v), probs, score_s = run_layer(
            layer, spec, stream.hidden, cos, sin, stream.pos, stream.order_preserved,
            cached_kv, cached_pos, rows)
        masked = spec.causal and (cached_kv is not None or not stream.order_preserved)
        shapes.append(LayerShape(False, len(stream), len(cached_idx), _n_rows(rows), masked))
        stream.hidden = hidden
        method_s += score_s  # the score rows are the method's cost
        t0 = clock()
        if method.wants_kv(li):
            method.record_kv(li, stream.orig_idx, k, v)
        scores = None
        if probs is not None:
            key_orig = stream.orig_idx if cached_kv is None else torch.cat(
                [stream.orig_idx, cached_idx])
            scores = AttentionScores(probs, key_orig, query_of=(stream.orig_idx, rows))
        method.after_layer(li, stream, scores)
        method_s += clock() - t0
    hidden = spec.norm(stream.hidden.index_select(1, stream.rows(ACTION)))
    final_visual = torch.cat([stream.visual_orig_idx(), cached_idx]).sort().values
    return ForwardResult(hidden, visual_per_layer, shapes, method_s,
                         extra={"final_visual_idx": final_visual.tolist()})
