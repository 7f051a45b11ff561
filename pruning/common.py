"""Helpers shared by the baseline methods: paper-to-model scaling, per-view index sets, greedy
max-min diversity, and "keep matching" against a recorded SpecPrune run.

Scaling (METHODS.md): a layer index l of the paper's 32-layer model becomes round(l * L / 32),
a token count K per 256-token view becomes round(K * N_view / 256). Rounding is half-up
(0.5 -> 1), not Python's banker's rounding, so e.g. paper layer 2 on an 8-layer model is
layer 1, never 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from bench.errors import UserError
from pruning.layout import VISUAL, TokenLayout

PAPER_LAYERS = 32
PAPER_VIEW_TOKENS = 256
MATCH = "match_specprune"


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def scale_layer(layer: int, num_layers: int) -> int:
    """Paper layer index (of 32) -> this model's layer index, clamped to [0, L-1]."""
    return min(max(round_half_up(layer * num_layers / PAPER_LAYERS), 0), num_layers - 1)


def scale_count(count: int, n_view: int) -> int:
    """Paper token count per 256-token view (or a total over 256-token views) -> this model."""
    return round_half_up(count * n_view / PAPER_VIEW_TOKENS)


def view_length(layout: TokenLayout) -> int:
    """N_view: patch tokens per camera view (views are equal-sized in every supported model)."""
    return layout.of_kind(VISUAL)[0].length


def split_even(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as possible, the remainder to the first parts."""
    base, rem = divmod(int(total), parts)
    return [base + (i < rem) for i in range(parts)]


def patch_cosine(cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Cosine similarity (..., N) float64 of raw-pixel patches (..., N, P) (any numeric dtype,
    e.g. the uint8 `QueryContext.patches`); two all-zero patches count as identical (1).
    numpy einsum: 3-4x faster than the torch version it replaced (float patches, patch
    extraction included) on 2 x 100 x 768 patches, in one contended measurement."""
    x = np.asarray(cur, np.float32)
    y = np.asarray(ref, np.float32)
    dot = np.einsum("...p,...p->...", x, y).astype(np.float64)  # float32 sums: ~1e-7 relative
    nx = np.einsum("...p,...p->...", x, x).astype(np.float64)
    ny = np.einsum("...p,...p->...", y, y).astype(np.float64)
    sim = dot / np.sqrt(np.maximum(nx * ny, 1e-24))
    return np.where((nx < 1e-16) & (ny < 1e-16), 1.0, sim)


def cosine_distance(x: torch.Tensor) -> torch.Tensor:
    """(n, D) -> (n, n) 1 - cosine similarity."""
    xn = torch.nn.functional.normalize(x.float(), dim=-1)
    return 1.0 - xn @ xn.T


def greedy_maxmin(dist: torch.Tensor, k: int, seed: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy max-min diversity on an (n, n) distance matrix; returns (k,) indices in pick order.

    Without `seed`: first the point whose nearest neighbour is farthest, then repeatedly the
    point whose minimum distance to the selected set is largest (DivPrune). With `seed` (s,)
    already selected: continue from that set and return only the k new picks (EfficientVLA).
    Ties go to the lowest index.
    """
    n = dist.shape[0]
    k = min(k, n - (0 if seed is None else len(seed)))
    out = torch.empty(max(k, 0), dtype=torch.long)
    if k <= 0:
        return out
    if seed is None or len(seed) == 0:
        nn = dist.clone()
        nn.fill_diagonal_(float("inf"))
        first = int(nn.min(dim=1).values.argmax()) if n > 1 else 0
        out[0] = first
        min_d = dist[first].clone()
        min_d[first] = -float("inf")
        start = 1
    else:
        min_d = dist[seed].min(dim=0).values.clone()
        min_d[seed] = -float("inf")
        start = 0
    for i in range(start, k):
        j = int(min_d.argmax())
        out[i] = j
        min_d = torch.minimum(min_d, dist[j])
        min_d[out[: i + 1]] = -float("inf")
    return out


# ---- keep matching -----------------------------------------------------------------------

def hydra_choice(group: str) -> str | None:
    """The running Hydra job's option for `group` (e.g. model -> "tiny_vla"), else None."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return HydraConfig.get().runtime.choices.get(group)
    except Exception:  # noqa: BLE001 - outside a Hydra job
        return None
    return None


def specprune_run_path(model: str, suite: str, root: str | Path = "results/runs",
                       alpha: float = 0.8) -> Path:
    return Path(root) / model / suite / "specprune" / f"alpha={alpha:g}" / "episodes.jsonl"


def specprune_reference(model: str | None, suite: str | None, root: str | Path = "results/runs",
                        alpha: float = 0.8) -> dict:
    """Mean visual tokens per decoder layer of the SpecPrune run at `alpha` for (model, suite).

    Reads `tokens.visual_kept_mean` of every `status: ok` episode in
    `{root}/{model}/{suite}/specprune/alpha={alpha}/episodes.jsonl` and averages them weighted
    by the episode's query count (= the mean over all queries and decoder layers). model/suite
    None: the running Hydra job's choices. Returns {"mean", "n_layers", "visual_total", "path"}.
    Raises UserError naming the command to run when no such run exists.
    """
    model = model or hydra_choice("model")
    suite = suite or hydra_choice("suite")
    if not model or not suite:
        raise UserError("keep=match_specprune needs the model and suite of the SpecPrune run "
                        "to match; set method.match_model=... method.match_suite=... "
                        "or give an integer keep")
    path = specprune_run_path(model, suite, root, alpha)
    cmd = (f"python -m bench.run model={model} suite={suite} method=specprune alpha={alpha:g}")
    if not path.exists():
        raise UserError(f"keep=match_specprune: no SpecPrune run at {path}; run `{cmd}` first "
                        "(or give an integer keep)")
    total, weight, n_layers, visual_total = 0.0, 0, None, None
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        tok = rec.get("tokens") or {}
        if rec.get("status") != "ok" or tok.get("visual_kept_mean") is None:
            continue
        n = int((rec.get("latency_ms") or {}).get("n") or rec.get("n_queries") or 1)
        total += float(tok["visual_kept_mean"]) * n
        weight += n
        n_layers = len(tok.get("kept_per_layer_mean") or []) or n_layers
        visual_total = tok.get("visual_total") or visual_total
    if weight == 0:
        raise UserError(f"keep=match_specprune: {path} has no finished episodes; run `{cmd}` "
                        "first (or give an integer keep)")
    return {"mean": total / weight, "n_layers": n_layers, "visual_total": visual_total,
            "path": str(path)}


def solve_keep(target_mean: float, n_full_layers: int, num_layers: int, n_visual: int) -> int:
    """Keep count k such that n_full_layers layers on all n_visual tokens and the remaining
    layers on k tokens give `target_mean` visual tokens per layer on average (rounded, clamped
    to [1, n_visual])."""
    rest = num_layers - n_full_layers
    if rest <= 0:
        return n_visual
    k = (target_mean * num_layers - n_full_layers * n_visual) / rest
    return int(min(max(round_half_up(k), 1), n_visual))


def check_reference(ref: dict, num_layers: int, n_visual: int) -> None:
    if ref["n_layers"] not in (None, num_layers) or ref["visual_total"] not in (None, n_visual):
        raise UserError(f"keep=match_specprune: the run at {ref['path']} is of a model with "
                        f"{ref['n_layers']} layers / {ref['visual_total']} visual tokens, not "
                        f"{num_layers} / {n_visual}")
