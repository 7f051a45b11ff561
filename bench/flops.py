"""`python -m bench.flops model=openvla_oft_7b [out=results/tables/flops_7b.md]`

FLOPs of a model's real architecture for each method's token schedule, counted with no
weights on the `meta` device: the decoder through `bench.metrics.flops.DecoderFlops` (the same
per-layer-shape counting the runner uses: torch's FlopCounterMode, the registered attention
formula, the shared loop's own layer code), the vision towers, projectors and action head
through FlopCounterMode on meta modules of the same shapes. The schedules and the paper's
figures live in the model config's `flops` block (configs/model/openvla_oft_7b.yaml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

from bench.errors import UserError
from bench.metrics.flops import DecoderFlops, count_flops
from bench.registry import CONFIG_DIR, check
from pruning.forward import DecoderSpec, LayerShape


# --------------------------------------------------------------------------- decoder
def meta_decoder(hidden: int, mlp: int, heads: int, kv_heads: int, causal: bool = False
                 ) -> DecoderSpec:
    """One Llama layer on the meta device (DecoderFlops counts every layer with layer 0)."""
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=1,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=8)
    with torch.device("meta"):
        m = LlamaModel._from_config(cfg, attn_implementation="eager")
    return DecoderSpec(list(m.layers), m.rotary_emb, m.norm, heads, kv_heads, hidden // heads,
                       causal=causal)


def schedule_shapes(sched: dict, n_layers: int, n_visual: int, n_total: int
                    ) -> tuple[list[LayerShape], list[int]]:
    """Per-layer shapes of a schedule, and the visual tokens computed at each layer (for
    `reused` schedules the rest of the 512 are attended as cached keys)."""
    def step(table, layer, default):
        val = default
        for first, count in sorted((int(k), int(v)) for k, v in (table or {}).items()):
            if layer >= first:
                val = count
        return val

    n_other = n_total - n_visual
    skip = {int(x) for x in sched.get("skip", [])}
    shapes, visual = [], []
    for li in range(n_layers):
        if "total" in sched:
            n = step(sched["total"], li, n_total)
            shapes.append(LayerShape(li in skip, n, 0, 0, False))
            visual.append(n - n_other)
            continue
        vis = step(sched.get("visual"), li, n_visual)
        reused = min(step(sched.get("reused"), li, 0), vis)
        shapes.append(LayerShape(li in skip, n_other + vis - reused, reused, 0, False))
        visual.append(vis - reused)  # computed here; the reused ones are keys only
    return shapes, visual


# --------------------------------------------------------------------------- vision etc.
class _ViTShape(nn.Module):
    """A timm-ViT-shaped tower for counting: patch conv, pre-LN blocks (qkv, attention, proj,
    MLP). (1, 3, S, S) -> (1, prefix + N, dim)."""

    def __init__(self, dim, depth, heads, mlp, patch, prefix):
        super().__init__()
        self.heads, self.prefix = heads, prefix
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim),
            "proj": nn.Linear(dim, dim), "norm2": nn.LayerNorm(dim),
            "fc1": nn.Linear(dim, mlp), "fc2": nn.Linear(mlp, dim)}) for _ in range(depth))

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        if self.prefix:
            x = torch.cat([x.new_zeros(1, self.prefix, x.shape[-1]), x], dim=1)
        b, n, d = x.shape
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["norm1"](x)).view(b, n, 3, self.heads, -1).unbind(2)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2))
            x = x + blk["proj"](o.transpose(1, 2).reshape(b, n, d))
            x = x + blk["fc2"](F.gelu(blk["fc1"](blk["norm2"](x))))
        return x


def fixed_flops(arch) -> dict[str, int]:
    """Vision (all views), projector, proprio projector and action head FLOPs (meta)."""
    from bench.models.openvla_oft import FusedProjector, L1RegressionActionHead, ProprioProjector

    d = int(arch.decoder.hidden)
    s, p, views = int(arch.image_size), int(arch.patch_size), int(arch.views)
    n_patch = (s // p) ** 2
    out = {}
    with torch.device("meta"), torch.inference_mode():
        vision = 0
        for t in arch.vision:
            tower = _ViTShape(t.dim, t.depth, t.heads, t.mlp, p, t.prefix)
            f, _ = count_flops(tower, torch.empty(1, 3, s, s))
            vision += f * views
        out["vision"] = vision
        proj = FusedProjector(int(arch.projector_in), d)
        out["projector"], _ = count_flops(proj, torch.empty(1, views * n_patch,
                                                            int(arch.projector_in)))
        prop = ProprioProjector(d, int(arch.proprio_dim))
        out["proprio"], _ = count_flops(prop, torch.empty(1, int(arch.proprio_dim)))
        n_act = int(arch.chunk_len) * int(arch.action_dim)
        head = L1RegressionActionHead(d, int(arch.action_dim), int(arch.chunk_len),
                                      int(arch.head_blocks))
        out["head"], _ = count_flops(head, torch.empty(1, n_act, d))
    return out


def count_all(arch) -> tuple[list[dict], dict[str, int]]:
    dec = arch.decoder
    spec = meta_decoder(int(dec.hidden), int(dec.mlp), int(dec.heads), int(dec.kv_heads))
    counter = DecoderFlops(spec)
    n_patch = (int(arch.image_size) // int(arch.patch_size)) ** 2
    n_visual = int(arch.views) * n_patch
    n_total = 1 + n_visual + 1 + int(arch.prompt_tokens) + int(arch.chunk_len) * int(
        arch.action_dim) + 1
    fixed = fixed_flops(arch)
    fixed_sum = sum(fixed.values())
    rows = []
    for name, sched in arch.schedules.items():
        shapes, visual = schedule_shapes(OmegaConf.to_container(sched), int(dec.layers),
                                         n_visual, n_total)
        flops, _ = counter.count(shapes)
        rows.append({"name": name, "decoder": flops, "e2e": flops + fixed_sum,
                     "visual": visual, "n_total": n_total,
                     "paper": dict(arch.paper.get(name) or {})})
    base = next(r for r in rows if r["name"] == "none")
    for r in rows:
        r["decoder_ratio"] = r["decoder"] / base["decoder"]
        r["e2e_ratio"] = r["e2e"] / base["e2e"]
    return rows, fixed


# --------------------------------------------------------------------------- report
def _compact(visual: list[int]) -> str:
    parts, start = [], 0
    for i in range(1, len(visual) + 1):
        if i == len(visual) or visual[i] != visual[start]:
            rng = f"{start}" if i - 1 == start else f"{start}-{i - 1}"
            parts.append(f"L{rng}:{visual[start]}")
            start = i
    return " ".join(parts)


def render(rows, fixed, model_name: str) -> str:
    def pct(x):
        return f"{100 * x:.0f}%" if x is not None else "-"

    base = next(r for r in rows if r["name"] == "none")
    lines = [
        f"# FLOPs of {model_name} per method (alpha 0.8), counted on the meta device",
        "",
        "Generated by `python -m bench.flops model=openvla_oft_7b`. Decoder: 32 Llama-2-7B layers "
        "counted per layer shape by `bench.metrics.flops.DecoderFlops` (FlopCounterMode; the shared "
        "loop's layer code; bidirectional attention, so no causal halving; method score rows "
        f"excluded). Sequence: {base['n_total']} tokens (BOS, 2 x 256 patches, proprio, "
        "29 prompt tokens, 56 action placeholders, stop). End to end adds the vision towers "
        "(DINOv2 ViT-L/14 reg4 + SigLIP So400m/14, 224 px, two views), the fused projector, the "
        "proprio projector and the L1 action head; the LM head OFT's remote code also computes "
        "over all positions (32064 x 4096, about 0.16 TFLOPs) is not needed and not counted.",
        "",
        "Fixed (every method): " + ", ".join(f"{k} {v / 1e12:.3f} TFLOPs"
                                             for k, v in fixed.items()) + ".",
        "",
        "| schedule | visual tokens computed at each layer | decoder TFLOPs | decoder % | "
        "end-to-end TFLOPs | end-to-end % | paper A.3 (decoder) | paper Table 1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["paper"]
        lines.append(f"| {r['name']} | {_compact(r['visual'])} | {r['decoder'] / 1e12:.2f} | "
                     f"{pct(r['decoder_ratio'])} | {r['e2e'] / 1e12:.2f} | {pct(r['e2e_ratio'])} | "
                     f"{pct(p.get('a3_decoder'))} | {pct(p.get('table1'))} |")
    by = {r["name"]: r for r in rows}

    def g(n, k="decoder_ratio"):
        return pct(by[n][k]) if n in by else "-"

    lines += [
        "",
        "Schedules (derivations in configs/model/openvla_oft_7b.yaml): FastV and DivPrune keep "
        "SpecPrune's kept count (Table 8 at alpha 0.8: 512 - 360 = 152 visual tokens), FastV from "
        "layer 2; SparseVLM 300/200/110 of 576 scaled to 267/178/98 of 512 after layers 2, 6, 15 "
        "plus recycled centres; VLA-Cache reuses up to 182 static, non-relevant visual tokens' K/V "
        "from layers 2/6/9/11 (assumed 1/4, 1/2, 3/4, all); EfficientVLA 112 visual tokens from "
        "layer 2 and 28 of 32 layers; SpecPrune 152 visual tokens from layer 2, then x0.9 at "
        "layers 10, 15, 20, 25 (Eq. 12).",
        "",
        "## Where this differs from the paper, and why",
        f"- SpecPrune static: {g('specprune_static')} of the decoder here vs 0.44 in A.3. They "
        "agree: 152 kept visual tokens leave 240 of 600 tokens, exactly the paper's L_r = 0.4 L. "
        "A.3 approximates FLOPs(L) as linear in L; the exact count (attention is quadratic) is "
        "slightly lower.",
        f"- SpecPrune static + dynamic: {g('specprune')} here vs 0.37 in A.3. A.3 applies "
        "gamma = 0.9 to the whole retained sequence (240 -> 216 -> 194 -> 175 -> 157 tokens), "
        "but only visual tokens are pruned: the 88 prompt/proprio/action/stop tokens stay, so "
        "the sequence goes 240 -> 225 -> 211 -> 199 -> 188. With the paper's token counts the "
        f"same exact counter gives {g('specprune_paper_tokens')} (row specprune_paper_tokens), "
        "i.e. the gap is the token assumption, not the FLOP formula.",
        f"- Table 1 gives SpecPrune 43%, between A.3's static (0.44) and static + dynamic (0.37); "
        f"end to end, the vision towers (~{fixed['vision'] / 1e12:.2f} TFLOPs, never pruned) put "
        f"SpecPrune at {g('specprune', 'e2e_ratio')} here. Table 1 does not say what it counts; "
        "its FLOPs figures are consistent with decoder-only accounting of a static schedule.",
        f"- FastV: {g('fastv')} with keep = 152 (the paper says FastV and DivPrune keep token "
        f"counts similar to SpecPrune) vs 57% in Table 1. FastV's own default R = 50% (keep "
        f"256) gives {g('fastv_r50')}, close to 57%: Table 1's FastV kept about half the "
        "visual tokens.",
        f"- DivPrune: {g('divprune')} with keep = 152 from the input vs 54%. 54% of 600-token "
        "layers is ~324 tokens, i.e. ~236 visual tokens kept: Table 1's DivPrune kept more than "
        "SpecPrune's 152 (or counted end to end).",
        f"- SparseVLM: {g('sparsevlm')} vs 77%. The authors' 576 -> 192 schedule scaled to 512 "
        "prunes harder than Table 1's run, which kept more tokens (a milder target) or counted "
        "its text-rater and recycling work.",
        f"- VLA-Cache: {g('vla_cache')} vs 83% (the paper: 17% less computation). Reused tokens "
        "skip their projections and MLP but stay as keys; the real per-layer reuse fractions "
        "come from attention entropy at run time, so this row rests on the assumed fractions.",
        f"- EfficientVLA: {g('efficientvla')} vs 35%: 112 tokens from layer 2 and 4 skipped layers "
        "match the paper's setup; the small gap is where the token selection happens.",
        "- Method overheads (score rows, patch similarity) are not in these rows; they are "
        "counted separately at run time (`flops_method`).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts = {"model": "openvla_oft_7b", "out": "results/tables/flops_7b.md"}
    for a in argv:
        key, sep, val = a.partition("=")
        if not sep or key not in opts:
            raise UserError(f"unknown argument {a!r}; usage: python -m bench.flops "
                            "model=openvla_oft_7b [out=results/tables/flops_7b.md]")
        opts[key] = val
    check("model", opts["model"])
    cfg = OmegaConf.load(CONFIG_DIR / "model" / f"{opts['model']}.yaml")
    if "flops" not in cfg:
        raise UserError(f"model {opts['model']!r} has no `flops` architecture block; "
                        "try model=openvla_oft_7b")
    rows, fixed = count_all(cfg.flops)
    text = render(rows, fixed, opts["model"])
    out = Path(opts["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
