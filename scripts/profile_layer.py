"""Where a decoder layer of `tiny_vla` spends its time at a given token count (torch profiler).

    python -m scripts.profile_layer tokens=8 threads=2 [out=results/overhead/layer_profile.txt]

Runs the shared loop's `run_layer` through all decoder layers on `tokens` tokens (`rounds`
times after a warm-up) and writes the profiler's op table (sorted by self CPU time), plus the
median per-layer time of the same layers on distinct weights and of one layer repeated (weights
hot in cache), and one of the layer's matrix multiplies (8 x 256 -> 1024, the MLP's up
projection) alone at 1 / 8 / 80 / 220 rows, through torch (MKL), oneDNN with pre-packed
weights (`torch.utils.mkldnn`) and numpy, in GFLOP/s. At few rows the multiplies run at a
fraction of their large-row rate, so their cost stops scaling with the token count: that is
what limits how much of a pruning method's FLOPs reduction turns into speed (see
scripts/bench_decoder_scaling.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.results import machine_info


def main(argv: list[str]) -> None:
    opts = dict(a.split("=", 1) for a in argv)
    T = int(opts.get("tokens", 8))
    rounds = int(opts.get("rounds", 40))
    torch.set_num_threads(int(opts.get("threads", 2)))
    out = Path(opts.get("out", f"results/overhead/layer_profile_T{T}.txt"))

    from torch.profiler import profile

    from bench.models.tiny_vla import TinyVLAAdapter
    from pruning.forward import run_layer

    model = TinyVLAAdapter(suite="libero_object")
    spec = model.decoder()
    h = torch.randn(1, T, model.cfg.hidden)
    pos = torch.arange(T)
    cos, sin = spec.rotary_emb(h, pos[None])
    L = len(spec.layers)

    def distinct() -> None:
        x = h
        for layer in spec.layers:
            x = run_layer(layer, spec, x, cos, sin, pos)[0]

    def same() -> None:
        x = h
        for _ in range(L):
            x = run_layer(spec.layers[0], spec, x, cos, sin, pos)[0]

    med = {}
    with torch.inference_mode():
        for name, f in (("distinct_layers", distinct), ("one_layer_repeated", same)):
            med[name] = _median_us(f, rounds, warmup=5) / 1e3 / L
        with profile() as prof:
            for _ in range(rounds):
                distinct()
        gemm = gemm_rates(spec.layers[0].mlp.up_proj)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    text = (f"python -m scripts.profile_layer {' '.join(argv)}\nmachine: {machine_info()}\n"
            f"tokens {T}, threads {torch.get_num_threads()}, {rounds} rounds x {L} layers\n"
            + "".join(f"median ms per layer, {k}: {v:.3f}\n" for k, v in med.items())
            + "".join(f"{k}\n" for k in gemm)
            + table + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


def _median_us(f, n: int = 300, warmup: int = 20) -> float:
    for _ in range(warmup):
        f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


def gemm_rates(linear: torch.nn.Linear) -> list[str]:
    """One line per row count: median us and GFLOP/s of `linear` through three libraries."""
    from torch.utils import mkldnn

    w = linear.weight.detach()
    plain = torch.nn.Linear(w.shape[1], w.shape[0], bias=False).eval()
    plain.weight.data.copy_(w)
    packed = mkldnn.to_mkldnn(plain)  # weights reordered once into oneDNN's blocked layout
    wt = w.t().contiguous().numpy()
    lines = [f"GEMM rows x {w.shape[1]} -> {w.shape[0]} (weight {w.numel() * 4 / 1e6:.2f} MB):"]
    for rows in (1, 8, 80, 220):
        x = torch.randn(rows, w.shape[1])
        xn = x.numpy()
        flops = 2 * rows * w.numel()
        us = {"torch": _median_us(lambda x=x: torch.nn.functional.linear(x, w)),
              "onednn_prepacked": _median_us(lambda x=x: packed(x.to_mkldnn()).to_dense()),
              "numpy": _median_us(lambda xn=xn: xn @ wt)}
        lines.append(f"  {rows:>4} rows: " + ", ".join(
            f"{k} {v:.0f} us ({flops / v / 1e3:.1f} GFLOP/s)" for k, v in us.items()))
    return lines


if __name__ == "__main__":
    main(sys.argv[1:])
