"""FLOPs counted with torch's FlopCounterMode, plus the formula it lacks for CPU attention.

`torch.utils.flop_counter` counts matmuls exactly but, on the CPU, does not count
`aten._scaled_dot_product_flash_attention_for_cpu` (the fused attention kernel the decoder
runs). `register_cpu_sdpa_formula()` adds it: 4 * B * H * Lq * Lk * head_dim, the same
convention torch uses for the other attention kernels (causal masking not halved).

Counting every query under FlopCounterMode would slow the timed forward, so the decoder is
counted per layer shape: the pruned forward reports what each layer ran on (tokens computed,
cached keys, score rows, mask kind); `LayerFlops` runs that exact layer code once per distinct
shape under FlopCounterMode and memoises it. FLOPs depend only on shapes, so the sum equals a
FlopCounterMode count of the forward that ran (tested).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_flop_count

_registered = False


def register_cpu_sdpa_formula() -> None:
    global _registered
    if _registered:
        return
    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu

    @register_flop_formula(op)
    def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    _registered = True


def count_flops(fn, *args, **kwargs) -> tuple[int, object]:
    """(total FLOPs, result) of running fn(*args, **kwargs) under FlopCounterMode."""
    register_cpu_sdpa_formula()
    with FlopCounterMode(display=False) as counter:
        out = fn(*args, **kwargs)
    return int(counter.get_total_flops()), out


def llama_layer_flops_analytic(n_q: int, n_k: int, hidden: int, mlp: int, heads: int,
                               kv_heads: int, score_rows: int = 0) -> int:
    """Matmul FLOPs of one Llama layer: projections, attention (QK^T and AV), gated MLP."""
    hd = hidden // heads
    proj = 2 * n_q * hidden * (hidden + 2 * kv_heads * hd + hidden)
    attn = 4 * heads * n_q * n_k * hd
    ffn = 2 * n_q * 3 * hidden * mlp
    scores = 2 * heads * score_rows * n_k * hd
    return proj + attn + ffn + scores


class DecoderFlops:
    """FLOPs of the pruned forward's decoder layers, counted per distinct layer shape.

    `count(shapes)` -> (decoder FLOPs, method FLOPs for the score rows it asked for).
    All layers of a decoder have the same architecture, so layer 0 stands for every layer.
    """

    def __init__(self, spec):
        self.spec = spec
        self._memo: dict[tuple, tuple[int, int]] = {}

    def _layer(self, shape) -> tuple[int, int]:
        key = shape.key()
        if key not in self._memo:
            if shape.skipped:
                self._memo[key] = (0, 0)
            else:
                base = self._run(shape, 0)
                with_scores = self._run(shape, shape.score_rows) if shape.score_rows else base
                self._memo[key] = (base, with_scores - base)
        return self._memo[key]

    def _run(self, shape, score_rows: int) -> int:
        from pruning.forward import run_layer

        spec = self.spec
        layer = spec.layers[0]
        p = next(layer.parameters())
        n, r = shape.n_active, shape.n_cached
        hidden = torch.zeros(1, n, p.shape[-1], dtype=p.dtype, device=p.device)
        pos = torch.arange(n, device=p.device)
        cos, sin = spec.rotary_emb(hidden, pos[None])
        cached = cached_pos = None
        if r:
            kv = torch.zeros(1, spec.num_kv_heads, r, spec.head_dim, dtype=p.dtype,
                             device=p.device)
            cached, cached_pos = (kv, kv), torch.arange(n, n + r, device=p.device)
        rows = torch.arange(score_rows, device=p.device) if score_rows else None
        with torch.inference_mode():
            flops, _ = count_flops(run_layer, layer, spec, hidden, cos, sin, pos,
                                   not shape.masked, cached, cached_pos, rows)
        return flops

    def count(self, shapes) -> tuple[int, int]:
        dec = meth = 0
        for s in shapes:
            d, m = self._layer(s)
            dec, meth = dec + d, meth + m
        return dec, meth
