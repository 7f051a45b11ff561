"""Why small per-layer work is expensive here, and what the score-row path costs.

    python -m scripts.bench_call_costs     # -> results/overhead/call_costs.json

1. Cold calls: the median time of one small numpy call (a boolean gather + flatnonzero on 150
   entries) in a warm loop, right after a (220 x 256) @ (256 x 1024) matmul, and after a 1 ms
   sleep. On the 2-core dev machine the cold call costs several times the warm one.
2. Attention at tiny_vla sizes (4 heads x 64): the fused kernel (SDPA, causal), the math path
   that also yields the softmax (baddbmm + softmax + bmm), and the fused kernel plus separately
   computed softmax rows for 10 text queries (the score path before 2026-11-23).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.results import machine_info


def _median_us(fn, n: int, before=None) -> float:
    out = []
    for _ in range(n):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return float(np.median(out) * 1e6)


def cold_calls(n: int = 300) -> dict:
    key = np.arange(150)
    mask = np.zeros(300, bool)
    mask[1:201] = True
    a, w = torch.randn(220, 256), torch.randn(256, 1024)

    def call():
        return np.flatnonzero(mask[key])

    return {"warm_us": _median_us(call, n), "after_matmul_us": _median_us(call, n, lambda: a @ w),
            "after_sleep_1ms_us": _median_us(call, n, lambda: time.sleep(0.001))}


def attention(sizes=(220, 140, 80), heads: int = 4, d: int = 64, n: int = 300) -> list[dict]:
    from pruning.forward import causal_bias, eager_attention

    out = []
    scale = d ** -0.5
    for m in sizes:
        q, k, v = (torch.randn(1, heads, m, d) for _ in range(3))
        pos = torch.arange(m)
        rows = torch.arange(m - 18, m - 8)

        def sdpa(q=q, k=k, v=v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)

        def math_path(q=q, k=k, v=v, m=m):
            return eager_attention(q, k, v, causal_bias(m, q.dtype, q.device), scale)

        def sdpa_plus_rows(q=q, k=k, v=v, pos=pos, rows=rows):
            lg = (q[:, :, rows] @ k.transpose(-1, -2)) * scale
            lg = lg.masked_fill(pos[None, :] > pos[rows][:, None], float("-inf"))
            return sdpa(), lg.softmax(-1)

        with torch.inference_mode():
            for f in (sdpa, math_path, sdpa_plus_rows):
                _median_us(f, 20)
            out.append({"tokens": m, "sdpa_us": _median_us(sdpa, n),
                        "math_path_us": _median_us(math_path, n),
                        "sdpa_plus_rows_us": _median_us(sdpa_plus_rows, n)})
    return out


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    res = {"threads": threads, "machine": machine_info("cpu"), "cold_calls": cold_calls(),
           "attention": attention()}
    path = Path("results/overhead/call_costs.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("cold_calls", "attention")}, indent=1))


if __name__ == "__main__":
    main()
