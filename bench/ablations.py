"""SpecPrune's ablation set, shared by the campaign (rollouts) and the latency benchmark (paired
replay), so both run the same variants and the report pairs their rows by run tag."""

from __future__ import annotations

# prune ratio alpha (paper Table 11); 0.8 is the main run
ALPHAS = (0.6, 1.0)

# method parameter switches at alpha 0.8, one list of `key=value` per run
SWITCHES: list[list[str]] = [
    # techniques 1 / 1+2 (1+2+3 is the default run) - paper Fig. 8
    ["dynamic_layers=false", "controller=false"],
    ["controller=false"],
    # without global scores (Table 3) and average layer weighting (Table 4)
    ["use_global=false"],
    ["layer_weighting=average"],
    # controller thresholds (Table 7), one at a time as the paper varies them: v_t with v_r
    # at 0.2, v_r with v_t at 0.5; (0.5, 0.2) is the default run. The report's grid shows the
    # four corners as "no results" unless someone runs them.
    *[[f"vt_threshold={vt}", "vr_threshold=0.2"] for vt in (0.3, 0.7)],
    *[["vt_threshold=0.5", f"vr_threshold={vr}"] for vr in (0.1, 0.4)],
]


def variant_specs() -> list[str]:
    """The ablation set as latency-benchmark variants: `alpha=A` or `k=v+k=v` strings."""
    return [f"alpha={a:g}" for a in ALPHAS] + ["+".join(s) for s in SWITCHES]
