"""How the embedded model's latency scales with the number of tokens, and what that allows.

    python -m scripts.bench_decoder_scaling [latency=results/latency/tiny_vla_libero_object.json]
        # -> results/overhead/decoder_scaling.json

1. One decoder layer of `tiny_vla` (the shared loop's `run_layer`, fused attention kernel, no
   scores), run through all 8 layers on T tokens, for T from 220 (the full sequence) down to 8;
   the T values are interleaved in every round so machine noise hits all alike. A least-squares
   fit per layer: t(T) = a + b * T. `a` is what a layer costs whatever the token count.
2. The vision encoder + projector (never pruned) and the action head.
3. For each method of a paired-replay benchmark (`latency=`): the speedup its FLOPs reduction
   allows (`flops_speedup_bound`, from the benchmark) against the speedup this cost model allows
   with zero method overhead (`zero_overhead_ceiling`: vision and head as measured here, each
   decoder layer it runs a + b * T, with the method's decoder FLOPs share spread as tokens). Their ratio
   is the most a method can reach of the FLOPs bound on this machine, before its own overhead.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.results import machine_info

TOKENS = (220, 180, 140, 100, 80, 60, 40, 20, 8)


def main(argv: list[str]) -> None:
    opts = dict(a.split("=", 1) for a in argv)
    latency = Path(opts.get("latency", "results/latency/tiny_vla_libero_object.json"))
    out = Path(opts.get("out", "results/overhead/decoder_scaling.json"))
    rounds = int(opts.get("rounds", 60))
    torch.set_num_threads(int(opts.get("threads", 2)))

    from bench.models.tiny_vla import TinyVLAAdapter
    from pruning.forward import run_layer

    model = TinyVLAAdapter(suite="libero_object")
    spec = model.decoder()
    L, D = len(spec.layers), model.cfg.hidden
    inputs = {}
    for T in TOKENS:
        h = torch.randn(1, T, D)
        pos = torch.arange(T)
        cos, sin = spec.rotary_emb(h, pos[None])
        inputs[T] = (h, cos, sin, pos)

    def decoder(T: int) -> None:
        h, cos, sin, pos = inputs[T]
        for layer in spec.layers:
            h = run_layer(layer, spec, h, cos, sin, pos)[0]

    pixels = torch.rand(1, len(model.view_names), 3, model.cfg.image_size,
                        model.cfg.image_size) * 2 - 1
    act = torch.randn(1, model.chunk_len, D)
    parts = {"vision": lambda: model.model.visual_tokens(pixels),
             "head": lambda: model.model.head(act)}
    times: dict = {T: [] for T in TOKENS} | {k: [] for k in parts}
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for _ in range(5):  # warm-up
            for T in TOKENS:
                decoder(T)
            for f in parts.values():
                f()
        for _ in range(rounds):
            keys = list(times)
            rng.shuffle(keys)
            for key in keys:
                f = parts[key] if key in parts else (lambda T=key: decoder(T))
                t0 = time.perf_counter()
                f()
                times[key].append(time.perf_counter() - t0)
    med = {k: float(np.median(v) * 1e3) for k, v in times.items()}
    per_layer = np.array([med[T] / L for T in TOKENS])
    b, a = np.polyfit(np.array(TOKENS, float), per_layer, 1)
    resid = per_layer - (a + b * np.array(TOKENS))
    print(f"decoder, per layer: t(T) = {a:.3f} ms + {1e3 * b:.2f} us * T "
          f"(max residual {np.abs(resid).max():.3f} ms); vision {med['vision']:.2f} ms, "
          f"head {med['head']:.2f} ms")
    T_full = TOKENS[0]
    fixed = med["vision"] + med["head"]
    full = fixed + L * (a + b * T_full)
    methods = []
    if latency.exists():
        doc = json.loads(latency.read_text())
        for row in doc["rows"]:
            share = row["decoder_flops_pct"] / 100
            run = L - len((row.get("scaled") or {}).get("skipped") or [])  # EfficientVLA skips
            ceiling = full / (fixed + run * a + b * share * L * T_full)
            bound = row["flops_speedup_bound"]
            methods.append({
                "method": row["method"], "tag": row["tag"], "decoder_flops_pct":
                row["decoder_flops_pct"], "flops_speedup_bound": bound,
                "zero_overhead_ceiling": ceiling, "measured_speedup": row["speedup"],
                "ceiling_of_bound_pct": 100 * ceiling / bound if bound > 1.001 else None,
                "measured_of_ceiling_pct": (100 * row["speedup"] / ceiling
                                            if ceiling > 1.001 else None)})
            print(f"{row['method']:>13}: FLOPs bound {bound:.2f}x, zero-overhead ceiling "
                  f"{ceiling:.2f}x ({100 * ceiling / bound:.0f}% of the bound), measured "
                  f"{row['speedup']:.2f}x")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python -m scripts.bench_decoder_scaling " + " ".join(argv),
        "machine": machine_info(), "threads": torch.get_num_threads(), "rounds": rounds,
        "median_ms": {str(k): v for k, v in med.items()},
        "per_layer_fit_ms": {"a": float(a), "b_per_token": float(b),
                             "max_abs_residual": float(np.abs(resid).max())},
        "latency_source": str(latency), "methods": methods,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
